"""The types a Describe announces for untyped parameters come from the columns the session's
principal sees: a column hidden from it (or absent) is compared with a ``text`` parameter alike,
so ParameterDescription does not tell a hidden column's name and type."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from wire_server import serve

ROOT = Path(__file__).resolve().parents[2]
TEXT, INT8 = 25, 20


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _read(sock: socket.socket) -> tuple[bytes, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    head = exactly(5)
    return head[:1], exactly(struct.unpack("!i", head[1:])[0] - 4)


def _parameter_types(port: int, user: str, sql: str) -> list[int]:
    """Log in with the token as cleartext password (loopback), Parse + Describe the statement,
    and return what its ParameterDescription announces."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        params = b"".join(k + b"\0" + v + b"\0" for k, v in [(b"user", user.encode()),
                          (b"database", b"analytics")]) + b"\0"  # fmt: skip
        sock.sendall(struct.pack("!ii", len(params) + 8, 196608) + params)
        while True:
            kind, body = _read(sock)
            if kind == b"R" and struct.unpack("!i", body[:4])[0] == 3:
                sock.sendall(_message(b"p", f"dev-{user}".encode() + b"\0"))
            assert kind != b"E", body
            if kind == b"Z":
                break
        parse = b"s1\0" + sql.encode() + b"\0" + struct.pack("!h", 0)
        sock.sendall(_message(b"P", parse) + _message(b"D", b"Ss1\0") + _message(b"S", b""))
        while True:
            kind, body = _read(sock)
            if kind == b"t":
                count = struct.unpack("!h", body[:2])[0]
                return list(struct.unpack(f"!{count}i", body[2 : 2 + 4 * count]))
            assert kind not in (b"Z", b"E"), body


def test_a_hidden_column_is_announced_as_text_like_an_absent_one(
    tmp_path: Path, pg_admin_dsn: str, catalogue_prefix: str
) -> None:
    tokens = tmp_path / "tokens.yaml"
    lines = (ROOT / "examples" / "tokens.yaml").read_text(encoding="utf-8").splitlines()
    tokens.write_text(
        "\n".join(line for line in lines if not line.strip().startswith("scram:")),
        encoding="utf-8",
    )
    sql = "SELECT customer_id FROM marketing.customer_360 WHERE {} = $1"
    for server in serve(tmp_path, pg_admin_dsn, catalogue_prefix, tokens_file=tokens):
        port = server.pg_port
        # failed_payment_count is an integer column hidden from analyst-eu (it was announced
        # as int8, telling that it exists and its type).
        hidden = _parameter_types(port, "analyst-eu", sql.format("failed_payment_count"))
        absent = _parameter_types(port, "analyst-eu", sql.format("no_such_column"))
        assert hidden == absent == [TEXT]
        # A column the principal sees still gets its type.
        assert _parameter_types(port, "analyst-eu", sql.format("order_count")) == [INT8]
