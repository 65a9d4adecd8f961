"""What the access decision sees of the catalogue: the access view of each product.

``data.catalog.access`` holds, per product, only what ``meshgov.access`` reads (ports, columns
with classification, PII, masks, grants): small, so that preparing a catalogue of 10,000 products
stays cheap, and indexed by product id in a tree of few keys per level (``access_index``), so that
rego-cpp finds a product without walking many keys. ``data.catalog.products`` (whole policy
documents) is added only when a rule reachable from the decision reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshgov.catalog import PER_MANIFEST, Catalog
from meshgov.core.manifest import Manifest
from meshgov.core.policy import PolicyBundle, reads_data

ACCESS_ENTRYPOINT = "meshgov/access/decision"

# How many levels the access index has (policies/meshgov/access/access.rego reads this many).
ACCESS_INDEX_DEPTH = 3


def _access_view(product: Mapping[str, Any]) -> dict[str, Any]:
    """What the access policy reads of one product, keyed for lookups (a pure projection).

    Per port, only the columns a rule can narrow (PII or classified restricted), by name, with the
    fields the rules read; ``pii`` and ``restricted``: the same names as key sets (``{name: true}``,
    so that Rego narrows with set operations); and ``masks``: the declared mask ``{kind, expr}`` of
    those that have one. Whether they are masked, hidden or left alone is decided in Rego. The
    grants with all their fields and ``text`` (the grant in words, for reasons), and ``grantsTo``:
    for each target kind (ids, groups, domains), target → positions of the grants naming it;
    whether a grant applies is decided in Rego.
    """
    metadata = product.get("metadata") or {}
    spec = product.get("spec") or {}
    ports: dict[str, Any] = {}
    for port in spec.get("outputPorts") or []:
        columns = {
            column["name"]: {
                "pii": column.get("pii"),
                "classification": column.get("classification"),
                "mask": column.get("mask"),
                "maskExpr": column.get("maskExpr"),
            }
            for column in port.get("columns") or []
            if column.get("pii") is True or column.get("classification") == "restricted"
        }
        masks = {
            name: {"kind": column["mask"], "expr": column["maskExpr"]}
            for name, column in columns.items()
            if column["mask"] is not None
        }
        ports.setdefault(
            port["name"],
            {
                "columns": columns,
                "masks": masks,
                "pii": {name: True for name, column in columns.items() if column["pii"] is True},
                "restricted": {
                    name: True
                    for name, column in columns.items()
                    if column["classification"] == "restricted"
                },
            },
        )
    grants = [_grant_view(grant) for grant in (spec.get("access") or {}).get("grants") or []]
    index: dict[str, dict[str, list[int]]] = {"ids": {}, "groups": {}, "domains": {}}
    for position, grant in enumerate(grants):
        for kind, values in grant["to"].items():
            for value in dict.fromkeys(values):
                index[kind].setdefault(value, []).append(position)
    return {
        "id": product.get("id"),
        "domain": metadata.get("domain"),
        "status": metadata.get("status"),
        "grants": grants,
        "grantsTo": index,
        "ports": ports,
    }


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def access_source(manifest: Manifest) -> dict[str, Any]:
    """The fields of ``manifest.policy_document()`` that ``_access_view`` reads, taken from the
    model directly: a tenth of the cost of the whole document, for catalogues of thousands."""
    return {
        "id": manifest.id,
        "metadata": {
            "domain": manifest.metadata.domain,
            "status": _enum_value(manifest.metadata.status),
        },
        "spec": {
            "outputPorts": [
                {
                    "name": port.name,
                    "columns": [
                        {
                            "name": column.name,
                            "pii": column.pii,
                            "classification": _enum_value(column.classification),
                            "mask": _enum_value(column.mask),
                            "maskExpr": column.mask_expr,
                        }
                        for column in port.columns
                    ],
                }
                for port in manifest.spec.output_ports
            ],
            "access": {
                "grants": [
                    {
                        "to": grant.to.model_dump(),  # ids, groups, domains
                        "purposes": grant.purposes,
                        "ports": grant.ports,
                        "rowFilter": grant.row_filter,
                    }
                    for grant in manifest.spec.access.grants
                ]
            },
        },
    }


def _view_of(manifest: Manifest) -> dict[str, Any]:
    return _access_view(access_source(manifest))


def _grant_view(grant: Mapping[str, Any]) -> dict[str, Any]:
    """A grant with every field present (the manifest model's defaults): Rego reads it directly."""
    to = grant.get("to") or {}
    targets = {key: list(to.get(key) or []) for key in ("ids", "groups", "domains")}
    purposes = list(grant.get("purposes") or [])
    who = ", ".join(f"{key} [{', '.join(values)}]" for key, values in targets.items() if values)
    return {
        "to": targets,
        "text": f"grant to {who} for purposes [{', '.join(purposes)}]",
        "purposes": purposes,
        "ports": list(grant.get("ports") or []),
        "rowFilter": grant.get("rowFilter"),
    }


def access_index(views: Mapping[str, Any], depth: int = ACCESS_INDEX_DEPTH) -> dict[str, Any]:
    """``views`` (product id → access view) as a tree ``depth`` levels deep that Rego walks cheaply.

    Each level is ``{"at": i, "by": {character: level below}}``: the ids below it grouped by their
    character at position ``i`` (``""`` past the end: what Rego's ``substring`` gives), ``i``
    chosen per level so that its largest group is the smallest; the last level holds the views
    by id. rego-cpp finds an object key by walking the keys before it (≈ 0.5 µs each): with the
    products keyed by domain then name, the last of 10,000 (100 domains of 100) walked 200 keys;
    here a level has at most one key per character in use (10 for ids that differ in digits) and
    10,000 products leave a handful per leaf, so a lookup costs about the same at any size.
    """
    if depth == 0:
        return dict(views)
    longest = max((len(pid) for pid in views), default=0)
    at = min(range(longest + 1), key=lambda i: (_largest_group(views, i), i))
    groups: dict[str, dict[str, Any]] = {}
    for pid, view in views.items():
        groups.setdefault(pid[at : at + 1], {})[pid] = view
    below = {char: access_index(group, depth - 1) for char, group in groups.items()}
    return {"at": at, "by": below}


def _largest_group(ids: Mapping[str, Any], at: int) -> int:
    sizes: dict[str, int] = {}
    for pid in ids:
        char = pid[at : at + 1]
        sizes[char] = sizes.get(char, 0) + 1
    return max(sizes.values(), default=0)


def indexed_view(index: Mapping[str, Any], pid: str) -> Any:
    """The access view of ``pid`` in an ``access_index`` tree, or ``None`` (as Rego finds it)."""
    node: Any = index
    for _ in range(ACCESS_INDEX_DEPTH):
        node = node["by"].get(pid[node["at"] : node["at"] + 1])
        if node is None:
            return None
    return node.get(pid)


def catalog_policy_data(products: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``data.catalog`` for the policies, prepared once per catalogue revision.

    ``products``: each product's policy document by id (``data.catalog.products``); ``access``:
    the same products as the access policy reads them (``_access_view``), in ``access_index``'s
    tree, so that one decision is a few short lookups in rego-cpp whatever the size of the mesh
    (keyed by domain then name, the last of 10,000 products took 1.3x the example mesh's
    decision; one object of every product, about 1 ms at 1,000 products, 3.4 ms at 5,000; see
    docs/benchmarks.md).
    """
    views = {pid: _access_view(doc) for pid, doc in products.items()}
    return {"catalog": {"products": dict(products), "access": access_index(views)}}


def gateway_policy_data(bundle: PolicyBundle, catalog: Catalog) -> dict[str, Any]:
    """What the access decision's plan holds of the catalogue, once per catalogue revision.

    The access view (``data.catalog.access``) always; every product's whole policy document
    (``data.catalog.products``) only when a rule reachable from the decision refers to it (the
    shipped policies do not). The documents are most of the data: leaving them out is what keeps
    preparing 10,000 products in seconds and hundreds of MB (docs/benchmarks.md).
    """
    if reads_data(bundle.policy_modules(), [ACCESS_ENTRYPOINT], "catalog.products"):
        return catalog_policy_data(
            {pid: m.policy_document() for pid, m in catalog.manifests.items()}
        )
    views = {
        pid: PER_MANIFEST.get(manifest, "access", _view_of)
        for pid, manifest in catalog.manifests.items()
    }
    return {"catalog": {"access": access_index(views)}}
