"""Red-team probes of the wire listener's limits: query text size, and long texts off the loop."""

from __future__ import annotations

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
