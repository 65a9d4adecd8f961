"""PostgreSQL frontend/backend protocol v3: message framing, built and read as bytes.

Only what a server needs: decoding what clients send (startup packet, Query, Parse, Bind…) and
encoding what servers answer. No I/O here; ``connection.py`` reads and writes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!ci")


class ProtocolViolation(Exception):
    """The client sent bytes that are not the protocol (SQLSTATE 08P01)."""


def message(kind: bytes, payload: bytes = b"") -> bytes:
    """One backend message: type byte, length (self-inclusive), payload."""
    return _HEADER.pack(kind, len(payload) + 4) + payload


def cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


# --------------------------------------------------------------------------- backend messages
def authentication(code: int, extra: bytes = b"") -> bytes:
    return message(b"R", _I32.pack(code) + extra)


AUTH_OK = authentication(0)
AUTH_CLEARTEXT = authentication(3)
PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
PORTAL_SUSPENDED = message(b"s")
EMPTY_QUERY = message(b"I")
COPY_DONE = message(b"c")


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstring(name) + cstring(value))


def backend_key(pid: int, key: int) -> bytes:
    return message(b"K", _I32.pack(pid) + _I32.pack(key))


def ready_for_query(status: bytes) -> bytes:
    return message(b"Z", status)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstring(tag))


def error_response(sqlstate: str, text: str, *, severity: str = "ERROR", hint: str = "") -> bytes:
    fields = [b"S" + cstring(severity), b"V" + cstring(severity), b"C" + cstring(sqlstate)]
    fields.append(b"M" + cstring(text))
    if hint:
        fields.append(b"H" + cstring(hint))
    return message(b"E", b"".join(fields) + b"\x00")


def notice_response(text: str, *, sqlstate: str = "01000") -> bytes:
    fields = [b"SWARNING\x00", b"VWARNING\x00", b"C" + cstring(sqlstate), b"M" + cstring(text)]
    return message(b"N", b"".join(fields) + b"\x00")


@dataclass(frozen=True)
class Field:
    """One column of a RowDescription."""

    name: str
    type_oid: int
    type_size: int = -1
    type_modifier: int = -1


_FIELD = struct.Struct("!ihihih")


def row_description(fields: Sequence[Field], formats: Sequence[int]) -> bytes:
    # Table OID 0 and column number 0: pgJDBC then asks no extra catalogue query per result.
    parts = [_I16.pack(len(fields))]
    for index, field in enumerate(fields):
        fmt = formats[index] if index < len(formats) else 0
        parts.append(cstring(field.name))
        parts.append(_FIELD.pack(0, 0, field.type_oid, field.type_size, field.type_modifier, fmt))
    return message(b"T", b"".join(parts))


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(b"t", _I16.pack(len(oids)) + b"".join(_I32.pack(o) for o in oids))


def data_row(values: Iterable[bytes | None]) -> bytes:
    cells = list(values)
    parts = [_I16.pack(len(cells))]
    for value in cells:
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(_I32.pack(len(value)))
            parts.append(value)
    return message(b"D", b"".join(parts))


def copy_out_response(binary: bool, columns: int) -> bytes:
    fmt = 1 if binary else 0
    body = bytes([fmt]) + _I16.pack(columns) + b"".join(_I16.pack(fmt) for _ in range(columns))
    return message(b"H", body)


def copy_data(payload: bytes) -> bytes:
    return message(b"d", payload)


# --------------------------------------------------------------------------- frontend messages
class Reader:
    """Reads the fields of one frontend message's payload, failing on truncation."""

    def __init__(self, payload: bytes) -> None:
        self._data = payload
        self._pos = 0

    def int16(self) -> int:
        value: int = self._unpack(_I16)
        return value

    def int32(self) -> int:
        value: int = self._unpack(_I32)
        return value

    def _unpack(self, fmt: struct.Struct) -> int:
        end = self._pos + fmt.size
        if end > len(self._data):
            raise ProtocolViolation("message too short")
        (value,) = fmt.unpack_from(self._data, self._pos)
        self._pos = end
        return int(value)

    def cstring(self) -> str:
        end = self._data.find(b"\x00", self._pos)
        if end < 0:
            raise ProtocolViolation("unterminated string")
        text = self._data[self._pos : end]
        self._pos = end + 1
        try:
            return text.decode()
        except UnicodeDecodeError:
            raise ProtocolViolation("string is not UTF-8") from None

    def bytes_(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise ProtocolViolation("message too short")
        value = self._data[self._pos : end]
        self._pos = end
        return value

    def byte(self) -> bytes:
        return self.bytes_(1)

    def rest(self) -> bytes:
        value = self._data[self._pos :]
        self._pos = len(self._data)
        return value


def startup_parameters(payload: bytes) -> dict[str, str]:
    """The name/value pairs of a StartupMessage (after its protocol version)."""
    reader = Reader(payload)
    params: dict[str, str] = {}
    while True:
        name = reader.cstring()
        if not name:
            return params
        params[name] = reader.cstring()


@dataclass(frozen=True)
class Parse:
    statement: str
    query: str
    param_oids: tuple[int, ...]


@dataclass(frozen=True)
class Bind:
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


def read_parse(payload: bytes) -> Parse:
    reader = Reader(payload)
    name, query = reader.cstring(), reader.cstring()
    count = reader.int16()
    return Parse(name, query, tuple(reader.int32() for _ in range(count)))


def read_bind(payload: bytes) -> Bind:
    reader = Reader(payload)
    portal, statement = reader.cstring(), reader.cstring()
    formats = tuple(reader.int16() for _ in range(reader.int16()))
    params: list[bytes | None] = []
    for _ in range(reader.int16()):
        size = reader.int32()
        params.append(None if size == -1 else reader.bytes_(size))
    results = tuple(reader.int16() for _ in range(reader.int16()))
    return Bind(portal, statement, formats, tuple(params), results)


def format_of(formats: Sequence[int], index: int) -> int:
    """The format code for column/parameter ``index``: one code for all, or one each, or text."""
    if not formats:
        return 0
    if len(formats) == 1:
        return formats[0]
    if index >= len(formats):
        raise ProtocolViolation("fewer format codes than columns")
    return formats[index]
