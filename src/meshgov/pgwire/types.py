"""PostgreSQL types for Arrow results and for bound parameters.

Results: every Arrow type maps to a PostgreSQL type OID, with a text encoder (what psql and most
clients read) and a binary encoder (what asyncpg, pgJDBC and ADBC may ask for). Parameters: a
bound value becomes a typed sqlglot literal (never text spliced into SQL), decoded by the
parameter's type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON = 16, 17, 20, 21, 23, 25, 114
FLOAT4, FLOAT8, UNKNOWN, VARCHAR, BPCHAR = 700, 701, 705, 1043, 1042
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC, UUID = (
    1082,
    1083,
    1114,
    1184,
    1186,
    1700,
    2950,
)
NAME, OID, CHAR = 19, 26, 18
OID_ARRAY = 1028
# Array types of the element types above (pgJDBC and asyncpg know them by OID).
ARRAY_OF = {BOOL: 1000, INT2: 1005, INT4: 1007, INT8: 1016, TEXT: 1009, FLOAT4: 1021,
            FLOAT8: 1022, DATE: 1182, TIMESTAMP: 1115, TIMESTAMPTZ: 1185, NUMERIC: 1231,
            VARCHAR: 1015}  # fmt: skip

TYPE_NAMES = {
    BOOL: "boolean", BYTEA: "bytea", INT8: "bigint", INT2: "smallint", INT4: "integer",
    TEXT: "text", JSON: "json", FLOAT4: "real", FLOAT8: "double precision", VARCHAR: "varchar",
    DATE: "date", TIME: "time", TIMESTAMP: "timestamp", TIMESTAMPTZ: "timestamptz",
    NUMERIC: "numeric", UUID: "uuid", INTERVAL: "interval", BPCHAR: "bpchar",
}  # fmt: skip
TYPE_SIZES = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8,
              TIMESTAMP: 8, TIMESTAMPTZ: 8, UUID: 16, INTERVAL: 16}  # fmt: skip

# Manifest logical types → the parameter type announced for a comparison with such a column.
LOGICAL_OIDS = {"string": TEXT, "integer": INT8, "number": FLOAT8, "decimal": NUMERIC,
                "boolean": BOOL, "date": DATE, "timestamp": TIMESTAMP, "binary": BYTEA}  # fmt: skip

POSTGRES_EPOCH = dt.datetime(2000, 1, 1)
POSTGRES_EPOCH_DATE = dt.date(2000, 1, 1)
_UTC_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

Encoder = Callable[[Any], bytes]


@dataclass(frozen=True)
class PgType:
    """How one result column travels: its OID, modifier and encoders."""

    oid: int
    text: Encoder
    binary: Encoder
    modifier: int = -1

    @property
    def size(self) -> int:
        return TYPE_SIZES.get(self.oid, -1)


# --------------------------------------------------------------------------- text encoders
def _bool_text(value: Any) -> bytes:
    # pgJDBC reads a boolean as true only if the text is exactly "t".
    return b"t" if value else b"f"


def _float_text(value: Any) -> bytes:
    if math.isnan(value):
        return b"NaN"
    if math.isinf(value):
        return b"Infinity" if value > 0 else b"-Infinity"
    return repr(float(value)).removesuffix(".0").encode()


def _str_text(value: Any) -> bytes:
    return str(value).encode()


def _timestamp_text(value: Any) -> bytes:
    text: str = value.isoformat(sep=" ")
    if value.tzinfo is not None:
        text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ") + "+00"
    return text.encode()


def _bytea_text(value: Any) -> bytes:
    return b"\\x" + bytes(value).hex().encode()


def _json_text(value: Any) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


def _array_text(element: Encoder) -> Encoder:
    def encode(values: Any) -> bytes:
        parts: list[bytes] = []
        for item in values:
            if item is None:
                parts.append(b"NULL")
                continue
            raw = element(item)
            if not raw or any(c in raw for c in b'{},"\\ ') or raw.upper() == b"NULL":
                raw = b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
            parts.append(raw)
        return b"{" + b",".join(parts) + b"}"

    return encode


def _interval_text(value: Any) -> bytes:
    if isinstance(value, dt.timedelta):
        days, seconds = value.days, value.seconds
        micro = value.microseconds
        hours, rem = divmod(seconds, 3600)
        minutes, secs = divmod(rem, 60)
        clock = f"{hours:02d}:{minutes:02d}:{secs:02d}" + (f".{micro:06d}" if micro else "")
        return (f"{days} days {clock}" if days else clock).encode()
    months, days, nanos = value.months, value.days, value.nanoseconds
    return f"{months} mons {days} days {nanos // 1000} microseconds".encode()


# --------------------------------------------------------------------------- binary encoders
_B = struct.Struct("!?")
_H = struct.Struct("!h")
_I = struct.Struct("!i")
_Q = struct.Struct("!q")
_F = struct.Struct("!f")
_D = struct.Struct("!d")


def _date_binary(value: Any) -> bytes:
    return _I.pack((value - POSTGRES_EPOCH_DATE).days)


def _timestamp_binary(value: Any) -> bytes:
    delta = value - (_UTC_EPOCH if value.tzinfo is not None else POSTGRES_EPOCH)
    return _Q.pack((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _time_binary(value: Any) -> bytes:
    return _Q.pack(
        ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    )


def _numeric_binary(value: Any) -> bytes:
    """PostgreSQL's base-10000 numeric: ndigits, weight, sign, dscale, digits."""
    number = decimal.Decimal(value)
    if number.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(-exponent, 0)
    text = "".join(map(str, digits))
    # Pad so the decimal point falls on a base-10000 boundary.
    integer_len = len(text) + exponent
    frac = text[integer_len:] if integer_len >= 0 else "0" * -integer_len + text
    whole = text[:integer_len] if integer_len > 0 else ""
    whole = whole + "0" * max(exponent, 0) if exponent > 0 else whole
    whole = whole.zfill(-(-len(whole) // 4) * 4) if whole else ""
    frac = frac.ljust(-(-len(frac) // 4) * 4, "0") if frac else ""
    groups = [int(whole[i : i + 4]) for i in range(0, len(whole), 4)]
    frac_groups = [int(frac[i : i + 4]) for i in range(0, len(frac), 4)]
    weight = len(groups) - 1
    all_groups = groups + frac_groups
    while all_groups and all_groups[0] == 0:
        all_groups.pop(0)
        weight -= 1
    while all_groups and all_groups[-1] == 0:
        all_groups.pop()
    if not all_groups:
        weight = 0
    header = struct.pack("!hhHh", len(all_groups), weight, 0x4000 if sign else 0, dscale)
    return header + b"".join(_H.pack(g) for g in all_groups)


def _array_binary(element_oid: int, element: Encoder) -> Encoder:
    def encode(values: Any) -> bytes:
        items = list(values)
        has_null = any(v is None for v in items)
        out = [struct.pack("!iiiii", 1, int(has_null), element_oid, len(items), 1)]
        for item in items:
            if item is None:
                out.append(_I.pack(-1))
            else:
                raw = element(item)
                out.append(_I.pack(len(raw)) + raw)
        return b"".join(out)

    return encode


def _utf8(value: Any) -> bytes:
    return str(value).encode()


_SIMPLE: dict[int, PgType] = {
    BOOL: PgType(BOOL, _bool_text, lambda v: _B.pack(bool(v))),
    INT2: PgType(INT2, _str_text, lambda v: _H.pack(int(v))),
    INT4: PgType(INT4, _str_text, lambda v: _I.pack(int(v))),
    INT8: PgType(INT8, _str_text, lambda v: _Q.pack(int(v))),
    FLOAT4: PgType(FLOAT4, _float_text, lambda v: _F.pack(float(v))),
    FLOAT8: PgType(FLOAT8, _float_text, lambda v: _D.pack(float(v))),
    NUMERIC: PgType(NUMERIC, _str_text, _numeric_binary),
    TEXT: PgType(TEXT, _str_text, _utf8),
    BYTEA: PgType(BYTEA, _bytea_text, bytes),
    DATE: PgType(DATE, _str_text, _date_binary),
    TIME: PgType(TIME, _str_text, _time_binary),
    TIMESTAMP: PgType(TIMESTAMP, _timestamp_text, _timestamp_binary),
    TIMESTAMPTZ: PgType(TIMESTAMPTZ, _timestamp_text, _timestamp_binary),
    JSON: PgType(JSON, _json_text, _json_text),
    INTERVAL: PgType(INTERVAL, _interval_text, lambda v: _interval_text(v)),
}


def pg_type(arrow_type: pa.DataType) -> PgType:
    """The PostgreSQL type a column of ``arrow_type`` is sent as."""
    t = pa.types
    if t.is_boolean(arrow_type):
        return _SIMPLE[BOOL]
    if t.is_int8(arrow_type) or t.is_int16(arrow_type) or t.is_uint8(arrow_type):
        return _SIMPLE[INT2]
    if t.is_int32(arrow_type) or t.is_uint16(arrow_type):
        return _SIMPLE[INT4]
    if t.is_integer(arrow_type):
        return _SIMPLE[INT8]
    if t.is_float16(arrow_type) or t.is_float32(arrow_type):
        return _SIMPLE[FLOAT4]
    if t.is_floating(arrow_type):
        return _SIMPLE[FLOAT8]
    if t.is_decimal(arrow_type):
        base = _SIMPLE[NUMERIC]
        modifier = ((arrow_type.precision << 16) | arrow_type.scale) + 4
        return PgType(NUMERIC, base.text, base.binary, modifier)
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return _SIMPLE[TEXT]
    if (
        t.is_binary(arrow_type)
        or t.is_large_binary(arrow_type)
        or t.is_fixed_size_binary(arrow_type)
    ):
        return _SIMPLE[BYTEA]
    if t.is_date(arrow_type):
        return _SIMPLE[DATE]
    if t.is_time(arrow_type):
        return _SIMPLE[TIME]
    if t.is_timestamp(arrow_type):
        return _SIMPLE[TIMESTAMPTZ if arrow_type.tz else TIMESTAMP]
    if t.is_duration(arrow_type) or t.is_interval(arrow_type):
        return PgType(TEXT, _interval_text, _interval_text)
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        element = pg_type(arrow_type.value_type)
        array_oid = ARRAY_OF.get(element.oid)
        if array_oid is not None:
            return PgType(
                array_oid, _array_text(element.text), _array_binary(element.oid, element.binary)
            )
        return PgType(JSON, _json_text, _json_text)
    if t.is_struct(arrow_type) or t.is_map(arrow_type):
        return PgType(JSON, _json_text, _json_text)
    # Null-typed columns (a bare NULL) and anything else travel as text.
    return PgType(TEXT, _str_text, _utf8)


# --------------------------------------------------------------------------- parameters
class ParameterError(ValueError):
    """A bound value that does not decode as its declared type (SQLSTATE 22P02)."""


def _text_of(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ParameterError("parameter is not UTF-8 text") from None


def parameter_literal(raw: bytes | None, oid: int, binary: bool) -> exp.Expression:
    """A bound parameter value as a typed sqlglot literal (``NULL`` for SQL null)."""
    if raw is None:
        return exp.Null()
    try:
        if binary:
            return _binary_literal(raw, oid)
        return _text_literal(_text_of(raw), oid)
    except (struct.error, ValueError, decimal.InvalidOperation, OverflowError) as exc:
        if isinstance(exc, ParameterError):
            raise
        name = TYPE_NAMES.get(oid, f"type {oid}")
        raise ParameterError(f"invalid input for a parameter of type {name}") from None


def _cast(text: str, type_name: str) -> exp.Expression:
    return exp.cast(exp.Literal.string(text), exp.DataType.build(type_name, dialect="postgres"))


def _text_literal(text: str, oid: int) -> exp.Expression:
    if oid in _INTEGER_ARRAYS:
        inner = text.strip()
        if not (inner.startswith("{") and inner.endswith("}")):
            raise ParameterError(f"invalid array parameter: {text[:20]!r}")
        items = [i.strip() for i in inner[1:-1].split(",") if i.strip()]
        return _integer_array([None if i.upper() == "NULL" else int(i) for i in items], oid)
    if oid in (INT2, INT4, INT8, OID):
        return exp.Literal.number(int(text.strip()))
    if oid in (FLOAT4, FLOAT8):
        value = float(text)
        if math.isnan(value) or math.isinf(value):
            return _cast(text.strip(), "double precision")
        return exp.Literal.number(repr(value))
    if oid == NUMERIC:
        return exp.Literal.number(str(decimal.Decimal(text.strip())))
    if oid == BOOL:
        lowered = text.strip().lower()
        if lowered in {"t", "true", "yes", "on", "1", "y"}:
            return exp.true()
        if lowered in {"f", "false", "no", "off", "0", "n"}:
            return exp.false()
        raise ParameterError(f"invalid input for a boolean parameter: {text[:20]!r}")
    if oid == DATE:
        return _cast(dt.date.fromisoformat(text.strip()).isoformat(), "date")
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        stamp = dt.datetime.fromisoformat(text.strip())
        return _cast(stamp.isoformat(sep=" "), "timestamptz" if oid == TIMESTAMPTZ else "timestamp")
    return exp.Literal.string(text)


def _binary_literal(raw: bytes, oid: int) -> exp.Expression:
    if oid == INT2:
        return exp.Literal.number(_H.unpack(raw)[0])
    if oid == INT4:
        return exp.Literal.number(_I.unpack(raw)[0])
    if oid in (INT8,):
        return exp.Literal.number(_Q.unpack(raw)[0])
    if oid == FLOAT4:
        return _text_literal(repr(_F.unpack(raw)[0]), FLOAT8)
    if oid == FLOAT8:
        return _text_literal(repr(_D.unpack(raw)[0]), FLOAT8)
    if oid == BOOL:
        return exp.true() if _B.unpack(raw)[0] else exp.false()
    if oid == DATE:
        return _cast(
            (POSTGRES_EPOCH_DATE + dt.timedelta(days=_I.unpack(raw)[0])).isoformat(), "date"
        )
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        stamp = POSTGRES_EPOCH + dt.timedelta(microseconds=_Q.unpack(raw)[0])
        return _cast(stamp.isoformat(sep=" "), "timestamptz" if oid == TIMESTAMPTZ else "timestamp")
    if oid == NUMERIC:
        return exp.Literal.number(str(_numeric_from_binary(raw)))
    if oid == OID:
        return exp.Literal.number(struct.unpack("!I", raw)[0])
    if oid in _INTEGER_ARRAYS:
        return _integer_array(_binary_integers(raw), oid)
    if oid in (TEXT, VARCHAR, BPCHAR, NAME, UNKNOWN, 0, JSON):
        return exp.Literal.string(_text_of(raw))
    raise ParameterError(f"binary parameters of type {TYPE_NAMES.get(oid, oid)} are not supported")


# Arrays of integers and OIDs (catalogue queries bind `$1::oid[]`): element type name by OID.
_INTEGER_ARRAYS = {OID_ARRAY: "oid", 1005: "smallint", 1007: "integer", 1016: "bigint"}
_ELEMENT_FORMATS = {2: "!h", 4: "!i", 8: "!q"}


def _binary_integers(raw: bytes) -> list[int | None]:
    """The elements of a one-dimensional binary array of integers or OIDs."""
    ndim, _flags, element_oid = struct.unpack_from("!iiI", raw)
    if ndim == 0:
        return []
    if ndim != 1:
        raise ParameterError("only one-dimensional array parameters are supported")
    count, _lower = struct.unpack_from("!ii", raw, 12)
    offset = 20
    values: list[int | None] = []
    for _ in range(count):
        (length,) = struct.unpack_from("!i", raw, offset)
        offset += 4
        if length < 0:
            values.append(None)
            continue
        fmt = "!I" if element_oid == OID else _ELEMENT_FORMATS.get(length)
        if fmt is None:
            raise ParameterError("an array element of an unexpected size")
        values.append(struct.unpack_from(fmt, raw, offset)[0])
        offset += length
    return values


def _integer_array(values: list[int | None], oid: int) -> exp.Expression:
    """``CAST(ARRAY[...] AS element[])`` of literal numbers (and NULLs)."""
    elements = [exp.Null() if v is None else exp.Literal.number(v) for v in values]
    element = exp.DataType.build(_INTEGER_ARRAYS[oid], dialect="postgres")
    target = exp.DataType(this=exp.DataType.Type.ARRAY, expressions=[element], nested=True)
    return exp.cast(exp.Array(expressions=elements), target)


def _numeric_from_binary(raw: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", raw)
    if sign == 0xC000:
        raise ParameterError("NaN is not a supported numeric parameter")
    digits = struct.unpack_from(f"!{ndigits}h", raw, 8)
    value = decimal.Decimal(0)
    for index, digit in enumerate(digits):
        value += decimal.Decimal(digit).scaleb(4 * (weight - index))
    value = value.quantize(decimal.Decimal(1).scaleb(-dscale)) if dscale else value
    return -value if sign == 0x4000 else value


def oid_of_sql_type(data_type: exp.DataType) -> int:
    """The parameter OID to announce for a column of sqlglot type ``data_type``."""
    kind = data_type.this
    T = exp.DataType.Type
    mapping = {
        T.BOOLEAN: BOOL, T.SMALLINT: INT2, T.TINYINT: INT2, T.INT: INT4, T.BIGINT: INT8,
        T.FLOAT: FLOAT4, T.DOUBLE: FLOAT8, T.DECIMAL: NUMERIC, T.DATE: DATE,
        T.TIMESTAMP: TIMESTAMP, T.TIMESTAMPTZ: TIMESTAMPTZ, T.VARCHAR: TEXT, T.TEXT: TEXT,
        T.CHAR: TEXT, T.UUID: TEXT, T.BINARY: BYTEA, T.VARBINARY: BYTEA,
    }  # fmt: skip
    if isinstance(data_type, exp.ObjectIdentifier):
        return OID if str(kind).upper() == "OID" else TEXT
    if kind == T.ARRAY and data_type.expressions:
        element = data_type.expressions[0]
        if isinstance(element, exp.DataType):
            element_oid = oid_of_sql_type(element)
            return {OID: OID_ARRAY, **ARRAY_OF}.get(element_oid, TEXT)
    return mapping.get(kind, TEXT)


# Types whose binary form is their text form's bytes.
_SAME_BYTES = {TEXT, VARCHAR, BPCHAR, NAME, CHAR, UNKNOWN, JSON}


def text_to_binary(raw: bytes, oid: int) -> bytes:
    """A value PostgreSQL sent in text format, in the binary format of ``oid`` (catalogue rows
    for a client asking binary for some columns and text for others), through psycopg's own
    loaders and dumpers; ``ParameterError`` for a type it cannot convert (``regclass``: its
    binary form is an OID its text does not give)."""
    if oid in _SAME_BYTES:
        return raw
    from psycopg import adapters, pq

    try:
        loader = adapters.get_loader(oid, pq.Format.TEXT)
        dumper = adapters.get_dumper_by_oid(oid, pq.Format.BINARY)
    except Exception:  # psycopg has no binary form for it
        raise ParameterError(f"binary results of type {oid} are not supported") from None
    if loader is None:
        raise ParameterError(f"binary results of type {oid} are not supported")
    value = loader(oid, None).load(raw)
    dumped = dumper(type(value), None).dump(value)
    if dumped is None:
        raise ParameterError(f"binary results of type {oid} are not supported")
    return bytes(dumped)
