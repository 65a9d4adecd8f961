"""Cost of authorize + rewrite against sqlglot alone, and of one access decision, on both
in-process Rego engines (regopy, ``embedded``, and regorus) side by side in one run.

For realistic queries over the example mesh (1 to 8 tables, CTEs, window functions), in one run:
- ``parse+gen``: ``sqlglot.parse_one`` + ``.sql()`` of the same query (the baseline);
- ``uncached``: ``Gateway.authorize`` with the rewrite cache cleared before every call (decisions
  and built secure views stay cached: they are per principal and port, not per query, and a
  running gateway has them), timed alternately with the baseline;
- ``cold``: every cache cleared (each table's decision evaluated in Rego, secure views built);
- ``cached``: a repeated ``authorize`` of the same query (rewrite cache hit).
Then one uncached access decision (``data.meshgov.access.decision``) per engine, and the same
decision in synthetic meshes of ``--mesh-sizes`` products (copies of customer/customers spread
over domains of 100), for the first and the last product and for the one whose lookup walks the
most keys of the access index, as ratios to the example
mesh's decision on the same engine measured in the same run (a decision should not grow with the
mesh), with the time and memory that preparing each mesh's data took.
Targets: uncached ≤ 1.5× parse+gen, cached ≤ 50 µs; one decision ≤ 150 µs on regorus (regopy no
slower than before); at 10,000 products no decision over 1.3× the example mesh's.

    .venv/bin/python bench/rewrite_bench.py [--repeat N] [--mesh-sizes 1000,10000]
                                            [--decisions-only]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlglot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from meshgov.access_data import ACCESS_INDEX_DEPTH  # noqa: E402
from meshgov.core.principal import Principal  # noqa: E402
from meshgov.core.sql.secure_views import SECURE_VIEWS  # noqa: E402
from meshgov.gateway import (  # noqa: E402
    ACCESS_ENTRYPOINT,
    ACCESS_QUERY,
    Gateway,
    catalog_policy_data,
    load_gateway,
)
from meshgov.policy_backends import engine_from_url, engine_label, load_bundle_dir  # noqa: E402

ENGINES = ("embedded", "regorus")

QUERIES: dict[str, str] = {
    "1 table": "SELECT customer_id, email, region FROM customer.customers WHERE signup_date > "
    "DATE '2024-01-01' ORDER BY signup_date DESC LIMIT 100",
    "2 tables join": "SELECT c.email, sum(o.amount) AS total FROM customer.customers c "
    "JOIN commerce.orders o USING (customer_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
    "3 tables + CTE": "WITH spend AS (SELECT o.customer_id, sum(i.quantity * i.unit_price) AS s "
    "FROM commerce.orders o JOIN commerce.order_items i ON i.order_id = o.order_id "
    "GROUP BY 1) SELECT c.region, avg(s.s) FROM spend s JOIN customer.customers c "
    "ON c.customer_id = s.customer_id GROUP BY c.region",
    "4 tables + window": "SELECT c.customer_id, p.category, i.quantity, "
    "row_number() OVER (PARTITION BY c.customer_id ORDER BY o.order_date DESC) AS rn, "
    "sum(i.quantity) OVER (PARTITION BY p.category) AS per_category "
    "FROM customer.customers c JOIN commerce.orders o ON o.customer_id = c.customer_id "
    "JOIN commerce.order_items i ON i.order_id = o.order_id "
    "JOIN commerce.products p ON p.product_id = i.product_id WHERE o.status = 'delivered'",
    "6 tables, CTEs, subqueries": "WITH recent AS (SELECT * FROM commerce.orders "
    "WHERE order_date > DATE '2025-01-01'), paid AS (SELECT order_id, sum(amount) AS paid "
    "FROM payments.payments WHERE status = 'captured' GROUP BY order_id) "
    "SELECT c.region, m.segment, count(DISTINCT r.order_id) AS n, sum(paid.paid) AS paid "
    "FROM recent r JOIN paid ON paid.order_id = r.order_id "
    "JOIN customer.customers c ON c.customer_id = r.customer_id "
    "LEFT JOIN marketing.customer_360 m ON m.customer_id = c.customer_id "
    "WHERE EXISTS (SELECT 1 FROM commerce.order_items i JOIN commerce.products p "
    "ON p.product_id = i.product_id WHERE i.order_id = r.order_id AND p.active) "
    "GROUP BY ROLLUP (c.region, m.segment)",
    "8 tables, set operation": "WITH a AS (SELECT customer_id FROM customer.customers "
    "UNION SELECT client_id FROM marketing.campaign_audience), b AS (SELECT o.customer_id, "
    "count(*) AS n, rank() OVER (ORDER BY count(*) DESC) AS rk FROM commerce.orders o "
    "JOIN commerce.order_items i ON i.order_id = o.order_id JOIN commerce.products p "
    "ON p.product_id = i.product_id GROUP BY o.customer_id) SELECT a.customer_id, b.n, b.rk, "
    "m.total_spend, (SELECT count(*) FROM payments.payments y WHERE y.cust_ref = a.customer_id) "
    "AS payments FROM a LEFT JOIN b ON b.customer_id = a.customer_id LEFT JOIN "
    "marketing.customer_360 m ON m.customer_id = a.customer_id WHERE b.rk <= 100 "
    "ORDER BY b.rk",
}

ANALYST = Principal(
    id="analyst-eu",
    groups=("analysts",),
    domain="analytics",
    attributes={"region": "EU", "clearances": []},
)


def _median_us(action: Callable[[], object], repeat: int, before: Callable[[], None]) -> float:
    samples: list[float] = []
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def _paired_medians(
    first: Callable[[], object],
    second: Callable[[], object],
    repeat: int,
    before_second: Callable[[], None],
) -> tuple[float, float]:
    """Alternate the two actions so that load changes on a shared machine hit both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        first()
        a.append((time.perf_counter() - started) * 1e6)
        before_second()
        started = time.perf_counter()
        second()
        b.append((time.perf_counter() - started) * 1e6)
    return statistics.median(a), statistics.median(b)


