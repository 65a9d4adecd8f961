"""Query results as bytes: Arrow IPC stream, CSV, JSON records or a plain-text grid.

Engines return Arrow, and Arrow holds values that Python and JSON cannot:

- dates and timestamps outside Python's ``datetime`` (years before 1 or after 9999, DuckDB's
  ``infinity``, nanoseconds): they are rendered as text, the same in the text grid, the JSON of
  the CLI and the JSON of ``POST /v1/query/execute``: ``infinity`` / ``-infinity``, an ISO date with
  the year as it is (``20000-01-01``, ``-0043-03-15`` for 44 BC, astronomical numbering), a
  timestamp as ``20000-01-01 10:00:00`` (fraction and ``+00:00`` as Python writes an in-range one).
  CSV is Arrow's own text, except that infinities are written ``infinity`` / ``-infinity``;
- floating-point ``NaN``, ``Infinity`` and ``-Infinity``, which JSON has no literal for: JSON output
  (CLI and HTTP) writes them as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (as
  PostgreSQL's ``to_json`` does), so that it is strict JSON and a NaN is not mistaken for NULL.
  The text grid and CSV keep ``nan`` / ``inf``.

Other values JSON has no type for (decimals, in-range dates and times, intervals) are their
``str()`` text.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


class ResultFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    arrow = "arrow"


# DuckDB's infinite dates and timestamps are the extreme values of their storage type.
_DATE_INFINITY = 2**31 - 1
_TIMESTAMP_INFINITY = 2**63 - 1
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_DAY_SECONDS = 86_400
_CONVERSION_ERRORS = (OverflowError, ValueError, ArithmeticError)


def serialize(table: pa.Table, result_format: ResultFormat | str) -> bytes:
    """An Arrow table as bytes: ``arrow`` (IPC stream), ``csv``, ``json`` (records) or ``table``."""
    import pyarrow as pa

    fmt = ResultFormat(result_format)
    if fmt is ResultFormat.arrow:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue().to_pybytes())
    if fmt is ResultFormat.csv:
        import pyarrow.csv as pa_csv

        sink = pa.BufferOutputStream()
        try:
            pa_csv.write_csv(_csv_ready(table), sink)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            # Nested columns have no CSV form; write them as JSON text.
            return _csv_fallback(table)
        return bytes(sink.getvalue().to_pybytes())
    if fmt is ResultFormat.json:
        return json_bytes(records(table)) + b"\n"
    return render_text_table(table).encode()


# Rows per encoded chunk of a streamed result: a chunk's Python values are all that is held.
ENCODE_BATCH_ROWS = 16_384


class _ChunkSink(io.RawIOBase):
    """A writable file that hands out what was written since the last ``take``."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def arrow_stream_chunks(table: pa.Table, batch_rows: int = ENCODE_BATCH_ROWS) -> Iterator[bytes]:
    """The Arrow IPC stream of ``table``, a record batch at a time (what ``serialize`` writes)."""
    import pyarrow as pa

    sink = _ChunkSink()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        yield sink.take()
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()


def json_result_chunks(
    table: pa.Table, trailer: Mapping[str, Any], batch_rows: int = ENCODE_BATCH_ROWS
) -> Iterator[bytes]:
    """``{"columns": [...], "rows": [...], **trailer}`` as strict JSON, a batch of rows at a time.

    Equal (as JSON) to ``json_bytes`` of the whole document; only one batch of rows is ever held
    as Python values.
    """
    names = unique_names(table.column_names)
    yield b'{"columns": ' + json_bytes(list(table.column_names)) + b', "rows": ['
    first = True
    for batch in table.to_batches(max_chunksize=batch_rows):
        columns = [column_values(batch.column(i)) for i in range(batch.num_columns)]
        rows = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        if not rows:
            continue
        encoded = json_bytes(rows)[1:-1]  # the items, without the list's brackets
        yield encoded if first else b", " + encoded
        first = False
    tail = json_bytes(dict(trailer)) if trailer else b"{}"
    yield b"]" + (b", " + tail[1:] if trailer else b"}")


def json_bytes(document: Any) -> bytes:
    """Strict JSON (RFC 8259): non-finite floats as strings, other non-JSON values as text."""
    try:
        text = json.dumps(document, default=str, ensure_ascii=False, allow_nan=False)
    except ValueError:
        # Only when a NaN or an infinity is present: the common case pays no walk.
        text = json.dumps(_finite(document), default=str, ensure_ascii=False, allow_nan=False)
    return text.encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts (duplicate column names get a ``_2``, ``_3``… suffix)."""
    names = unique_names(table.column_names)
    columns = [column_values(table.column(i)) for i in range(table.num_columns)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def column_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of a column; what Python's types cannot hold becomes its text."""
    import pyarrow as pa

    try:
        return list(column.to_pylist())
    except _CONVERSION_ERRORS:
        pass
    if isinstance(column, pa.ChunkedArray):
        return [value for chunk in column.chunks for value in _array_values(chunk)]
    return _array_values(column)


