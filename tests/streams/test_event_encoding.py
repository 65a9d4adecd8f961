"""Governed rows are encoded column by column (``governed_events``); each event must be the very
text ``json.dumps`` of the row as a dict gave (``_json_default`` for dates, decimals, bytes...),
since SQL, exports and streams are compared value for value."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest

from meshgov.core.sql.model import AccessDecision
from meshgov.event_batches import SEQ_COLUMN, _json_default, governed_events
from meshgov.governed import GovernedPort


def governed(columns: tuple[str, ...]) -> GovernedPort:
    decision = AccessDecision(allow=True)
    return GovernedPort("p/x", "x", "1.0.0", "events", decision, "SELECT 1", columns)


def expected(table: pa.Table, names: list[str]) -> list[tuple[int, bytes]]:
    rows = table.to_pylist()
    out = []
    for row in rows:
        values = [row[name] for name in table.column_names[:-1]]
        text = json.dumps(
            dict(zip(names, values, strict=True)), default=_json_default, separators=(",", ":")
        )
        out.append((row[SEQ_COLUMN], text.encode()))
    return out


TEXTS = ["plain", 'quote " and \\ back', "tab\tnew\nline\x01", "é ü 中文 🎉", "", "100%s %d"]
FLOATS = [0.0, -0.0, 1.5, 1e16, 1e-7, 123456789.123, float("nan"), float("inf"), -float("inf")]


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        (pa.string(), TEXTS),
        (pa.large_string(), TEXTS),
        (pa.int64(), [0, -1, 2**63 - 1, -(2**63)]),
        (pa.int32(), [0, 7, -(2**31)]),
        (pa.float64(), FLOATS),
        (pa.float32(), [0.1, 1e30, float("nan")]),
        (pa.bool_(), [True, False]),
        (pa.decimal128(38, 9), [decimal.Decimal("26.790000000"), decimal.Decimal("-0.5")]),
        (pa.date32(), [dt.date(2024, 2, 29), dt.date(1, 1, 1)]),
        (pa.timestamp("us"), [dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.datetime(2024, 1, 2)]),
        (pa.timestamp("us", tz="UTC"), [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)]),
        (pa.time64("us"), [dt.time(1, 2, 3)]),
        (pa.binary(), [b"\x00\xff", b""]),
        (pa.list_(pa.int64()), [[1, 2], []]),
        (pa.struct([("a", pa.string()), ("b", pa.float64())]), [{"a": "é", "b": 1e16}]),
        (pa.null(), [None]),
    ],
)
def test_each_type_is_encoded_as_json_dumps_does(kind: pa.DataType, values: list[Any]) -> None:
    with_nulls = [*values, None]
    table = pa.table(
        {
            "v": pa.array(with_nulls, type=kind),
            "k": pa.array(range(len(with_nulls)), type=pa.int64()),
            SEQ_COLUMN: pa.array(range(10, 10 + len(with_nulls)), type=pa.int64()),
        }
    )
    names = ["v", "k"]
    assert governed_events(table, governed(tuple(names))) == expected(table, names)
    without_nulls = table.slice(0, len(values))
    assert governed_events(without_nulls, governed(tuple(names))) == expected(without_nulls, names)


def test_odd_and_repeated_names_and_no_columns() -> None:
    table = pa.table({"a": [1, None], "b": ["x", "y"], SEQ_COLUMN: [5, 6]})
    for names in (["100%", 'q"é'], ["same", "same"]):
        assert governed_events(table, governed(tuple(names))) == expected(table, names)
    empty = pa.table({SEQ_COLUMN: pa.array([7, 8], type=pa.int64())})
    assert governed_events(empty, replace(governed(()), columns=())) == [(7, b"{}"), (8, b"{}")]
    assert governed_events(table.slice(0, 0), governed(("a", "b"))) == []
