"""The questions people ask of the mesh: entities, join paths, lineage, impact and PII flow.

Every function takes an ``EntityGraph`` (or its ``MeshIndex``) and returns frozen dataclasses.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass, fields, is_dataclass
from enum import StrEnum
from typing import Any

from meshgov.core.collection import gc_paused
from meshgov.core.graph.model import ColumnRef, EntityGraph, MeshIndex, PortRef
from meshgov.errors import InputError, Location, NotFound


def _index(source: EntityGraph | MeshIndex) -> MeshIndex:
    return source.index if isinstance(source, EntityGraph) else source


def _require(index: MeshIndex, product: str) -> None:
    if product not in index.manifests:
        raise NotFound(f"no product '{product}' in the catalog", Location(product=product))


# --- entities -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityCarrier:
    product: str
    port: str
    column: str
    mapping: str  # canonical | mapped
    owner: bool  # the product is in the entity's owner domain


@dataclass(frozen=True)
class EntitySummary:
    name: str
    registered: bool
    owner_domain: str | None
    owner_product: str | None
    canonical_name: str | None
    canonical_type: str | None
    canonical_format: str | None
    aliases: tuple[str, ...]
    carriers: tuple[EntityCarrier, ...]

    @property
    def products(self) -> tuple[str, ...]:
        return tuple(sorted({c.product for c in self.carriers}))


@gc_paused
def entities(source: EntityGraph | MeshIndex) -> list[EntitySummary]:
    """Each entity (registered or only referenced), its owner, and every column carrying it."""
    index = _index(source)
    result: list[EntitySummary] = []
    for name in sorted(set(index.registry) | set(index.carriers)):
        entity = index.registry.get(name)
        owner_domain = entity.owner_domain if entity else None
        carriers = tuple(
            sorted(
                (
                    EntityCarrier(
                        c.ref.product,
                        c.ref.port,
                        c.ref.column,
                        c.mapping.value,
                        owner_domain is not None and c.ref.product.split("/", 1)[0] == owner_domain,
                    )
                    for c in index.carriers.get(name, [])
                ),
                key=lambda c: (c.product, c.port, c.column),
            )
        )
        result.append(
            EntitySummary(
                name=name,
                registered=entity is not None,
                owner_domain=owner_domain,
                owner_product=entity.owner_product if entity else None,
                canonical_name=entity.canonical_name if entity else None,
                canonical_type=entity.canonical_type if entity else None,
                canonical_format=entity.canonical_format if entity else None,
                aliases=entity.aliases if entity else (),
                carriers=carriers,
            )
        )
    return result


# --- join paths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinStep:
    """Join ``left`` to ``right`` on ``entity`` using these identifier columns (``port:column``)."""

    entity: str
    left_product: str
    left_columns: tuple[str, ...]
    right_product: str
    right_columns: tuple[str, ...]


@dataclass(frozen=True)
class JoinPath:
    products: tuple[str, ...]
    entities: tuple[str, ...]
    steps: tuple[JoinStep, ...]

    @property
    def hops(self) -> int:
        return len(self.steps)


def _columns(index: MeshIndex, product: str, entity: str) -> tuple[str, ...]:
    return tuple(
        sorted(f"{r.port}:{r.column}" for r in index.identifier_columns.get((product, entity), []))
    )


MAX_JOIN_HOPS = 6
MAX_JOIN_PATHS = 100


@gc_paused
def join_paths(
    source: EntityGraph | MeshIndex, left: str, right: str, *, max_hops: int = 3, limit: int = 10
) -> list[JoinPath]:
    """Ways to join ``left`` to ``right`` through shared entity identifiers, shortest first.

    A hop joins two products on one entity both carry; a path of n hops goes through n-1
    intermediate products, each carrying the entity of the hop before and the one after it. Within
    a number of hops, paths are ordered by entity names, then intermediate product names.
    """
    index = _index(source)
    _require(index, left)
    _require(index, right)
    if left == right:
        raise InputError("join paths need two different products", Location(product=left))
    if not 1 <= max_hops <= MAX_JOIN_HOPS or not 1 <= limit <= MAX_JOIN_PATHS:
        raise InputError(f"max_hops must be 1 to {MAX_JOIN_HOPS} and limit 1 to {MAX_JOIN_PATHS}")
    left_entities = sorted(index.product_entities.get(left, ()))
    right_entities = set(index.product_entities.get(right, ()))
    if not left_entities or not right_entities:
        return []
    all_entities = sorted(index.carrier_products)
    bridges: dict[tuple[str, str], list[str]] = {}

    def bridge(first: str, second: str) -> list[str]:
        """Products other than the two ends that carry both entities (a join between them)."""
        key = (first, second) if first < second else (second, first)
        if key not in bridges:
            common = index.carrier_products.get(first, set()) & index.carrier_products.get(
                second, set()
            )
            bridges[key] = sorted(common - {left, right})
        return bridges[key]

    remaining: dict[str, int] = {}

    def entities_to_right() -> dict[str, int]:
        """Fewest entities in a chain from each entity to one of the right product's, so that
        longer searches only extend chains that can still arrive within ``max_hops``."""
        if not remaining:
            remaining.update(dict.fromkeys(right_entities, 1))
            queue = deque(sorted(right_entities))
            while queue:
                entity = queue.popleft()
                for other in all_entities:
                    if other not in remaining and bridge(entity, other):
                        remaining[other] = remaining[entity] + 1
                        queue.append(other)
        return remaining

    found: list[JoinPath] = []
    for hops in range(1, max_hops + 1):
        # Entity sequences of this length from the left product's entities to the right's.
        sequences: list[tuple[str, ...]] = [(e,) for e in left_entities]
        if hops > 2:
            reach = entities_to_right()
            sequences = [s for s in sequences if reach.get(s[0], hops + 1) <= hops]
        for length in range(1, hops):
            reach = entities_to_right() if hops > 2 else {}
            sequences = [
                (*seq, nxt)
                for seq in sequences
                for nxt in all_entities
                if nxt not in seq
                and (not reach or reach.get(nxt, hops + 1) <= hops - length)
                and bridge(seq[-1], nxt)
            ]
        for seq in sequences:
            if seq[-1] not in right_entities:
                continue
            middles = [bridge(a, b) for a, b in itertools.pairwise(seq)]
            for chosen in itertools.product(*middles):
                if len(set(chosen)) != len(chosen):
                    continue
                products = (left, *chosen, right)
                steps = tuple(
                    JoinStep(
                        entity,
                        products[i],
                        _columns(index, products[i], entity),
                        products[i + 1],
                        _columns(index, products[i + 1], entity),
                    )
                    for i, entity in enumerate(seq)
                )
                found.append(JoinPath(products, seq, steps))
                if len(found) >= limit:
                    return found
    return found


# --- lineage ------------------------------------------------------------------------------------


class Direction(StrEnum):
    upstream = "upstream"
    downstream = "downstream"


@dataclass(frozen=True)
class LineageNode:
    product: str
    domain: str
    owner: str | None
    depth: int
    declared: bool  # false for inputs naming a product outside the catalog


@dataclass(frozen=True)
class LineageLink:
    """``source`` (``product:port``) is read by ``target`` (a product)."""

    source: str
    target: str


@dataclass(frozen=True)
class Lineage:
    product: str
    direction: Direction
    nodes: tuple[LineageNode, ...]
    links: tuple[LineageLink, ...]


def _reads(index: MeshIndex, product: str) -> list[PortRef]:
    """The ports ``product`` reads: declared inputs plus the ports of columns it derives from."""
    cache: dict[str, list[PortRef]] = index.cache.setdefault("reads", {})
    if product not in cache:
        cache[product] = _compute_reads(index, product)
    return cache[product]


def _derived_sources(index: MeshIndex) -> dict[str, list[ColumnRef]]:
    """product → the columns its columns declare ``derivedFrom`` (in declaration order)."""
    if "derived_sources" not in index.cache:
        by_product: dict[str, list[ColumnRef]] = {}
        for target, sources in index.derived_from.items():
            by_product.setdefault(target.product, []).extend(sources)
        index.cache["derived_sources"] = by_product
    found: dict[str, list[ColumnRef]] = index.cache["derived_sources"]
    return found


def _compute_reads(index: MeshIndex, product: str) -> list[PortRef]:
    refs = list(index.inputs.get(product, []))
    seen = set(refs)
    for src in _derived_sources(index).get(product, []):
        ref = PortRef(src.product, src.port)
        if ref not in seen and src.product != product:
            seen.add(ref)
            refs.append(ref)
    return refs


def _readers(index: MeshIndex) -> dict[str, list[tuple[str, PortRef]]]:
    """product → [(reading product, port it reads)], computed once per index."""
    if "readers" not in index.cache:
        index.cache["readers"] = _compute_readers(index)
    readers: dict[str, list[tuple[str, PortRef]]] = index.cache["readers"]
    return readers


def _reader_refs(index: MeshIndex) -> dict[str, list[tuple[str, str]]]:
    """Like ``_readers`` with the port as text (``product:port``), for the impact walk."""
    if "reader_refs" not in index.cache:
        index.cache["reader_refs"] = {
            product: [(reader, str(ref)) for reader, ref in pairs]
            for product, pairs in _readers(index).items()
        }
    refs: dict[str, list[tuple[str, str]]] = index.cache["reader_refs"]
    return refs


def _compute_readers(index: MeshIndex) -> dict[str, list[tuple[str, PortRef]]]:
    readers: dict[str, list[tuple[str, PortRef]]] = {}
    for product, refs in index.consumers.items():
        readers[product] = list(refs)
    for target, sources in index.derived_from.items():
        for src in sources:
            pair = (target.product, PortRef(src.product, src.port))
            if src.product != target.product and pair not in readers.setdefault(src.product, []):
                readers[src.product].append(pair)
    return readers


@gc_paused
def lineage(
    source: EntityGraph | MeshIndex, product: str, direction: Direction | str = Direction.upstream
) -> Lineage:
    """Every product upstream (what ``product`` reads, transitively) or downstream of it."""
    index = _index(source)
    _require(index, product)
    direction = Direction(direction)
    readers = _readers(index) if direction is Direction.downstream else {}
    depths = {product: 0}
    links: list[LineageLink] = []
    queue = deque([product])
    while queue:
        current = queue.popleft()
        if direction is Direction.upstream:
            edges = [(ref.product, ref, current) for ref in _reads(index, current)]
        else:
            edges = [(reader, ref, reader) for reader, ref in readers.get(current, [])]
        for nxt, ref, target in edges:
            links.append(LineageLink(str(ref), target))
            if nxt not in depths:
                depths[nxt] = depths[current] + 1
                if nxt in index.manifests:
                    queue.append(nxt)
    nodes = tuple(
        LineageNode(
            p,
            p.split("/", 1)[0],
            index.owner_of(p),
            depth,
            p in index.manifests,
        )
        for p, depth in sorted(depths.items(), key=lambda item: (item[1], item[0]))
        if p != product
    )
    return Lineage(product, direction, nodes, tuple(sorted(set(links), key=str)))


# --- impact -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactedItem:
    """Something that may break: a whole product (reads the changed port) or a derived column."""

    product: str
    port: str | None
    column: str | None
    depth: int
    via: str  # the upstream port or column it depends on
    precision: str  # column (declared derivedFrom) | port (reads the port)


@dataclass(frozen=True)
class OwnerToNotify:
    owner: str | None
    domain: str
    products: tuple[str, ...]


@dataclass(frozen=True)
class Impact:
    target: str
    items: tuple[ImpactedItem, ...]
    owners: tuple[OwnerToNotify, ...]


def parse_target(index: MeshIndex, target: str) -> tuple[str, str | None, str | None]:
    """``domain/product[:port[:column]]`` checked against the catalog."""
    product, _, rest = target.partition(":")
    port, _, column = rest.partition(":")
    manifest = index.manifests.get(product)
    if manifest is None:
        raise NotFound(f"no product '{product}' in the catalog", Location(product=product))
    if port and manifest.port(port) is None:
        raise NotFound(f"product {product} has no port '{port}'", Location(product=product))
    if column:
        found = manifest.port(port)
        if found is None or all(c.name != column for c in found.columns):
            raise NotFound(
                f"port {product}:{port} has no column '{column}'",
                Location(product=product, port=port),
            )
    return product, port or None, column or None


@gc_paused
def impact(source: EntityGraph | MeshIndex, target: str) -> Impact:
    """What may break downstream if ``target`` (product, port or column) changes, and who to tell.

    A column change reaches the columns derived from it (declared ``derivedFrom``, transitively)
    precisely; every product reading the changed port (transitively) is reported at port
    precision, since it may use the column without declaring so.
    """
    index = _index(source)
    product, port, column = parse_target(index, target)
    reader_refs = _reader_refs(index)
    items: dict[tuple[str, str | None, str | None], ImpactedItem] = {}
    if column is not None and port is not None:
        start = ColumnRef(product, port, column)
        seen_columns = {start}
        column_queue = deque([(start, 0)])
        while column_queue:
            changed, level = column_queue.popleft()
            for derived in index.derivations.get(changed, []):
                if derived not in seen_columns:
                    seen_columns.add(derived)
                    items[(derived.product, derived.port, derived.column)] = ImpactedItem(
                        derived.product,
                        derived.port,
                        derived.column,
                        level + 1,
                        str(changed),
                        "column",
                    )
                    column_queue.append((derived, level + 1))
    start_ports = {str(PortRef(product, port))} if port else None
    # Breadth-first over products, level by level; the loop is kept tight for large meshes.
    levels: list[list[tuple[str, str]]] = []
    seen = {product}
    frontier = [product]
    manifests = index.manifests
    while frontier:
        found: list[tuple[str, str]] = []
        for current in frontier:
            for reader, via in reader_refs.get(current, ()):
                if reader in seen or (
                    start_ports is not None and current == product and via not in start_ports
                ):
                    continue
                seen.add(reader)
                found.append((reader, via))
        found.sort()
        levels.append(found)
        frontier = [reader for reader, _ in found if reader in manifests]
    # A product already reported for a derived column needs no vaguer port-level entry.
    precise = {key[0] for key in items}
    port_items = [
        ImpactedItem(reader, None, None, depth, via, "port")
        for depth, reached in enumerate(levels, start=1)
        for reader, via in reached
        if reader not in precise
    ]
    # Port items come out already ordered by depth and product; merge the few column items in.
    ordered = tuple(
        sorted(
            [*items.values(), *port_items],
            key=lambda i: (i.depth, i.product, i.port or "", i.column or ""),
        )
        if items
        else port_items
    )
    by_owner: dict[tuple[str | None, str], set[str]] = {}
    for name in {i.product for i in ordered}:
        reader_manifest = manifests.get(name)
        owner_key = (
            reader_manifest.metadata.owner if reader_manifest else None,
            name.split("/", 1)[0],
        )
        by_owner.setdefault(owner_key, set()).add(name)
    owners = tuple(
        OwnerToNotify(owner, domain, tuple(sorted(products)))
        for (owner, domain), products in sorted(
            by_owner.items(), key=lambda kv: (kv[0][1], kv[0][0] or "")
        )
    )
    return Impact(target, ordered, owners)


# --- PII flow -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiiSource:
    """A PII-carrying port read by the product, and the lineage path from it to the product."""

    product: str
    port: str
    columns: tuple[str, ...]  # ``column (category)``
    path: tuple[str, ...]  # product:port of the source, then each product down to the reader


@dataclass(frozen=True)
class PiiFlow:
    product: str
    owner: str | None
    sources: tuple[PiiSource, ...]


def _pii_columns(index: MeshIndex, ref: PortRef) -> tuple[str, ...]:
    manifest = index.manifests.get(ref.product)
    port = manifest.port(ref.port) if manifest else None
    if port is None:
        return ()
    return tuple(
        f"{c.name} ({c.pii_category})" if c.pii_category else c.name for c in port.columns if c.pii
    )


@gc_paused
def pii_flows(source: EntityGraph | MeshIndex) -> list[PiiFlow]:
    """Products that declare no PII but read PII upstream, with the path the PII took.

    Walking upstream from a product, the walk continues only through products that declare no
    PII themselves (PII may have passed through them unnoticed) and stops at the first product
    that declares PII; a port of it with PII columns is a source, reported with the shortest path.
    Computed once per product over the lineage (memoised, iteratively: no recursion limit).
    """
    index = _index(source)
    manifests = index.manifests
    declares = {product: index.declares_pii(product) for product in manifests}
    pii_columns: dict[PortRef, tuple[str, ...]] = {}
    # product → {PII source port: shortest path from it down to the product}
    memo: dict[str, dict[PortRef, tuple[str, ...]]] = {}

    def through(product: str) -> list[str]:
        """Upstream products the walk continues through (declaring no PII themselves)."""
        return [
            ref.product
            for ref in _reads(index, product)
            if ref.product in manifests and not declares[ref.product] and ref.product != product
        ]

    for root in sorted(manifests):
        if declares[root] or root in memo:
            continue
        in_progress: set[str] = set()
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            product, expanded = stack.pop()
            if product in memo:
                continue
            if not expanded:
                in_progress.add(product)
                stack.append((product, True))
                stack.extend(
                    (up, False)
                    for up in through(product)
                    if up not in memo and up not in in_progress
                )
                continue
            found: dict[PortRef, tuple[str, ...]] = {}
            for ref in _reads(index, product):
                if ref not in pii_columns:
                    pii_columns[ref] = _pii_columns(index, ref)
                candidates: list[tuple[PortRef, tuple[str, ...]]] = []
                if pii_columns[ref]:
                    candidates.append((ref, (str(ref), product)))
                if ref.product in manifests and not declares[ref.product]:
                    # A product still in progress closes a lineage cycle: nothing more there.
                    upstream = memo.get(ref.product, {})
                    candidates.extend((src, (*path, product)) for src, path in upstream.items())
                for src, path in candidates:
                    best = found.get(src)
                    if best is None or (len(path), path) < (len(best), best):
                        found[src] = path
            memo[product] = found
            in_progress.discard(product)
    flows: list[PiiFlow] = []
    for product in sorted(memo):
        if not memo[product]:
            continue
        sources = tuple(
            sorted(
                (
                    PiiSource(ref.product, ref.port, pii_columns[ref], path)
                    for ref, path in memo[product].items()
                ),
                key=lambda s: (len(s.path), s.product, s.port),
            )
        )
        flows.append(PiiFlow(product, index.owner_of(product), sources))
    return flows


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a dataclass's field names, looked up once


def plain(value: Any) -> Any:
    """An answer's dataclasses, tuples and sets as JSON-like values (sets sorted, so that an
    answer reads the same every time: the HTTP API and the console show it)."""
    if value is None or isinstance(value, str | int | float):  # most of an answer: leaves
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in fields(value))
    if names is not None:
        # Field by field (not ``asdict``, which deep-copies the whole answer first).
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        if isinstance(value, set | frozenset):
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
        return items
    return value