def _nothing() -> None:
    return None


def _synthetic_mesh(template: dict[str, Any], size: int) -> dict[str, dict[str, Any]]:
    """``size`` copies of one product's policy document, 100 to a domain (``d000/p00000`` …)."""
    products: dict[str, dict[str, Any]] = {}
    for i in range(size):
        domain, name = f"d{i // 100:03d}", f"p{i:05d}"
        doc = copy.deepcopy(template)
        doc["id"] = f"{domain}/{name}"
        doc["metadata"] = {**doc["metadata"], "domain": domain, "name": name}
        products[doc["id"]] = doc
    return products


def _farthest(index: dict[str, Any]) -> str:
    """The product id whose lookup in the access index walks the most keys (the keys before the
    one taken at every level: rego-cpp walks an object's keys in order)."""
    levels: list[tuple[dict[str, Any], int]] = [(index, 0)]
    for _ in range(ACCESS_INDEX_DEPTH):
        levels = [
            (node["by"][key], walked + position)
            for node, walked in levels
            for position, key in enumerate(node["by"])
        ]
    return max(
        (walked + position, pid) for leaf, walked in levels for position, pid in enumerate(leaf)
    )[1]


def _rss_mb() -> float:
    """Resident memory now (MB), from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError):
        return 0.0


def _decision_by_mesh_size(
    gateways: dict[str, Gateway],
    request: dict[str, Any],
    sizes: list[int],
    repeat: int,
) -> list[float]:
    """One decision in meshes of ``sizes`` products, first and last product, per engine; the
    ratios to the example mesh's decision on the same engine, timed alternately with it."""
    template = gateways["embedded"].catalog.manifests["customer/customers"].policy_document()
    bundle = load_bundle_dir(ROOT / "policies")
    # Not the on-disk plan cache: these plans are large and used once.
    os.environ["MESHGOV_CACHE_DIR"] = "off"
    header = f"{'products':>9} {'engine':<9} {'prepare s':>9} {'+MB':>6}"
    print(
        f"\n{header} {'first µs':>9} {'ratio':>6} {'last µs':>9} {'ratio':>6}"
        f" {'farthest':>9} {'ratio':>6}"
    )
    ratios: list[float] = []
    for size in sizes:
        products = _synthetic_mesh(template, size)
        # What the gateway loads: the access view only (see gateway_policy_data).
        data = {"catalog": {"access": catalog_policy_data(products)["catalog"]["access"]}}
        del products
        for name in ENGINES:
            before = _rss_mb()
            started = time.perf_counter()
            policy = engine_from_url(name).prepare(bundle, data, entrypoints=[ACCESS_ENTRYPOINT])
            prepared_s = time.perf_counter() - started
            row = f"{size:>9} {name:<9} {prepared_s:>9.2f} {_rss_mb() - before:>6.0f}"
            # The first and the last product of the mesh, and the one whose lookup walks the most
            # keys in the access index (rego-cpp walks an object's keys in order).
            farthest = _farthest(data["catalog"]["access"])
            for product in ("d000/p00000", f"d{(size - 1) // 100:03d}/p{size - 1:05d}", farthest):
                asked = {**request, "product": product}
                if not policy.evaluate(ACCESS_QUERY, asked)["allow"]:
                    raise SystemExit(f"{asked['product']}: denied in the synthetic mesh")
                # Alternated with the example mesh's decision: the ratio is load-independent.
                example, took = _paired_medians(
                    lambda name=name: gateways[name].policy.evaluate(ACCESS_QUERY, request),  # type: ignore[misc]
                    lambda asked=asked, policy=policy: policy.evaluate(ACCESS_QUERY, asked),  # type: ignore[misc]
                    repeat,
                    _nothing,
                )
                ratios.append(took / example)
                row += f" {took:>9.0f} {took / example:>5.2f}x"
            print(row)
            del policy
    return ratios


