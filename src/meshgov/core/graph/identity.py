"""Identity harmonisation: facts about global entities that the ``meshgov.identity`` Rego package
turns into violations (``input.identity_facts``). Rego does not recompute any of this.

Each fact is a plain dict ``{kind, entity, product, port, column, detail}``:

=========================== ==============================================================
kind                        meaning (and ``detail``)
=========================== ==============================================================
entity_unowned              no product of the owner domain carries the entity; located at
                            the registry's owner product (``{owner_domain}``)
entity_multiple_owners      another product mints the entity's ids (``{owners, expected}``),
                            or the registry itself is inconsistent (``{reason}``)
identifier_type_mismatch    ``{type, expected}``
identifier_format_mismatch  ``{format, expected}``
undeclared_identifier       a column named like the canonical id or an alias, no ``entity:``
                            (``{matched: canonical|alias, expected}``)
unknown_entity              ``entity:`` names no registry entity
owner_unreachable           the product carries an entity it does not own and the owner's
                            product is not upstream of it (``{owner}``); see below
=========================== ==============================================================

A product *owns* (mints) an entity's ids when a column identifying it is unique or a primary key
and is not derived from upstream: no input product carries the entity and the column declares no
``derivedFrom``. The registry's owner product is the expected minter; any other is a rival.

*Reachability*: product P reaches the owner O of entity E when O is P itself, or O is upstream of
P through a chain of lineage links (``spec.inputs`` or column ``derivedFrom``) whose every product
carries E, i.e. P's identifiers can be followed, join by join, back to the owner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from meshgov.core.collection import gc_paused
from meshgov.core.graph.model import (
    Carrier,
    ColumnRef,
    EntityDef,
    EntityGraph,
    MeshIndex,
    build_index,
    index_replacing,
)
from meshgov.core.manifest import Manifest

FACT_KINDS = (
    "entity_unowned",
    "entity_multiple_owners",
    "identifier_type_mismatch",
    "identifier_format_mismatch",
    "undeclared_identifier",
    "unknown_entity",
    "owner_unreachable",
)


def _fact(
    kind: str,
    entity: str,
    product: str | None,
    port: str | None = None,
    column: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "entity": entity,
        "product": product,
        "port": port,
        "column": column,
        "detail": detail or {},
    }


def lineage_sources(index: MeshIndex, product: str) -> set[str]:
    """Products ``product`` reads: its ``spec.inputs`` and the products its columns derive from."""
    sources = {ref.product for ref in index.inputs.get(product, [])}
    manifest = index.manifests.get(product)
    if manifest is not None:
        for port in manifest.spec.output_ports:
            for col in port.columns:
                if col.derived_from:
                    for ref in index.derived_from.get(ColumnRef(product, port.name, col.name), []):
                        sources.add(ref.product)
    sources.discard(product)
    return sources


def _lineage_consumers(sources: Mapping[str, set[str]]) -> dict[str, set[str]]:
    consumers: dict[str, set[str]] = {}
    for product, upstream in sources.items():
        for source in upstream:
            consumers.setdefault(source, set()).add(product)
    return consumers


def _origins(
    index: MeshIndex, entity: str, carriers: list[Carrier], sources: Mapping[str, set[str]]
) -> set[str]:
    """Products that mint the entity's ids: unique identifier column, not derived from upstream."""
    carrying = index.product_entities
    minted: set[str] = set()
    for carrier in carriers:
        if not carrier.unique or carrier.ref in index.derived_from:
            continue
        upstream = sources.get(carrier.ref.product, set())
        if not any(entity in carrying.get(p, ()) for p in upstream):
            minted.add(carrier.ref.product)
    return minted


def _reaching(
    index: MeshIndex, entity: str, owners: set[str], consumers: dict[str, set[str]]
) -> set[str]:
    """Products reached downstream from ``owners`` through products that all carry ``entity``."""
    seen = set(owners)
    queue = deque(owners)
    while queue:
        product = queue.popleft()
        for consumer in consumers.get(product, ()):
            if consumer not in seen and entity in index.product_entities.get(consumer, ()):
                seen.add(consumer)
                queue.append(consumer)
    return seen


