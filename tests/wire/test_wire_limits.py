"""Red-team probes of the wire listener's limits: query text size, and long texts off the loop."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import httpx
import psycopg
import pytest
from wire_server import WireServer

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_a_query_text_over_the_size_budget_is_54000(wire: WireServer, prepare: bool) -> None:
    """As on HTTP (413), a text over MESHGOV_MAX_SQL_CHARS is refused before it is parsed."""
    limit = wire.settings.max_sql_chars
    sql = "SELECT 1 AS x /* " + "x" * limit + " */"
    with psycopg.connect(wire.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(sql, prepare=prepare)
        assert caught.value.sqlstate == "54000"
        assert "MESHGOV_MAX_SQL_CHARS" in str(caught.value)
        # The session goes on.
        assert conn.execute("SELECT 1 AS x", prepare=prepare).fetchall() == [(1,)]


def test_http_answers_while_a_long_wire_query_is_parsed(wire: WireServer) -> None:
    """Parsing a long text (a second or more) happens off the event loop the HTTP API shares."""
    # Just under the size budget, and a syntax error at its end: all parsing, no rewriting.
    sql = "SELECT " + "+".join(["1"] * 24_000) + " FROM )"
    assert len(sql) < wire.settings.max_sql_chars
    outcome: list[str] = []

    def send() -> None:
        with psycopg.connect(wire.dsn(), autocommit=True) as conn:
            try:
                conn.execute(sql)
            except psycopg.Error as exc:
                outcome.append(str(exc.sqlstate))

    worker = threading.Thread(target=send)
    latencies: list[float] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{wire.http_port}", timeout=60) as client:
        worker.start()
        time.sleep(0.1)
        while worker.is_alive():
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
    worker.join()
    assert outcome == ["42601"]
    assert len(latencies) >= 3, latencies
    assert statistics.median(latencies) < 0.1, latencies
    assert max(latencies) < 0.5, latencies


def _startup(user: str) -> bytes:
    body = (196608).to_bytes(4, "big") + f"user\0{user}\0database\0analytics\0\0".encode()
    return (len(body) + 4).to_bytes(4, "big") + body


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    header = b""
    while len(header) < 5:
        header += sock.recv(5 - len(header))
    size = int.from_bytes(header[1:], "big") - 4
    body = b""
    while len(body) < size:
        body += sock.recv(size - len(body))
    return header[:1], body


def _sasl_first(nonce: str) -> bytes:
    first = f"n,,n=,r={nonce}".encode()
    payload = b"SCRAM-SHA-256\0" + len(first).to_bytes(4, "big") + first
    return b"p" + (len(payload) + 4).to_bytes(4, "big") + payload


@pytest.mark.parametrize("step", ["first", "second"])
def test_an_oversized_message_before_login_is_refused_at_once(wire: WireServer, step: str) -> None:
    """Before login a client may not announce a 50 MB message (the server would wait for it and
    buffer it): it gets 08P01 at once, as PostgreSQL limits authentication messages to 64 kB."""
    with socket.create_connection(("127.0.0.1", wire.pg_port), timeout=5) as sock:
        sock.sendall(_startup("analyst-eu"))
        assert _read_message(sock)[0] == b"R"  # SCRAM requested
        if step == "second":
            sock.sendall(_sasl_first("abcdefghijkl"))
            assert _read_message(sock)[0] == b"R"  # server-first
        sock.sendall(b"p" + (50_000_000).to_bytes(4, "big") + b"x" * 1000)
        answer = b""
        while b"08P01" not in answer:
            chunk = sock.recv(4096)  # a timeout here: the server waits for the 50 MB
            if not chunk:
                break
            answer += chunk
    assert b"08P01" in answer and b"invalid message length" in answer, answer


def _scram_salt(port: int, user: str) -> tuple[int, str]:
    """The authentication request a login as ``user`` gets, and the salt of its SCRAM exchange."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_startup(user))
        kind, body = _read_message(sock)
        assert kind == b"R"
        code = int.from_bytes(body[:4], "big")
        if code != 10:
            return code, ""
        sock.sendall(_sasl_first("abcdefghijkl"))
        kind, body = _read_message(sock)
        assert kind == b"R" and int.from_bytes(body[:4], "big") == 11
        attributes = dict(part.split("=", 1) for part in body[4:].decode().split(","))
        return code, f"{attributes['s']} i={attributes['i']}"


def test_the_login_exchange_does_not_tell_who_exists(wire: WireServer) -> None:
    """An unknown user is asked for SCRAM as a known one is, with a salt that stays the same
    (a salt changing at each attempt would mark the user as unknown)."""
    known = _scram_salt(wire.pg_port, "analyst-eu")
    unknown = _scram_salt(wire.pg_port, "no-such-principal")
    assert known[0] == unknown[0] == 10
    assert known == _scram_salt(wire.pg_port, "analyst-eu")
    assert unknown == _scram_salt(wire.pg_port, "no-such-principal")
    assert unknown[1] != _scram_salt(wire.pg_port, "another-unknown")[1]
    assert unknown[1].endswith(known[1].rsplit(" ", 1)[1])  # the same iteration count
