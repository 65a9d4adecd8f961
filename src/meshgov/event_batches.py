"""Events as Arrow: decoding raw JSON events against an events port's columns (its schema),
encoding governed rows back to JSON, and reading a principal's governed events from a position.

An event is one JSON object whose fields are the port's columns. Decoding is strict (no
coercion: a string where a number is declared is refused), so that what a row filter and a mask
see is what the schema says; a refused event carries its reason (``BadEvent``).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import json
import json.encoder
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshgov.brokers.base import Broker, BrokerError, BrokerMessage
from meshgov.core.manifest import LogicalType
from meshgov.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from meshgov.core.manifest import Manifest, OutputPort
    from meshgov.core.principal import Principal
    from meshgov.gateway import Gateway
    from meshgov.governed import GovernedPort, GovernedRunner

# The raw stream position of each event, carried through the secure SQL (not a port column).
SEQ_COLUMN = "__meshgov_seq"


def _arrow_type(kind: LogicalType) -> pa.DataType:
    import pyarrow as pa

    return {
        LogicalType.string: pa.string(),
        LogicalType.integer: pa.int64(),
        LogicalType.number: pa.float64(),
        LogicalType.decimal: pa.decimal128(38, 9),
        LogicalType.boolean: pa.bool_(),
        LogicalType.date: pa.date32(),
        LogicalType.timestamp: pa.timestamp("us"),
        LogicalType.binary: pa.binary(),
        # Nested values travel as their JSON text (masks on them are `null`/`redact`).
        LogicalType.array: pa.string(),
        LogicalType.struct: pa.string(),
    }[kind]


class BadEvent(ValueError):
    """Why an event cannot be governed (goes to the dead-letter subject with this reason)."""


def _convert(kind: LogicalType, name: str, value: Any) -> Any:
    def wrong(expected: str) -> BadEvent:
        return BadEvent(f"field {name!r}: expected {expected}, got {type(value).__name__}")

    if kind is LogicalType.string:
        if not isinstance(value, str):
            raise wrong("a string")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise BadEvent(f"field {name!r}: not valid Unicode text") from None
        return value
    if kind is LogicalType.integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        if not -(2**63) <= value < 2**63:
            raise BadEvent(f"field {name!r}: integer out of range")
        return value
    if kind is LogicalType.number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        try:
            return float(value)
        except OverflowError:
            raise BadEvent(f"field {name!r}: number out of range") from None
    if kind is LogicalType.decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise wrong("a decimal number")
        try:
            number = decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise BadEvent(f"field {name!r}: {value!r} is not a decimal number") from None
        if not number.is_finite():
            raise BadEvent(f"field {name!r}: {value!r} is not a finite decimal number")
        return number
    if kind is LogicalType.boolean:
        if not isinstance(value, bool):
            raise wrong("a boolean")
        return value
    if kind is LogicalType.date:
        if not isinstance(value, str):
            raise wrong("an ISO date string")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise BadEvent(f"field {name!r}: {value!r} is not an ISO date") from None
    if kind is LogicalType.timestamp:
        if not isinstance(value, str):
            raise wrong("an ISO timestamp string")
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            raise BadEvent(f"field {name!r}: {value!r} is not an ISO timestamp") from None
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
        return stamp
    if kind is LogicalType.binary:
        if not isinstance(value, str):
            raise wrong("base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise BadEvent(f"field {name!r}: not base64") from None
    if kind is LogicalType.array:
        if not isinstance(value, list):
            raise wrong("an array")
        return json.dumps(value, separators=(",", ":"))
    if not isinstance(value, dict):
        raise wrong("an object")
    return json.dumps(value, separators=(",", ":"))


# Column types pyarrow's JSON reader decodes exactly as ``_convert`` does (no coercion: a
# string for a number, a float for an integer, an out-of-range integer is an error there too).
_BULK_TYPES = frozenset(
    {LogicalType.string, LogicalType.integer, LogicalType.number, LogicalType.boolean}
)
# Types that are JSON strings in an event: read as strings in bulk, then converted by
# ``_convert`` value by value (the same function as the event-by-event path).
_TEXT_TYPES = frozenset({LogicalType.date, LogicalType.timestamp, LogicalType.binary})


@functools.lru_cache(maxsize=256)
def _bulk_schema(columns: tuple[tuple[str, LogicalType], ...]) -> pa.Schema | None:
    """What pyarrow's reader reads a port's events as, if it can read them all (else None)."""
    import pyarrow as pa

    if any(kind not in _BULK_TYPES | _TEXT_TYPES for _, kind in columns):
        return None
    return pa.schema(
        [
            (name, pa.string() if kind in _TEXT_TYPES else _arrow_type(kind))
            for name, kind in columns
        ]
    )


def _decode_bulk(port: OutputPort, messages: list[BrokerMessage]) -> pa.Table | None:
    """The whole batch decoded by one call of pyarrow's JSON reader over the newline-joined
    events, when that is exactly what ``_decode_one`` would give for each: every event one
    line (no raw newline or carriage return in any; none blank, so each line gives at least a
    row and the row count proves each gave exactly one), valid UTF-8, every required column
    present, no infinite number. Anything else (a malformed event, a duplicate key, a lone
    surrogate...) returns None and the batch is decoded event by event, which names each bad
    event."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    schema = _bulk_schema(tuple((c.name, c.type) for c in port.columns))
    if not messages or schema is None:
        return None
    events = [m.data for m in messages]
    body = b"\n".join(events)
    if body.count(b"\n") != len(messages) - 1 or b"\r" in body:
        return None
    if not all(event.strip() for event in events):
        return None
    try:
        body.decode()  # pyarrow's reader would take invalid UTF-8 into a string column as is
    except UnicodeDecodeError:
        return None
    try:
        table = pj.read_json(
            pa.BufferReader(body),
            # One block for the whole batch (one chunk per column), within int32.
            read_options=pj.ReadOptions(
                use_threads=False, block_size=max(1 << 16, min(len(body) + 1, 1 << 30))
            ),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != len(messages):
        return None
    for column in port.columns:
        values = table.column(column.name)
        if column.required and values.null_count:
            return None
        if column.type is LogicalType.number and pc.any(pc.is_inf(values)).as_py():
            return None
        if column.type in _TEXT_TYPES:
            try:
                converted = [
                    None if v is None else _convert(column.type, column.name, v)
                    for v in values.to_pylist()
                ]
            except BadEvent:
                return None
            index = table.schema.get_field_index(column.name)
            table = table.set_column(
                index, column.name, pa.array(converted, type=_arrow_type(column.type))
            )
    table = table.select([c.name for c in port.columns])
    sequences = pa.array([m.sequence for m in messages], type=pa.int64())
    return table.append_column(SEQ_COLUMN, sequences).combine_chunks()


def decode_events(
    port: OutputPort, messages: list[BrokerMessage], max_bytes: int
) -> tuple[pa.Table, list[tuple[BrokerMessage, str]]]:
    """The well-formed events as one Arrow table (port columns + ``SEQ_COLUMN``), and the
    others with the reason each was refused."""
    import pyarrow as pa

    if all(len(m.data) <= max_bytes for m in messages):
        table = _decode_bulk(port, messages)
        if table is not None:
            return table, []

    columns = [(c.name, c.type, c.required) for c in port.columns]
    values: list[list[Any]] = [[] for _ in columns]
    sequences: list[int] = []
    bad: list[tuple[BrokerMessage, str]] = []
    for message in messages:
        try:
            if len(message.data) > max_bytes:
                raise BadEvent(f"event of {len(message.data)} bytes exceeds the limit {max_bytes}")
            try:
                event = json.loads(message.data)
            except (ValueError, UnicodeDecodeError):
                raise BadEvent("not JSON") from None
            if not isinstance(event, dict):
                raise BadEvent(f"not a JSON object (a {type(event).__name__})")
            row: list[Any] = []
            for name, kind, required in columns:
                value = event.get(name)
                if value is None:
                    if required:
                        raise BadEvent(f"missing required field {name!r}")
                    row.append(None)
                    continue
                row.append(_convert(kind, name, value))
        except BadEvent as exc:
            bad.append((message, str(exc)))
            continue
        for index, value in enumerate(row):
            values[index].append(value)
        sequences.append(message.sequence)
    arrays = [
        pa.array(column_values, type=_arrow_type(kind))
        for column_values, (_, kind, _) in zip(values, columns, strict=True)
    ]
    arrays.append(pa.array(sequences, type=pa.int64()))
    names = [name for name, _, _ in columns] + [SEQ_COLUMN]
    return pa.Table.from_arrays(arrays, names=names), bad


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")  # 26.79, not the column scale's 26.790000000
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


# One encoder for every value that has no faster path below: the same text as ``json.dumps``
# with these arguments gives (which builds such an encoder on every call).
_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"))
_encode_text: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring_ascii", None) or (
    json.encoder.encode_basestring_ascii
)


