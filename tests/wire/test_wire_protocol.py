"""Protocol behaviour the clients rely on: cancel, timeouts, login rules, limits, sessions."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from wire_server import ROOT, WireServer, serve

pytestmark = pytest.mark.postgres

# Billions of combinations: runs until cancelled or timed out on either engine.
SLOW = "SELECT count(*) FROM commerce.order_items a, commerce.order_items b, commerce.order_items c"


def test_cancel_request_interrupts_the_engine(any_wire: WireServer) -> None:
    import psycopg

    with psycopg.connect(any_wire.dsn(), autocommit=True) as conn:
        # A cancel that arrives before the query does is lost (PostgreSQL's rule: it cancels
        # what runs, nothing later), so under load one cancel at a fixed time may come too
        # early: it is sent again every 0.3 s until the query has raised (for 10 s at most).
        # cancel_safe: the plain cancel() blocks holding the GIL, and this server is in-process.
        raised = threading.Event()

        def cancel_until_raised() -> None:
            deadline = time.monotonic() + 10
            while not raised.wait(0.3) and time.monotonic() < deadline:
                conn.cancel_safe()

        canceller = threading.Thread(target=cancel_until_raised, daemon=True)
        started = time.monotonic()
        canceller.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute(SLOW)
        finally:
            raised.set()
            # cancel_safe returns once the server has handled it: none is left for what follows.
            canceller.join()
        assert time.monotonic() - started < 10
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session survives


def test_statement_timeout_is_57014(wire: WireServer) -> None:
    import psycopg

    with psycopg.connect(wire.dsn(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '300ms'")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("300",)
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            conn.execute(SLOW)
        conn.execute("RESET statement_timeout")
        assert conn.execute("SELECT count(*) FROM commerce.orders").fetchone()[0] > 0


def test_session_commands_are_answered_without_data(wire: WireServer) -> None:
    import psycopg

    with psycopg.connect(wire.dsn()) as conn:  # psycopg opens a transaction: BEGIN
        conn.execute("SET application_name = 'meshgov-test'")
        assert conn.execute("SHOW application_name").fetchone() == ("meshgov-test",)
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == (
            "meshgov-test",
        )
        conn.execute("SAVEPOINT before")
        conn.execute("ROLLBACK TO SAVEPOINT before")
        conn.execute("RELEASE SAVEPOINT before")
        assert conn.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SET work_memory_typo = 1")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE postgres")
        conn.rollback()
        conn.execute("DISCARD ALL")


def test_failed_transaction_refuses_until_rollback(wire: WireServer) -> None:
    import psycopg

    with psycopg.connect(wire.dsn()) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT failed_payment_count FROM marketing.customer_360")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_extended_protocol_row_limits_suspend_the_portal(wire: WireServer) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    import asyncio

    async def scenario() -> list[int]:
        conn = await asyncpg.connect(wire.url())
        try:
            sizes = []
            async with conn.transaction():
                cursor = await conn.cursor("SELECT order_id FROM commerce.orders ORDER BY order_id")
                while batch := await cursor.fetch(5):
                    sizes.append(len(batch))
            return sizes
        finally:
            await conn.close()

    sizes = asyncio.run(scenario())
    assert sizes[0] == 5 and len(sizes) > 1


def test_cleartext_token_only_over_loopback_or_tls(
    tmp_path: Path, pg_admin_dsn: str, catalogue_prefix: str
) -> None:
    """A tokens file without SCRAM verifiers: the token is the password, over loopback here."""
    import psycopg

    tokens = tmp_path / "tokens.yaml"
    lines = (ROOT / "examples" / "tokens.yaml").read_text(encoding="utf-8").splitlines()
    tokens.write_text(
        "\n".join(line for line in lines if not line.strip().startswith("scram:")),
        encoding="utf-8",
    )
    for server in serve(tmp_path, pg_admin_dsn, catalogue_prefix, tokens_file=tokens):
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("analyst-eu",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(server.dsn().replace("dev-analyst-eu", "dev-analyst-us"))


def test_connection_limit_per_principal(
    tmp_path: Path, pg_admin_dsn: str, catalogue_prefix: str
) -> None:
    import psycopg

    for server in serve(
        tmp_path, pg_admin_dsn, catalogue_prefix, pg_max_connections_per_principal=2
    ):
        first = psycopg.connect(server.dsn())
        second = psycopg.connect(server.dsn())
        try:
            with pytest.raises(psycopg.OperationalError, match="too many connections"):
                psycopg.connect(server.dsn())
            other = psycopg.connect(server.dsn(user="analyst-us"))  # another principal is fine
            other.close()
        finally:
            first.close()
            second.close()
        time.sleep(0.2)
        psycopg.connect(server.dsn()).close()  # freed on disconnect


def test_garbage_is_a_protocol_error_not_a_crash(wire: WireServer) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", wire.pg_port), timeout=5) as sock:
        sock.sendall(b"\x00\x00\x00\x08\x12\x34\x56\x78")
        reply = sock.recv(1000)
    assert reply.startswith(b"E") and b"unsupported protocol version" in reply
    import psycopg

    with psycopg.connect(wire.dsn(), autocommit=True) as conn:  # still serving
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_tls_with_a_configured_certificate(
    tmp_path: Path, pg_admin_dsn: str, catalogue_prefix: str
) -> None:
    import shutil
    import subprocess

    import psycopg

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    for server in serve(tmp_path, pg_admin_dsn, catalogue_prefix, pg_tls_cert=cert, pg_tls_key=key):
        with psycopg.connect(server.dsn(sslmode="require"), autocommit=True) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT current_user").fetchone() == ("analyst-eu",)
        verified = server.dsn(sslmode="verify-full", sslrootcert=str(cert))
        with psycopg.connect(verified, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM customer.customers").fetchone()[0] > 0
        # A startup packet sent in clear right behind the SSLRequest must not be read as if it
        # had come over TLS (PostgreSQL's CVE-2021-23214): the server answers no 'S' to it.
        import socket
        import struct

        ssl_request = struct.pack("!ii", 8, 80877103)
        params = b"user\x00analyst-eu\x00database\x00analytics\x00\x00"
        startup = struct.pack("!ii", 8 + len(params), 196608) + params
        with socket.create_connection(("127.0.0.1", server.pg_port), timeout=10) as raw:
            raw.sendall(ssl_request + startup)
            reply = b""
            while chunk := raw.recv(4096):
                reply += chunk
        assert not reply.startswith(b"S")
