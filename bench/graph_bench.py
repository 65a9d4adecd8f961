"""Scale benchmark of the entity linkage graph.

Generates a deterministic mesh (default 10,000 products, ~200,000 columns, 50 entities, lineage
eight layers deep) and times: building the graph, a join-path query, an impact query, a lineage
query and the identity harmonisation analysis. Targets: build ≤ 5 s, join path and impact
≤ 50 ms each.

    .venv/bin/python bench/graph_bench.py [--products 10000] [--entities 50] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshgov.core.graph import build_graph, identity_facts, impact, join_paths, lineage
from meshgov.core.manifest import Manifest

LAYERS = 8
PRODUCTS_PER_DOMAIN = 100
TYPES = ["string", "integer", "decimal", "date", "timestamp", "boolean"]
QUASI = ["birth_date", "postcode", "gender"]


def registry(entities: int) -> dict[str, Any]:
    return {
        f"e{i:02d}": {
            "owner": {"domain": f"d{2 * i:03d}", "product": "p000"},
            "canonical": {"name": f"e{i:02d}_id", "type": "string"},
            "aliases": [f"e{i:02d}_ref", f"e{i:02d}_key"],
        }
        for i in range(entities)
    }


def generate(products: int, entities: int, seed: int) -> list[Manifest]:
    """Products in layers: layer 0 reads nothing, layer n reads 1-3 products of lower layers."""
    rng = random.Random(seed)
    ids = [
        f"d{i // PRODUCTS_PER_DOMAIN:03d}/p{i % PRODUCTS_PER_DOMAIN:03d}" for i in range(products)
    ]
    layer = {pid: (0 if pid.endswith("/p000") else rng.randrange(LAYERS)) for pid in ids}
    by_layer: dict[int, list[str]] = {n: [] for n in range(LAYERS)}
    for pid in ids:
        by_layer[layer[pid]].append(pid)
    owners = {f"d{2 * i:03d}/p000": f"e{i:02d}" for i in range(entities)}
    carries: dict[str, list[int]] = {}
    manifests: list[Manifest] = []
    # Generate upstream layers first so that readers can inherit their inputs' identifiers.
    carries_owner: list[int] = []
    for pid in sorted(ids, key=lambda p: (layer[p], p)):
        domain, name = pid.split("/")
        depth = layer[pid]
        inputs: list[dict[str, str]] = []
        if depth == 0 and pid not in owners:
            # Source-aligned products look most identifiers up in the owner's product.
            minted = rng.sample(range(entities), k=rng.randint(1, 2))
            inputs = [{"product": f"d{2 * e:03d}/p000", "port": "main"} for e in minted]
            carries_owner = minted
        if depth:
            pool = by_layer[depth - 1] or by_layer[0]
            for source in {rng.choice(pool) for _ in range(rng.randint(1, 3))}:
                inputs.append({"product": source, "port": "main"})
            if rng.random() < 0.3:
                far = by_layer[rng.randrange(depth)]
                inputs.append({"product": rng.choice(far), "port": "main"})
        columns: list[dict[str, Any]] = []
        # Identifiers mostly come from what the product reads (joins keep them); a few are new.
        inherited = sorted(
            {e for i in inputs for e in carries.get(i["product"], [])}
            if depth
            else (carries_owner if pid not in owners else [])
        )
        wanted = rng.randint(2, 4)
        carried = rng.sample(inherited, k=min(wanted, len(inherited))) if inherited else []
        while len(carried) < wanted and (len(carried) < 2 or rng.random() < 0.2):
            extra = rng.randrange(entities)
            if extra not in carried:
                carried.append(extra)
        if pid in owners:
            own = int(owners[pid][1:])
            carried = [own, *(c for c in carried if c != own)]
        carries[pid] = carried
        for n, entity in enumerate(carried):
            name_of = f"e{entity:02d}_id" if rng.random() < 0.7 else f"e{entity:02d}_ref"
            columns.append(
                {
                    "name": name_of,
                    "type": "string",
                    "entity": f"e{entity:02d}",
                    "unique": pid in owners and n == 0,
                    "classification": "internal",
                }
            )
        if rng.random() < 0.2:
            for quasi in QUASI:
                columns.append({"name": quasi, "type": "string", "classification": "internal"})
        while len(columns) < 20:
            columns.append(
                {
                    "name": f"c{len(columns):02d}",
                    "type": rng.choice(TYPES),
                    "classification": "internal",
                    **(
                        {"pii": True, "piiCategory": "email", "mask": "hash"}
                        if rng.random() < 0.03
                        else {}
                    ),
                }
            )
        manifests.append(
            Manifest.model_validate(
                {
                    "apiVersion": "meshgov/v1",
                    "kind": "DataProduct",
                    "metadata": {
                        "domain": domain,
                        "name": name,
                        "version": "1.0.0",
                        "owner": f"{domain}@example.org",
                    },
                    "spec": {
                        "inputs": inputs,
                        "outputPorts": [
                            {"name": "main", "table": f"{domain}.{name}", "columns": columns}
                        ],
                    },
                }
            )
        )
    manifests.sort(key=lambda m: m.id)
    return manifests


def calibrate() -> int:
    """A fixed amount of interpreter work, to tell a slow (shared) machine from slow code."""
    table = {str(i): i for i in range(1000)}
    total = 0
    for i in range(1_000_000):
        total += table.get(str(i % 1000), 0)
    return total


@dataclass(frozen=True)
class Timing:
    best: float  # the least disturbed run: what the code costs
    median: float  # what a user on this (possibly shared) machine sees


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Timing, Any]:
    """Best and median wall time in seconds over ``repeat`` runs, and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return Timing(min(times), statistics.median(times)), result


