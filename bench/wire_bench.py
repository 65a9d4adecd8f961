"""PostgreSQL wire protocol throughput: pgbench through meshgov against the engines directly.

In one run, for a point query and an aggregate query of the EU analyst over the example mesh:
- pgbench (8 clients, simple and extended protocol) through meshgov's wire protocol on the DuckDB
  engine and on the PostgreSQL engine (``meshgov serve`` subprocesses);
- the same secure SQL (``meshgov rewrite --to postgres``) run by pgbench directly on PostgreSQL,
  in the database the PostgreSQL engine reads;
- the same secure SQL run in-process on meshgov's DuckDB engine (8 threads), right before each
  wire run on DuckDB, with the CPU time per query of both (the server process's, the engine's):
  their ratio does not move with the load of other processes as the rates do;
- a large result (1M rows) read by psql, with the server's peak memory.

Targets (PRODUCT.md): on PostgreSQL >= 40% of direct throughput (cached queries); on DuckDB >= 80%
of DuckDB's in-process rate; large results >= 300k rows/s to psql with bounded server memory.

    python bench/wire_bench.py [--seconds 10] [--dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESHGOV = str(Path(sys.executable).with_name("meshgov"))
PRINCIPAL = ROOT / "examples" / "mesh" / "principals" / "analyst-eu.yaml"
QUERIES = {
    "point": "SELECT order_id, amount, currency FROM commerce.orders WHERE order_id = 'O10003339'",
    "aggregate": "SELECT currency, count(*) AS n, sum(amount) AS total FROM commerce.orders "
    "GROUP BY currency",
}
LARGE = (
    "SELECT i.order_id, o.currency FROM commerce.order_items i CROSS JOIN commerce.orders o "
    "LIMIT 1000000"
)
TARGET_PG_RATIO, TARGET_DUCKDB_RATIO, TARGET_ROWS_PER_S = 0.40, 0.80, 300_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secure_sql(sql: str) -> str:
    done = subprocess.run(
        [MESHGOV, "rewrite", "--catalog", str(ROOT / "examples" / "mesh"), "--principal",
         str(PRINCIPAL), "--purpose", "analytics", "--to", "postgres", sql],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return str(json.loads(done.stdout)["sql"])


def pgbench(conninfo: str, sql: str, mode: str, seconds: int, password: str | None) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(sql + ";\n")
    env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
    done = subprocess.run(
        ["pgbench", "-n", "-c", "8", "-j", "2", "-T", str(seconds), "-M", mode, "-f", script.name,
         conninfo],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    Path(script.name).unlink()
    match = re.search(r"tps = ([0-9.]+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if match is None or (failed and int(failed.group(1)) > 0):
        raise RuntimeError(f"pgbench failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    return float(match.group(1))


def serve(engine: str, pg_port: int, catalogue_dsn: str, tmp: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MESHGOV_STORE_URL": f"sqlite:///{tmp / f'{pg_port}.db'}",
        "MESHGOV_PG_CATALOG_DSN": catalogue_dsn,
        "MESHGOV_PG_CATALOG_PREFIX": f"mgbench{uuid.uuid4().hex[:6]}_",
    }
    process = subprocess.Popen(
        [MESHGOV, "serve", "--catalog", "examples/mesh", "--port", str(free_port()),
         "--pg-port", str(pg_port), "--engine", engine],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", pg_port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("meshgov serve did not start")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def duckdb_in_process_rate(engine: object, duck_sql: str, seconds: float) -> tuple[float, float]:
    """The secure SQL run directly on meshgov's DuckDB engine connection, 8 threads →
    (queries per second, CPU milliseconds per query)."""
    count = [0] * 8
    stop = time.monotonic() + seconds

    def worker(slot: int) -> None:
        while time.monotonic() < stop:
            engine.execute_unprotected(duck_sql)  # type: ignore[attr-defined]
            count[slot] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    started, cpu = time.monotonic(), cpu_seconds(os.getpid())
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = sum(count)
    return done / (time.monotonic() - started), (cpu_seconds(os.getpid()) - cpu) / done * 1000


def secure_sql_duckdb(sql: str) -> str:
    done = subprocess.run(
        [MESHGOV, "rewrite", "--catalog", str(ROOT / "examples" / "mesh"), "--principal",
         str(PRINCIPAL), "--purpose", "analytics", "--to", "duckdb", sql],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return str(json.loads(done.stdout)["sql"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("MESHGOV_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    if shutil.which("pgbench") is None or shutil.which("psql") is None:
        sys.exit("needs pgbench and psql (apt-get install postgresql-client)")
    from meshgov.catalog import load_catalog
    from meshgov.config import Settings
    from meshgov.engines import postgres

    name = f"meshgov_wirebench_{uuid.uuid4().hex[:8]}"
    dsn = postgres.create_database(args.dsn, name)
    tmp = Path(tempfile.mkdtemp(prefix="meshgov-wirebench-"))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        postgres.load(load_catalog(ROOT / "examples" / "mesh"), dsn, Settings().hash_key())
        duck_port, pg_port = free_port(), free_port()
        servers.append(serve("duckdb", duck_port, args.dsn, tmp))
        servers.append(serve(dsn, pg_port, args.dsn, tmp))
        direct = postgres.dsn_for_database(args.dsn, name)
        from meshgov.engines.base import open_engine

        engine = open_engine(
            "duckdb", load_catalog(ROOT / "examples" / "mesh"), Settings().hash_key()
        )
        print(
            f"pgbench -c 8 -j 2 -T {args.seconds}; tps (transactions = queries); the DuckDB "
            "in-process rate is measured right before each wire run on DuckDB; CPU: ms per "
            "query of the server process (wire) and of the in-process engine (8 threads)"
        )
        print(f"{'query':<10} {'mode':<9} {'pg direct':>10} {'wire/pg':>9} {'ratio':>6} "
              f"{'duck in-proc':>12} {'wire/duck':>10} {'ratio':>6} {'cpu in-proc':>11} "
              f"{'cpu wire':>9} {'cpu ratio':>9}")  # fmt: skip
        for label, sql in QUERIES.items():
            secure, duck_sql = secure_sql(sql), secure_sql_duckdb(sql)
            engine.execute_unprotected(duck_sql)  # type: ignore[attr-defined]
            for mode in ("simple", "extended"):
                base = pgbench(direct, secure, mode, args.seconds, None)
                wire_pg = pgbench(
                    f"host=127.0.0.1 port={pg_port} dbname=analytics user=analyst-eu",
                    sql, mode, args.seconds, "dev-analyst-eu",
                )  # fmt: skip
                in_process, in_cpu = duckdb_in_process_rate(engine, duck_sql, args.seconds)
                cpu = cpu_seconds(servers[0].pid)
                wire_duck = pgbench(
                    f"host=127.0.0.1 port={duck_port} dbname=analytics user=analyst-eu",
                    sql, mode, args.seconds, "dev-analyst-eu",
                )  # fmt: skip
                wire_cpu = (cpu_seconds(servers[0].pid) - cpu) / (wire_duck * args.seconds) * 1000
                print(
                    f"{label:<10} {mode:<9} {base:>10.0f} {wire_pg:>9.0f} {wire_pg / base:>6.2f} "
                    f"{in_process:>12.0f} {wire_duck:>10.0f} {wire_duck / in_process:>6.2f} "
                    f"{in_cpu:>11.2f} {wire_cpu:>9.2f} {in_cpu / wire_cpu:>9.2f}"
                )
        before = peak_rss_mb(servers[0].pid)
        started = time.perf_counter()
        done = subprocess.run(
            ["psql", f"host=127.0.0.1 port={duck_port} dbname=analytics user=analyst-eu",
             "-X", "-A", "-t", "-c", LARGE],
            capture_output=True, env={**os.environ, "PGPASSWORD": "dev-analyst-eu"}, check=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        rows = done.stdout.count(b"\n")
        print(
            f"large result to psql (DuckDB engine): {rows:,} rows in {elapsed:.2f} s = "
            f"{rows / elapsed:,.0f} rows/s (target {TARGET_ROWS_PER_S:,}); server peak RSS "
            f"{before:.0f} → {peak_rss_mb(servers[0].pid):.0f} MB"
        )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        postgres.drop_database(args.dsn, name)
        from meshgov.pgwire.catalogue import CatalogueDatabases

        for prefix in {"mgbench"}:
            with postgres.connect(args.dsn, autocommit=True) as admin:
                names = admin.execute(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
                ).fetchall()
            for (db,) in names:
                CatalogueDatabases(args.dsn, db).drop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