def _registry_problems(name: str, entity: EntityDef) -> list[dict[str, Any]]:
    """The registry's own problems with an entity (several owners declared…) as facts."""
    return [
        _fact(
            "entity_multiple_owners",
            name,
            entity.owner_product,
            detail={"reason": f"registry: {problem}"},
        )
        for problem in entity.problems
    ]


def _owner_carriers(entity: EntityDef, carriers: list[Carrier]) -> list[Carrier]:
    """The carriers of an entity that live in its owning domain."""
    return [
        c
        for c in carriers
        if entity.owner_domain and c.ref.product.split("/", 1)[0] == entity.owner_domain
    ]


def _analyse(index: MeshIndex) -> list[dict[str, Any]]:
    facts: list[dict[str, Any]] = []
    sources = {product: lineage_sources(index, product) for product in index.manifests}
    consumers = _lineage_consumers(sources)
    for name, entity in index.registry.items():
        carriers = index.carriers.get(name, [])
        facts.extend(_registry_problems(name, entity))
        owner_carriers = _owner_carriers(entity, carriers)
        if not owner_carriers:
            facts.append(
                _fact(
                    "entity_unowned",
                    name,
                    entity.owner_product,
                    detail={"owner_domain": entity.owner_domain},
                )
            )
            continue
        expected = entity.owner_product
        minted = _origins(index, name, carriers, sources)
        rivals = sorted(p for p in minted if p != expected) if expected else []
        if not expected:
            # Only a domain is registered: one minting product inside it is the owner.
            in_domain = sorted(p for p in minted if p.split("/", 1)[0] == entity.owner_domain)
            rivals = sorted(p for p in minted if p.split("/", 1)[0] != entity.owner_domain)
            if len(in_domain) > 1:
                rivals = sorted({*rivals, *in_domain})
        for rival in rivals:
            facts.append(
                _fact(
                    "entity_multiple_owners",
                    name,
                    rival,
                    detail={"owners": sorted(minted), "expected": expected or entity.owner_domain},
                )
            )
        # The registered owner product when it carries the entity, else the owner domain's carriers.
        owner_products = (
            {expected}
            if expected and name in index.product_entities.get(expected, set())
            else {c.ref.product for c in owner_carriers}
        )
        reached = _reaching(index, name, owner_products, consumers)
        flagged: set[str] = set()
        for carrier in carriers:
            product = carrier.ref.product
            if product in reached or product in flagged:
                continue
            if product.split("/", 1)[0] == entity.owner_domain:
                continue
            flagged.add(product)
            facts.append(
                _fact(
                    "owner_unreachable",
                    name,
                    product,
                    carrier.ref.port,
                    carrier.ref.column,
                    {"owner": sorted(owner_products)[0] if owner_products else None},
                )
            )
    facts.extend(_carrier_facts(index, None))
    facts.extend(_undeclared_identifier_facts(index, index.manifests))
    return _sort_facts(facts)


def _undeclared_identifier_facts(index: MeshIndex, pids: Iterable[str]) -> list[dict[str, Any]]:
    """Columns of ``pids`` that declare no entity but are named like an entity's identifier."""
    facts: list[dict[str, Any]] = []
    if not index.identifier_names:
        return facts
    for pid in pids:
        manifest = index.manifests.get(pid)
        if manifest is None:
            continue
        for port in manifest.spec.output_ports:
            for col in port.columns:
                if col.entity:
                    continue
                for entity_name, matched in index.identifier_names.get(col.name.lower(), []):
                    facts.append(
                        _fact(
                            "undeclared_identifier",
                            entity_name,
                            pid,
                            port.name,
                            col.name,
                            {
                                "matched": matched,
                                "expected": index.registry[entity_name].canonical_name,
                            },
                        )
                    )
    return facts


