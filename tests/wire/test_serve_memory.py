"""A ``meshgov serve`` process on the DuckDB engine does not grow with the queries it serves.

Regression: such a process once grew by about 350 KB per wire query (2,000 queries on one
connection: +700 MB) while the same listener started in-process stayed flat. The bound here is
far above the noise (allocator, caches filling up) and far below that growth over 800 queries
(about 280 MB). Counts queries, never time; Linux (``/proc``) only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

import meshgov

ROOT = Path(__file__).resolve().parents[2]
MESHGOV = str(Path(sys.executable).with_name("meshgov"))
POINT = "SELECT order_id, amount, currency FROM commerce.orders WHERE order_id = 'O10003339'"
WARM_UP, MEASURED = 200, 800
GROWTH_BOUND_MB = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_serve_on_duckdb_does_not_grow_per_query(tmp_path: Path) -> None:
    pg_port = _free_port()
    source = str(Path(meshgov.__file__).resolve().parents[1])  # this checkout's meshgov
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
        "MESHGOV_STORE_URL": f"sqlite:///{tmp_path / 'meshgov.db'}",
    }
    env.pop("MESHGOV_PG_CATALOG_DSN", None)  # no catalogue introspection: no PostgreSQL needed
    process = subprocess.Popen(
        [MESHGOV, "serve", "--catalog", "examples/mesh", "--port", str(_free_port()),
         "--pg-port", str(pg_port), "--engine", "duckdb"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        dsn = (
            f"host=127.0.0.1 port={pg_port} dbname=analytics user=analyst-eu "
            "password=dev-analyst-eu connect_timeout=5"
        )
        connection = None
        for _ in range(600):  # start-up: up to about two minutes on a loaded machine
            if process.poll() is not None:
                pytest.fail(f"meshgov serve exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                connection = psycopg.connect(dsn, autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.2)
        assert connection is not None, "meshgov serve did not accept connections"
        with connection:
            for _ in range(WARM_UP):
                assert connection.execute(POINT).fetchall()
            before = _rss_mb(process.pid)
            for _ in range(MEASURED):
                rows = connection.execute(POINT).fetchall()
            after = _rss_mb(process.pid)
        assert rows and all(row[0] == "O10003339" for row in rows)
        assert after - before < GROWTH_BOUND_MB, (
            f"serve grew {after - before:.0f} MB over {MEASURED} queries ({before:.0f} → "
            f"{after:.0f} MB)"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
