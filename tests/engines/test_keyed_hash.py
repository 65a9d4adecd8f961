"""The bulk keyed hash (``engines.keyed_hash``) against the one-value definition, and the
governed runner's hash-after-the-SQL path against the SQL function."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from meshgov.engines.keyed_hash import keyed_hash, keyed_hash_array

KEY = b"k\x00\xffey"


def one(value: str | None) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(KEY + value.encode("utf-8")).hexdigest()


VALUES = ["a@example.com", None, "", "Zoë 東京 🎉", "x" * 5000, None, "1.50"]


def test_bulk_hash_is_sha256_of_key_and_utf8_value_and_null_stays_null() -> None:
    result = keyed_hash_array(KEY, pa.array(VALUES))
    assert result.type == pa.string()
    assert result.to_pylist() == [one(v) for v in VALUES]


def test_sliced_chunked_large_and_binary_inputs_hash_the_same() -> None:
    expected = [one(v) for v in VALUES[2:6]]
    assert keyed_hash_array(KEY, pa.array(VALUES).slice(2, 4)).to_pylist() == expected
    chunked = pa.chunked_array([pa.array(VALUES[2:4]), pa.array(VALUES[4:6])])
    assert keyed_hash_array(KEY, chunked).to_pylist() == expected
    assert keyed_hash_array(KEY, pa.array(VALUES[2:6], pa.large_string())).to_pylist() == expected
    encoded = [v.encode() if v is not None else None for v in VALUES[2:6]]
    assert keyed_hash_array(KEY, pa.array(encoded, pa.binary())).to_pylist() == expected


def test_empty_and_all_null_arrays() -> None:
    assert keyed_hash_array(KEY, pa.array([], pa.string())).to_pylist() == []
    assert keyed_hash(KEY)(pa.array([None, None], pa.string())).to_pylist() == [None, None]