def _large_expressions(gateway: Gateway, repeat: int) -> None:
    """A sum of n terms over a row-filtered table, in the output list (allowed) and in WHERE
    (denied: every term is judged), for n and 4n: each pass is linear, so 4x the terms cost about
    4x (a quadratic pass made 2,000 terms take 13.6 s). Printed beside parse+generate of the same
    SQL, the floor any rewrite pays."""
    print(
        f"\n{'large expression':<28} {'terms':>6} {'parse+gen':>10} {'authorize':>10} {'ratio':>6}"
    )
    for where in (False, True):
        title = "sum in WHERE (denied)" if where else "sum in the output"
        timings: list[float] = []
        for n in (1000, 4000):
            terms = " + ".join("amount" for _ in range(n))
            sql = (
                f"SELECT count(*) FROM commerce.orders WHERE {terms} > 0"
                if where
                else f"SELECT {terms} AS s FROM commerce.orders"
            )

            def baseline(sql: str = sql) -> object:
                return sqlglot.parse_one(sql, read="duckdb").sql("duckdb")

            def authorize(sql: str = sql) -> object:
                return gateway.authorize(sql, ANALYST, "analytics", "duckdb", "postgres")

            base, took = _paired_medians(
                baseline, authorize, repeat, lambda: gateway._rewrites.clear()
            )
            timings.append(took)
            print(
                f"{title:<28} {n:>6} {base / 1000:>8.1f}ms {took / 1000:>8.1f}ms "
                f"{took / base:>5.2f}x"
            )
        print(f"{title:<28} 4x terms: {timings[1] / timings[0]:.2f}x the time (linear ≈ 4x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--mesh-sizes",
        default="1000,10000",
        help="comma-separated product counts for the decision-by-mesh-size table ('' skips it)",
    )
    parser.add_argument(
        "--decisions-only",
        action="store_true",
        help="only the access decisions (one, and by mesh size): skip the queries' table and the "
        "large expressions",
    )
    args = parser.parse_args()
    gateways = {
        name: load_gateway(
            str(ROOT / "examples" / "mesh"), str(ROOT / "policies"), engine_from_url(name)
        )
        for name in ENGINES
    }
    labels = {name: engine_label(gateway.engine) for name, gateway in gateways.items()}
    print("engines: " + "; ".join(f"{name} = {label}" for name, label in labels.items()))

    def clear_rewrites() -> None:
        for gateway in gateways.values():
            gateway._rewrites.clear()

    def clear_all() -> None:
        clear_rewrites()
        for gateway in gateways.values():
            gateway._decisions.clear()
        SECURE_VIEWS.clear()

    columns = "".join(f" {'uncached':>9} {'ratio':>6} {'cold':>8}" for _ in ENGINES)
    if not args.decisions_only:
        print(f"\n{'':<28} {'':>10}" + "".join(f" {name:^25}" for name in ENGINES) + f" {'':>8}")
        median_of = f"(µs, median of {args.repeat})"
        print(f"{'query':<28} {'parse+gen':>10}{columns} {'cached':>8}   {median_of}")
    ratios: list[float] = []
    cached_all: list[float] = []
    for title, sql in {} if args.decisions_only else QUERIES.items():
        row = ""
        base_all: list[float] = []
        for name, gateway in gateways.items():
            check = gateway.authorize(sql, ANALYST, "analytics", "duckdb")
            if not check.allowed:
                raise SystemExit(f"{title}: denied on {name}: {check.reason}")

            def baseline(sql: str = sql) -> object:
                return sqlglot.parse_one(sql, read="duckdb").sql("duckdb")

            def authorize(sql: str = sql, gateway: Gateway = gateway) -> object:
                return gateway.authorize(sql, ANALYST, "analytics", "duckdb")

            base, uncached = _paired_medians(baseline, authorize, args.repeat, clear_rewrites)
            cold = _median_us(authorize, max(args.repeat // 10, 5), clear_all)
            base_all.append(base)
            ratios.append(uncached / base)
            row += f" {uncached:>9.0f} {uncached / base:>5.2f}x {cold:>8.0f}"
        gateway = gateways[ENGINES[-1]]
        gateway.authorize(sql, ANALYST, "analytics", "duckdb")
        cached = _median_us(
            lambda sql=sql, gateway=gateway: gateway.authorize(sql, ANALYST, "analytics", "duckdb"),  # type: ignore[misc]
            args.repeat * 5,
            _nothing,
        )
        cached_all.append(cached)
        print(f"{title:<28} {statistics.median(base_all):>10.0f}{row} {cached:>8.1f}")

    request = {
        "principal": ANALYST.policy_document(),
        "purpose": "analytics",
        "product": "customer/customers",
        "port": "customers",
    }
    decisions: dict[str, float] = {}
    for _ in range(2):  # alternated, so that load changes hit both engines alike
        for name, gateway in gateways.items():
            gateway.policy.evaluate(ACCESS_QUERY, request)
            took = _median_us(
                lambda gateway=gateway: gateway.policy.evaluate(ACCESS_QUERY, request),  # type: ignore[misc]
                args.repeat,
                _nothing,
            )
            decisions[name] = min(decisions.get(name, took), took)
    print(
        "\none uncached access decision (customer/customers): "
        + ", ".join(f"{name} {us:.0f} µs" for name, us in decisions.items())
        + f" (regopy/regorus {decisions['embedded'] / decisions['regorus']:.1f}x)"
    )
    sizes = [int(size) for size in args.mesh_sizes.split(",") if size.strip()]
    growth = _decision_by_mesh_size(gateways, request, sizes, args.repeat) if sizes else []
    if not args.decisions_only:
        _large_expressions(gateways[ENGINES[-1]], max(args.repeat // 40, 3))
        print(
            f"uncached/parse+gen: worst {max(ratios):.2f}x (target ≤ 1.5x); "
            f"cached: worst {max(cached_all):.1f} µs (target ≤ 50 µs)",
            end="; ",
        )
    print(
        f"regorus decision: {decisions['regorus']:.0f} µs (target ≤ 150 µs)"
        + (f"; worst mesh-size ratio {max(growth):.2f}x (target ≤ 1.3x)" if growth else "")
    )


if __name__ == "__main__":
    main()