def _carrier_facts(index: MeshIndex, wanted: set[str] | None) -> list[dict[str, Any]]:
    """Unknown entities and identifiers typed or formatted unlike their entity's canonical
    form, for the carriers of ``wanted`` products (every product: None)."""
    facts: list[dict[str, Any]] = []
    for name, carriers in index.carriers.items():
        entity_def = index.registry.get(name)
        for carrier in carriers:
            ref = carrier.ref
            if wanted is not None and ref.product not in wanted:
                continue
            if entity_def is None:
                facts.append(_fact("unknown_entity", name, ref.product, ref.port, ref.column))
                continue
            if entity_def.canonical_type and carrier.type != entity_def.canonical_type:
                facts.append(
                    _fact(
                        "identifier_type_mismatch",
                        name,
                        ref.product,
                        ref.port,
                        ref.column,
                        {"type": carrier.type, "expected": entity_def.canonical_type},
                    )
                )
            if (
                entity_def.canonical_format
                and carrier.format
                and carrier.format != entity_def.canonical_format
            ):
                facts.append(
                    _fact(
                        "identifier_format_mismatch",
                        name,
                        ref.product,
                        ref.port,
                        ref.column,
                        {"format": carrier.format, "expected": entity_def.canonical_format},
                    )
                )
    return facts


