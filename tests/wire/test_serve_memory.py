"""A ``meshgov serve`` process on the DuckDB engine does not grow with the queries it serves.

Regression: such a process once grew by about 350 KB per wire query (2,000 queries on one
connection: +700 MB) while the same listener started in-process stayed flat. The cause: rego-cpp
(regopy, the embedded policy engine) defines its own global operator new/delete, and when its
library was the first to load libstdc++ (``serve`` staged the policies on it before DuckDB was
imported; the test process had imported DuckDB long before), libstdc++'s own calls bound to them
and DuckDB allocated through rego-cpp's allocator. Both policy engines are served here. The bound
is far above the noise (allocator, caches filling up) and far below that growth over 800 queries
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


def _this_checkout() -> str:
    """PYTHONPATH for a child process that imports this checkout's meshgov."""
    source = str(Path(meshgov.__file__).resolve().parents[1])
    return os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_regopy_does_not_take_over_the_cpp_allocator() -> None:
    """Loading the embedded policy engine first leaves libstdc++'s operator new its own."""
    done = subprocess.run(
        [sys.executable, "-c", "import meshgov.policy_backends.embedded"],
        env={**os.environ, "LD_DEBUG": "bindings", "PYTHONPATH": _this_checkout()},
        capture_output=True,
        text=True,
        check=True,
    )
    if "binding file" not in done.stderr:
        pytest.skip("the dynamic loader does not report its bindings (glibc's LD_DEBUG)")
    taken = [
        line
        for line in done.stderr.splitlines()
        if "libstdc++" in line.split(" to ")[0] and "librego" in line.split(" to ")[-1]
    ]
    assert not taken, "\n".join(taken[:5])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("policy_engine", ["auto", "embedded"])
def test_serve_on_duckdb_does_not_grow_per_query(tmp_path: Path, policy_engine: str) -> None:
    pg_port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": _this_checkout(),
        "MESHGOV_STORE_URL": f"sqlite:///{tmp_path / 'meshgov.db'}",
    }
    env.pop("MESHGOV_PG_CATALOG_DSN", None)  # no catalogue introspection: no PostgreSQL needed
    process = subprocess.Popen(
        [MESHGOV, "serve", "--catalog", "examples/mesh", "--port", str(_free_port()),
         "--pg-port", str(pg_port), "--engine", "duckdb", "--policy-engine", policy_engine],
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
