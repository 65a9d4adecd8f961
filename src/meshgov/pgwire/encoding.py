"""Rows and values on the wire: DataRows built a column at a time, text and binary forms,
COPY's text and CSV fields."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from meshgov.pgwire import messages as m
from meshgov.pgwire.errors import WireError
from meshgov.pgwire.state import Result
from meshgov.pgwire.types import ParameterError, text_to_binary

# Arrow types whose text form (pyarrow's cast to string) is PostgreSQL's text form.
_ARROW_TEXT_MATCHES_POSTGRES = (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string,
                                pa.types.is_date32, pa.types.is_decimal)  # fmt: skip
NULL_CELL = b"\xff\xff\xff\xff"


def encode_column(
    array: pa.Array, encoders: tuple[Callable[[Any], bytes], Callable[[Any], bytes]], binary: bool
) -> list[bytes | None]:
    """One column of a batch as the cells of its DataRows (None for SQL null)."""
    # pyarrow's cast has a fixed cost (tens of microseconds): worth it past a few rows.
    if (
        not binary
        and len(array) > 32
        and any(match(array.type) for match in _ARROW_TEXT_MATCHES_POSTGRES)
    ):
        import pyarrow.compute as pc

        return [None if v is None else v.encode() for v in pc.cast(array, pa.string()).to_pylist()]
    encode = encoders[1 if binary else 0]
    return [None if v is None else encode(v) for v in array.to_pylist()]


def encode_batch(
    batch: pa.RecordBatch,
    encoders: Sequence[tuple[Callable[[Any], bytes], Callable[[Any], bytes]]],
    binary_columns: Sequence[bool],
) -> list[bytes]:
    """The DataRow messages of one batch, encoded a column at a time."""
    width = len(encoders)
    count = width.to_bytes(2, "big")
    columns = [encode_column(batch.column(i), encoders[i], binary_columns[i]) for i in range(width)]
    messages: list[bytes] = []
    append = messages.append
    for cells in zip(*columns, strict=True):
        parts = [count]
        for cell in cells:
            if cell is None:
                parts.append(NULL_CELL)
            else:
                parts.append(len(cell).to_bytes(4, "big"))
                parts.append(cell)
        body = b"".join(parts)
        append(b"D" + (len(body) + 4).to_bytes(4, "big") + body)
    if width == 0:
        messages = [b"D\x00\x00\x00\x06\x00\x00"] * batch.num_rows
    return messages


def in_binary(value: bytes | None, oid: int) -> bytes | None:
    if value is None:
        return None
    try:
        return text_to_binary(value, oid)
    except ParameterError as exc:
        raise WireError("0A000", str(exc)) from None


def batch_rows(batch: pa.RecordBatch) -> Iterator[list[Any]]:
    columns = [column.to_pylist() for column in batch.columns]
    if not columns:
        return iter([[] for _ in range(batch.num_rows)])
    return (list(row) for row in zip(*columns, strict=True))


def fields_of(result: Result) -> list[m.Field]:
    return fields_of_list(result.fields)


def fields_of_list(fields: Sequence[tuple[str, int, int]]) -> list[m.Field]:
    from meshgov.pgwire.types import TYPE_SIZES

    return [m.Field(name, oid, TYPE_SIZES.get(oid, -1), mod) for name, oid, mod in fields]


def str_encode(value: Any) -> bytes:
    return str(value).encode()


def cell_length(raw: bytes) -> bytes:
    return len(raw).to_bytes(4, "big", signed=True)


def csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r') or not text:
        return '"' + text.replace('"', '""') + '"'
    return text


def copy_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