def _sort_facts(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    facts.sort(
        key=lambda f: (
            f["product"] or "",
            f["port"] or "",
            f["column"] or "",
            f["kind"],
            f["entity"],
        )
    )
    return facts


class _Sources:
    """``lineage_sources`` of each product, computed when first asked."""

    def __init__(self, index: MeshIndex) -> None:
        self.index = index
        self.known: dict[str, set[str]] = {}

    def get(self, product: str) -> set[str]:
        found = self.known.get(product)
        if found is None:
            found = self.known[product] = lineage_sources(self.index, product)
        return found


def _reaches_owner(
    index: MeshIndex, entity: str, product: str, owners: set[str], sources: _Sources
) -> bool:
    """Whether ``_reaching`` from ``owners`` gets to ``product``: searched upstream from it
    through products that carry ``entity`` (the same links, walked the other way)."""
    if product in owners:
        return True
    if entity not in index.product_entities.get(product, ()):
        return False
    seen = {product}
    queue = deque([product])
    while queue:
        for source in sources.get(queue.popleft()):
            if source in owners:
                return True
            if source not in seen and entity in index.product_entities.get(source, ()):
                seen.add(source)
                queue.append(source)
    return False


@gc_paused
def product_identity_facts(index: MeshIndex, products: Iterable[str]) -> list[dict[str, Any]]:
    """The facts of ``identity_facts(index)`` located in ``products``, the same and in the same
    order, computed from the neighbourhood of those products (their entities' carriers, their
    upstream lineage) rather than the whole mesh: what the gate needs to check a few products
    against a mesh of thousands."""
    wanted = set(products)
    sources = _Sources(index)
    facts: list[dict[str, Any]] = []
    for name, entity in index.registry.items():
        carriers = index.carriers.get(name, [])
        if entity.owner_product in wanted:
            facts.extend(_registry_problems(name, entity))
        owner_carriers = _owner_carriers(entity, carriers)
        if not owner_carriers:
            if entity.owner_product in wanted:
                facts.append(
                    _fact(
                        "entity_unowned",
                        name,
                        entity.owner_product,
                        detail={"owner_domain": entity.owner_domain},
                    )
                )
            continue
        carrying = [c for c in carriers if c.ref.product in wanted]
        if not carrying:
            continue  # the remaining facts of this entity are located at its carriers
        expected = entity.owner_product
        minted: set[str] = set()
        for carrier in carriers:
            if not carrier.unique or carrier.ref in index.derived_from:
                continue
            upstream = sources.get(carrier.ref.product)
            if not any(name in index.product_entities.get(p, ()) for p in upstream):
                minted.add(carrier.ref.product)
        rivals = sorted(p for p in minted if p != expected) if expected else []
        if not expected:
            in_domain = sorted(p for p in minted if p.split("/", 1)[0] == entity.owner_domain)
            rivals = sorted(p for p in minted if p.split("/", 1)[0] != entity.owner_domain)
            if len(in_domain) > 1:
                rivals = sorted({*rivals, *in_domain})
        for rival in rivals:
            if rival in wanted:
                facts.append(
                    _fact(
                        "entity_multiple_owners",
                        name,
                        rival,
                        detail={
                            "owners": sorted(minted),
                            "expected": expected or entity.owner_domain,
                        },
                    )
                )
        owner_products = (
            {expected}
            if expected and name in index.product_entities.get(expected, set())
            else {c.ref.product for c in owner_carriers}
        )
        flagged: set[str] = set()
        for carrier in carrying:
            product = carrier.ref.product
            if product in flagged or product.split("/", 1)[0] == entity.owner_domain:
                continue
            flagged.add(product)
            if _reaches_owner(index, name, product, owner_products, sources):
                continue
            facts.append(
                _fact(
                    "owner_unreachable",
                    name,
                    product,
                    carrier.ref.port,
                    carrier.ref.column,
                    {"owner": sorted(owner_products)[0] if owner_products else None},
                )
            )
    facts.extend(_carrier_facts(index, wanted))
    facts.extend(_undeclared_identifier_facts(index, sorted(wanted)))
    return _sort_facts(facts)


@gc_paused
def identity_facts(
    source: EntityGraph | MeshIndex | Iterable[Manifest],
    registry: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every identity fact of a mesh, sorted by product, port, column and kind.

    ``source`` is a built graph/index (its registry is used) or manifests with ``registry``, the
    raw ``data.registry.entities`` mapping. Manifests are indexed without networkx, so the gate can
    call this for a thousand manifests cheaply.
    """
    if isinstance(source, EntityGraph):
        index = source.index
    elif isinstance(source, MeshIndex):
        index = source
    else:
        index = build_index(source, registry)
    return _analyse(index)


def facts_for_product(facts: Iterable[Mapping[str, Any]], product_id: str) -> list[dict[str, Any]]:
    """The facts located in ``product_id`` (what the gate passes when checking that product)."""
    return [dict(f) for f in facts if f.get("product") == product_id]


# The incremental path is for a few products against a large mesh (a publication, a check);
# a smaller mesh, or many products, is analysed whole.
INCREMENTAL_MIN_MESH = 200
INCREMENTAL_MAX_PRODUCTS = 16
INCREMENTAL_MAX_CHANGES = 64


class MeshFacts:
    """Identity facts of a few products against a mesh, the mesh's index kept between calls.

    A service checks each publication against the whole mesh: the index of the last mesh seen is
    kept, and the next one is derived from it (``index_replacing``: the products that differ, by
    object identity) instead of being built again; only the checked products' facts are
    computed (``product_identity_facts``). The answer is always ``identity_facts`` of the mesh,
    restricted to the products asked. Safe to share between threads (the kept index is replaced,
    never changed).
    """

    def __init__(self, registry: Mapping[str, Any] | None) -> None:
        self.registry = registry
        self._index: MeshIndex | None = None

    def facts(
        self, mesh: Mapping[str, Manifest], products: Collection[str]
    ) -> list[dict[str, Any]]:
        """The facts of ``identity_facts(mesh.values(), registry)`` located in ``products``."""
        if len(mesh) < INCREMENTAL_MIN_MESH or len(products) > INCREMENTAL_MAX_PRODUCTS:
            wanted = set(products)
            whole = identity_facts(mesh.values(), self.registry)
            return [fact for fact in whole if fact["product"] in wanted]
        base = self._index
        index: MeshIndex | None = None
        if base is not None:
            changed = [m for pid, m in mesh.items() if base.manifests.get(pid) is not m]
            removed = [pid for pid in base.manifests if pid not in mesh]
            if len(changed) + len(removed) <= INCREMENTAL_MAX_CHANGES:
                index = index_replacing(base, changed, removed)
        if index is None:
            index = build_index(mesh.values(), self.registry)
        self._index = index
        return product_identity_facts(index, products)
