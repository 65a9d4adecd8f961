"""Execution overhead of the gateway on Spark, against the same secure SQL submitted directly.

A 10M-row customer snapshot (the execute bench's generator: hash mask, row filter) is loaded into
one local Spark session. For each query the gateway path (``execute_query``: authorize, the
engine's checks — sqlglot, the no-barrier rule, Spark's parser on the text —, submit, execute,
Arrow) is timed against ``session.sql(secure_sql).toArrow()`` on the same session. Target: ≤ 10%.
The gateway path's cost is also split: authorize, submit (checks + ``session.sql``: Spark parses
and analyses), execute (the plan run to completion with Spark's ``noop`` sink) and Arrow transfer
(``toArrow`` minus execute).

    .venv/bin/python bench/spark_bench.py [--rows N] [--repeat R] [--master local[2]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from execute_bench import QUERIES, generate, timed_pair  # noqa: E402

from meshgov.catalog import load_catalog  # noqa: E402
from meshgov.core.principal import Principal  # noqa: E402
from meshgov.engines.spark import SparkEngine, start_session  # noqa: E402
from meshgov.execution import execute_query  # noqa: E402
from meshgov.gateway import Gateway  # noqa: E402
from meshgov.policy_backends import load_bundle_dir  # noqa: E402


def best(seconds: list[float]) -> float:
    return min(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    analyst = Principal(id="bench-analyst", groups=("analysts",), attributes={"region": "EU"})
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "mesh"
        directory.mkdir()
        started = time.perf_counter()
        generate(directory, args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        catalog = load_catalog(directory)
        gateway = Gateway(catalog, load_bundle_dir(ROOT / "policies"))
        started = time.perf_counter()
        session = start_session(
            args.master, {"spark.sql.warehouse.dir": str(Path(tmp) / "warehouse")}
        )
        print(f"Spark session in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        # No statement timeout in the way: hashing 5M e-mails in Python workers takes a while.
        engine = SparkEngine.from_catalog(
            catalog, b"bench-key", session=session, timeout_ms=3_600_000
        )
        print(f"snapshot loaded in {time.perf_counter() - started:.1f} s")
        print(
            f"execute overhead on Spark ({args.master}), {args.rows:,} rows, best of {args.repeat}"
        )
        print(
            f"{'query':<16} {'direct ms':>10} {'gateway ms':>11} {'overhead':>9} | "
            f"{'authorize':>9} {'submit':>8} {'execute':>8} {'arrow':>8}"
        )
        ratios = []
        try:
            for name, sql in QUERIES.items():
                authorization = gateway.authorize(sql, analyst, "analytics", "spark", "spark")
                if not authorization.allowed or not authorization.sql:
                    print(f"{name:<16} denied: {authorization.reason}")
                    return 1
                secure_sql = authorization.sql
                direct, through = timed_pair(
                    lambda s=secure_sql: session.sql(s).toArrow(),
                    lambda q=sql: execute_query(gateway, engine, q, analyst, "analytics", "spark"),
                    args.repeat,
                )
                ratios.append(through / direct)
                split = cost_split(gateway, engine, session, sql, analyst, args.repeat)
                print(
                    f"{name:<16} {direct * 1000:>10.1f} {through * 1000:>11.1f} "
                    f"{(through / direct - 1) * 100:>8.1f}% | "
                    + " ".join(f"{split[k] * 1000:>8.1f}" for k in split)
                )
        finally:
            engine.close()
            session.stop()
        overall = statistics.geometric_mean(ratios)
        verdict = "ok" if overall <= 1.10 else "over target"
        print(f"geometric mean overhead {(overall - 1) * 100:.1f}% (target <= 10%): {verdict}")
        return 0 if overall <= 1.10 else 1


def cost_split(
    gateway: Gateway,
    engine: SparkEngine,
    session: object,
    sql: str,
    analyst: Principal,
    repeat: int,
) -> dict[str, float]:
    """Best ms of each stage of the gateway path (authorize is cached after the first call, as
    in a running service)."""
    samples: dict[str, list[float]] = {"authorize": [], "submit": [], "execute": [], "arrow": []}
    for _ in range(max(2, repeat // 2)):
        t0 = time.perf_counter()
        authorization = gateway.authorize(sql, analyst, "analytics", "spark", "spark")
        t1 = time.perf_counter()
        text = engine.prepare(str(authorization.sql))
        frame = session.sql(text)  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        t3 = time.perf_counter()
        session.sql(text).toArrow()  # type: ignore[attr-defined]
        t4 = time.perf_counter()
        samples["authorize"].append(t1 - t0)
        samples["submit"].append(t2 - t1)
        samples["execute"].append(t3 - t2)
        samples["arrow"].append(max((t4 - t3) - (t3 - t2), 0.0))
    return {k: best(v) for k, v in samples.items()}


if __name__ == "__main__":
    raise SystemExit(main())