def _array_values(array: pa.Array) -> list[Any]:
    import pyarrow as pa

    try:
        return list(array.to_pylist())
    except _CONVERSION_ERRORS:
        pass
    kind = array.type
    if pa.types.is_struct(kind):
        valid = array.is_valid().to_pylist()
        fields = [
            (kind.field(i).name, _array_values(child)) for i, child in enumerate(array.flatten())
        ]
        return [
            {name: values[row] for name, values in fields} if valid[row] else None
            for row in range(len(array))
        ]
    if pa.types.is_map(kind):
        return [
            None
            if not item.is_valid
            else [(e["key"], e["value"]) for e in _array_values(item.values)]
            for item in array
        ]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return [None if not item.is_valid else _array_values(item.values) for item in array]
    text = _temporal_text(kind)
    return [_value(item, text) for item in array]


def _value(item: pa.Scalar, text: Callable[[int], str] | None) -> Any:
    if not item.is_valid:
        return None
    try:
        return item.as_py()
    except _CONVERSION_ERRORS:
        # A date, timestamp, time or duration from its stored integer; anything else as Arrow
        # writes it.
        return text(item.value) if text is not None else str(item)


def _temporal_text(kind: pa.DataType) -> Callable[[int], str] | None:
    """How to write the stored integer of a date, timestamp, time or duration type."""
    import pyarrow as pa

    if pa.types.is_date32(kind):
        return _date_text
    if pa.types.is_date64(kind):
        return lambda ms: _date_text(ms // (_DAY_SECONDS * 1000))
    if pa.types.is_timestamp(kind):
        unit: str = kind.unit
        return lambda value: _timestamp_text(value, unit, kind.tz is not None)
    if pa.types.is_time(kind) or pa.types.is_duration(kind):
        time_unit: str = kind.unit
        return lambda value: _clock_text(value, time_unit)
    return None


def _date_text(days: int) -> str:
    if days >= _DATE_INFINITY:
        return "infinity"
    if days <= -_DATE_INFINITY:
        return "-infinity"
    year, month, day = _civil_from_days(days)
    return f"{_year_text(year)}-{month:02d}-{day:02d}"


def _timestamp_text(value: int, unit: str, aware: bool) -> str:
    if value >= _TIMESTAMP_INFINITY:
        return "infinity"
    if value <= -_TIMESTAMP_INFINITY:
        return "-infinity"
    per_second = _PER_SECOND[unit]
    days, within = divmod(value, _DAY_SECONDS * per_second)
    return f"{_date_text(days)} {_clock_text(within, unit)}" + ("+00:00" if aware else "")


def _clock_text(value: int, unit: str) -> str:
    """``HH:MM:SS`` and a fraction when there is one (hours may exceed 23 for a duration)."""
    per_second = _PER_SECOND[unit]
    sign = "-" if value < 0 else ""
    seconds, fraction = divmod(abs(value), per_second)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{sign}{hour:02d}:{minute:02d}:{second:02d}"
    if fraction:
        digits = len(str(per_second)) - 1
        text += "." + f"{fraction:0{digits}d}".ljust(6, "0")
    return text


def _year_text(year: int) -> str:
    """ISO 8601 years: four digits at least; before year 1, astronomical (0 is 1 BC)."""
    return f"-{-year:04d}" if year < 0 else f"{year:04d}"


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count since 1970-01-01, any year.

    Howard Hinnant's ``civil_from_days``; Python's ``date`` stops at years 1 and 9999.
    """
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out: list[str] = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        out.append(name if count == 1 else f"{name}_{count}")
    return out


def render_text_table(table: pa.Table) -> str:
    """A plain-text grid for terminals."""
    names = unique_names(table.column_names)
    cells = [[_cell(v) for v in column_values(table.column(i))] for i in range(table.num_columns)]
    widths = [max([len(n), *(len(c) for c in col)]) for n, col in zip(names, cells, strict=True)]
    lines = [
        " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    for row in zip(*cells, strict=True) if cells else []:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    lines.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict | list):
        return json_bytes(value).decode()
    return str(value)


def _csv_ready(table: pa.Table) -> pa.Table:
    """Arrow writes an infinite date as ``<value out of range: 2147483647>``; write ``infinity``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_date32(kind):
            limit, storage = _DATE_INFINITY, pa.int32()
        elif pa.types.is_timestamp(kind):
            limit, storage = _TIMESTAMP_INFINITY, pa.int64()
        else:
            continue
        stored = table.column(index).cast(storage)
        extremes = pc.min_max(stored).as_py()
        if extremes["max"] is None or -limit < extremes["min"] <= extremes["max"] < limit:
            continue
        text = pc.if_else(
            pc.greater_equal(stored, limit),
            "infinity",
            pc.if_else(
                pc.less_equal(stored, -limit), "-infinity", table.column(index).cast(pa.string())
            ),
        )
        table = table.set_column(index, field.name, text)
    return table


def _csv_fallback(table: pa.Table) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.column_names)
    for row in records(table):
        writer.writerow(
            "" if v is None else (json_bytes(v).decode() if isinstance(v, dict | list) else v)
            for v in row.values()
        )
    return buffer.getvalue().encode()
