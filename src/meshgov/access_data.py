"""What the access decision sees of the catalogue: the access view of each product.

``data.catalog.access[domain][name]`` holds, per product, only what ``meshgov.access`` reads
(ports, columns with classification, PII, masks, grants): small, so that preparing a catalogue of
10,000 products stays cheap, and keyed by domain then name, so that rego-cpp finds a product
without walking every key before it. ``data.catalog.products`` (whole policy documents) is added
only when a rule reachable from the decision reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshgov.catalog import PER_MANIFEST, Catalog
from meshgov.core.manifest import Manifest
from meshgov.core.policy import PolicyBundle, reads_data

ACCESS_ENTRYPOINT = "meshgov/access/decision"


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


def catalog_policy_data(products: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``data.catalog`` for the policies, prepared once per catalogue revision.

    ``products``: each product's policy document by id (``data.catalog.products``); ``access``:
    the same products as the access policy reads them (``_access_view``), keyed by domain, then
    by product name (``data.catalog.access["customer"]["customers"]``), so that one decision is
    a few lookups rather than scans in rego-cpp. Two levels because rego-cpp finds a key by
    walking the keys before it: one object of every product would make a decision's cost grow
    with the size of the mesh (about 1 ms at 1,000 products, 3.4 ms at 5,000; see
    docs/benchmarks.md).
    """
    access: dict[str, dict[str, Any]] = {}
    for pid, doc in products.items():
        domain, _, name = pid.partition("/")
        access.setdefault(domain, {})[name] = _access_view(doc)
    return {"catalog": {"products": dict(products), "access": access}}


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
    access: dict[str, dict[str, Any]] = {}
    for pid, manifest in catalog.manifests.items():
        domain, _, name = pid.partition("/")
        access.setdefault(domain, {})[name] = PER_MANIFEST.get(manifest, "access", _view_of)
    return {"catalog": {"access": access}}