def _float_text(value: float) -> str:
    # As ``json``'s encoder writes a float (allow_nan: NaN and the infinities as JavaScript names).
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


_INFINITY = float("inf")


def _column_texts(values: pa.ChunkedArray) -> list[str]:
    """Each value of a result column as the JSON text ``json.dumps`` writes for it in an event."""
    import pyarrow as pa

    kind = values.type
    items = values.to_pylist()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encode: Callable[[Any], str] = _encode_text
    elif pa.types.is_integer(kind):
        encode = int.__repr__
    elif pa.types.is_floating(kind):
        encode = _float_text
    elif pa.types.is_boolean(kind):
        return ["null" if v is None else "true" if v else "false" for v in items]
    else:
        encode = _ENCODER.encode
    if values.null_count:
        return ["null" if v is None else encode(v) for v in items]
    return list(map(encode, items))


def governed_events(table: pa.Table, governed: GovernedPort) -> list[tuple[int, bytes]]:
    """(raw sequence, governed event as JSON) of the rows the secure SQL returned.

    Each event is the text ``json.dumps(dict(zip(names, row)), default=_json_default,
    separators=(",", ":"))`` gives, built column by column: each column's values encoded in
    one pass, then each row's texts put into one template of the column names.
    """
    names = list(governed.columns)
    sequences = table.column(table.num_columns - 1).to_pylist()
    if len(set(names)) != len(names):  # a dict would keep one of each name: encode it as one
        columns = [table.column(i).to_pylist() for i in range(table.num_columns - 1)]
        return [
            (int(sequence), _ENCODER.encode(dict(zip(names, row, strict=True))).encode())
            for sequence, row in zip(sequences, zip(*columns, strict=True), strict=True)
        ]
    template = "{" + ",".join(_encode_text(name).replace("%", "%%") + ":%s" for name in names) + "}"
    texts = [_column_texts(table.column(i)) for i in range(table.num_columns - 1)]
    if not texts:
        return [(int(sequence), b"{}") for sequence in sequences]
    return [
        (int(sequence), (template % row).encode())
        for sequence, row in zip(sequences, zip(*texts, strict=True), strict=True)
    ]