def _shown(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--entities", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--builds", type=int, default=3, help="times the graph is built")
    args = parser.parse_args(argv)

    calibration, _ = timed(calibrate, repeat=3)
    print(
        f"machine: a fixed pure-Python loop (1M dict lookups) took {calibration.best:.2f} s "
        "(about 0.25 s on an idle core; figures below scale with it on a shared machine)"
    )
    start = time.perf_counter()
    manifests = generate(args.products, args.entities, args.seed)
    generated = time.perf_counter() - start
    columns = sum(len(p.columns) for m in manifests for p in m.spec.output_ports)
    reg = registry(args.entities)
    print(
        f"mesh: {len(manifests):,} products, {columns:,} columns, {args.entities} entities, "
        f"{LAYERS} lineage layers (generated in {generated:.1f} s)"
    )

    build_s, graph = timed(lambda: build_graph(manifests, reg), repeat=args.builds)
    stats = graph.stats()
    print(f"graph: {sum(stats.nodes.values()):,} nodes, {sum(stats.edges.values()):,} edges")

    rng = random.Random(args.seed)
    ids = sorted(graph.index.manifests)
    deep = [m.id for m in manifests if len(m.spec.inputs) > 1]
    left, right = rng.choice(deep), rng.choice(deep)
    paths_s, paths = timed(lambda: join_paths(graph, left, right), repeat=20)
    source = ids[0]  # a layer-0 owner product: the widest downstream
    # Its first column carries the entity it owns, named e00_id or (by chance) e00_ref.
    owned = next(m for m in manifests if m.id == source).spec.output_ports[0].columns[0].name
    impact_s, hit = timed(lambda: impact(graph, f"{source}:main:{owned}"), repeat=20)
    # A heavily read product: the 90th percentile of downstream size among 200 sampled ones.
    sample = sorted(rng.sample(ids, 200), key=lambda p: (len(impact(graph, p).items), p))
    typical = sample[180]
    typical_s, typical_hit = timed(lambda: impact(graph, typical), repeat=20)
    deepest = max(deep[:200], key=lambda p: len(lineage(graph, p).nodes))
    lineage_s, up = timed(lambda: lineage(graph, deepest, "upstream"), repeat=20)
    facts_s, facts = timed(lambda: identity_facts(graph), repeat=3)
    kinds: dict[str, int] = {}
    for fact in facts:
        kinds[fact["kind"]] = kinds.get(fact["kind"], 0) + 1

    rows = [
        ("build graph", build_s, 5.0, f"{len(ids):,} products"),
        (
            "join paths",
            paths_s,
            0.050,
            f"{left} ⋈ {right}: {len(paths)} paths, "
            f"shortest {paths[0].hops if paths else '-'} hop(s)",
        ),
        (
            "impact, widest source column",
            impact_s,
            0.050,
            f"{source}:main:{owned} → {len({i.product for i in hit.items}):,} products, "
            f"{len(hit.owners):,} owners",
        ),
        (
            "impact, a p90 product",
            typical_s,
            0.050,
            f"{typical} → {len(typical_hit.items):,} products, {len(typical_hit.owners)} owners",
        ),
        ("lineage upstream", lineage_s, None, f"{len(up.nodes):,} products"),
        (
            "identity harmonisation",
            facts_s,
            None,
            f"{len(facts):,} facts {dict(sorted(kinds.items()))}",
        ),
    ]
    failed = False
    print(f"{'measure':30} {'best':>10} {'median':>10} {'target':>8}  result")
    for label, timing, target, note in rows:
        verdict = ""
        if target is not None:
            ok = timing.best <= target
            failed |= not ok
            verdict = "ok" if ok else "MISSED"
        limit = "" if target is None else _shown(target)
        print(
            f"{label:30} {_shown(timing.best):>10} {_shown(timing.median):>10} {limit:>8}  "
            f"{verdict:6} {note}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
