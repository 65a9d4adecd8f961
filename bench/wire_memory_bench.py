"""Server memory while a large result streams to psql through the wire (DuckDB engine).

Starts ``meshgov serve`` with the result caps raised (so the result is not stopped), reads 1M and
8M rows with psql and prints the server's peak RSS (VmHWM) before and after each: a streamed
result adds about a batch, whatever its size.

    python bench/wire_memory_bench.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wire_bench as wb

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SQL = (
    "SELECT i.order_id, o.currency, o.customer_id FROM commerce.order_items i "
    "CROSS JOIN commerce.orders o LIMIT {n}"
)


def main() -> None:
    os.environ["MESHGOV_RESULT_MAX_ROWS"] = "100000000"
    os.environ["MESHGOV_RESULT_MAX_BYTES"] = str(64 * 2**30)
    tmp = Path(tempfile.mkdtemp(prefix="meshgov-wiremem-"))
    port = wb.free_port()
    server = wb.serve("duckdb", port, os.environ.get("MESHGOV_PG_DSN", DEFAULT_DSN), tmp)
    try:
        env = {**os.environ, "PGPASSWORD": "dev-analyst-eu"}
        conn = f"host=127.0.0.1 port={port} dbname=analytics user=analyst-eu"
        for n in (1_000_000, 8_000_000):
            before = wb.peak_rss_mb(server.pid)
            started = time.perf_counter()
            out = subprocess.run(
                ["psql", conn, "-X", "-A", "-t", "-c", SQL.format(n=n)],
                env=env, check=True, capture_output=True,
            ).stdout  # fmt: skip
            elapsed = time.perf_counter() - started
            lines = out.count(b"\n")
            print(
                f"{n:,} rows: {lines:,} received, {len(out) / 1e6:.0f} MB of text in "
                f"{elapsed:.1f} s; server peak RSS {before:.0f} -> "
                f"{wb.peak_rss_mb(server.pid):.0f} MB",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