def events_port(gateway: Gateway, product: str, port: str) -> tuple[Manifest, OutputPort]:
    from meshgov.governed import find_port

    manifest, declared = find_port(gateway.catalog, product, port)
    if declared.stream is None:
        raise InputError(f"{product}:{port} declares no `stream:` (subject) to relay")
    return manifest, declared


# ------------------------------------------------------------------------------ pull API
@dataclass(frozen=True)
class PulledEvent:
    sequence: int
    event: bytes  # governed JSON
    revision: str


async def pull_events(
    broker: Broker,
    gateway: Gateway,
    runner: GovernedRunner,
    principal: Principal,
    purpose: str | None,
    product: str,
    port: str,
    *,
    start: int,
    limit: int,
    wait: float,
    batch: int = 256,
) -> AsyncIterator[PulledEvent]:
    """The principal's governed events of ``product:port`` from raw stream position ``start``.

    Same decision and secure SQL as the relay (and SQL); malformed events are skipped (the
    relay dead-letters them). Stops after ``limit`` governed events, or when no event came for
    ``wait`` seconds. Raises ``AccessDenied`` before reading anything if the decision denies.
    """
    from meshgov.governed import governed_port

    _, declared = events_port(gateway, product, port)
    assert declared.stream is not None
    governed = governed_port(
        gateway, principal, purpose, product, port, extra_columns=(SEQ_COLUMN,)
    )
    stream = declared.stream.name or await broker.stream_of(declared.stream.subject)
    if stream is None:
        raise BrokerError(f"no stream captures {declared.stream.subject}")
    reader = await broker.reader(stream, declared.stream.subject, start)
    sent = 0
    deadline = time.monotonic() + wait
    try:
        while sent < limit and time.monotonic() < deadline:
            messages = await reader.fetch(min(batch, limit - sent), min(0.5, wait))
            if not messages:
                continue
            deadline = time.monotonic() + wait
            table, _bad = decode_events(declared, messages, declared.stream.max_event_bytes)
            for sequence, data in governed_events(runner.run(governed, table), governed):
                yield PulledEvent(sequence, data, governed.policy_revision)
                sent += 1
                if sent >= limit:
                    break
    finally:
        await reader.close()
