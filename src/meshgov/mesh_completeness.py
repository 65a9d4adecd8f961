"""Whether the rest of the mesh was given to ``meshgov check``, and what that changes.

A domain repository checks its own products; identity rules and lineage inputs need the other
products of the mesh (``--catalog``). With the mesh, an input naming a product it does not have
is an error; without it, each product whose checks needed it gets a warning naming what could
not run, rather than passing silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from meshgov.core.manifest import Manifest
from meshgov.core.report import Finding, Severity
from meshgov.errors import Location

if TYPE_CHECKING:
    from meshgov.gate import SourcedManifest

UNKNOWN_INPUT_RULE = "catalog/unknown-input"
MESH_NOT_GIVEN_RULE = "catalog/mesh-not-given"
# The checks that read other products than the one checked.
MESH_CHECKS = (
    "identity/owner-unreachable",
    "identity/entity-unowned",
    "identity/multiple-owners",
    "identity/type-mismatch",
    "identity/format-mismatch",
)


def unknown_inputs(
    sourced: SourcedManifest, source: str | None, mesh: Mapping[str, Manifest]
) -> list[Finding]:
    """An input naming a product the mesh does not have (a typo, or a product not published)."""
    manifest = sourced.manifest
    findings = []
    for index, item in enumerate(manifest.spec.inputs):
        if item.product in mesh:
            continue
        findings.append(
            Finding(
                rule=UNKNOWN_INPUT_RULE,
                severity=Severity.error,
                message=(
                    f"spec.inputs[{index}] names product {item.product}, which is neither "
                    "checked nor in the catalogue"
                ),
                location=Location(
                    file=source or manifest.source,
                    line=sourced.lines.get(("", "")),
                    product=manifest.id,
                ),
                fix="Fix the product id, or pass the catalogue where it is published (--catalog).",
            )
        )
    return findings


def mesh_not_given(
    entries: Sequence[tuple[SourcedManifest, str | None]],
    checked: Mapping[str, Manifest],
    registry: Mapping[str, Any],
) -> list[Finding]:
    """A warning per product whose checks needed the rest of the mesh, naming what did not run:
    inputs from products not checked, or entities whose owning product is not checked."""
    raw = registry.get("entities")
    entities: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    findings = []
    for entry, source in entries:
        manifest = entry.manifest
        outside = sorted({i.product for i in manifest.spec.inputs if i.product not in checked})
        named = {c.entity for p in manifest.spec.output_ports for c in p.columns if c.entity}
        unowned = sorted(e for e in named if _owner_of(entities, e) not in {*checked, None})
        if not outside and not unowned:
            continue
        why = []
        if unowned:
            why.append(
                f"its columns name entities ({', '.join(unowned)}) owned by products not checked, "
                f"so {', '.join(MESH_CHECKS)} could not run"
            )
        if outside:
            why.append(f"its inputs {', '.join(outside)} could not be checked")
        findings.append(
            Finding(
                rule=MESH_NOT_GIVEN_RULE,
                severity=Severity.warning,
                message=f"the rest of the mesh was not given (--catalog): {'; '.join(why)}",
                location=Location(
                    file=source or manifest.source,
                    line=entry.lines.get(("", "")),
                    product=manifest.id,
                ),
                fix="Pass the mesh: --catalog https://<meshgov>/v1/catalog (token in "
                "MESHGOV_TOKEN), a file saved from it, or a directory of manifests.",
            )
        )
    return findings


def _owner_of(entities: Mapping[str, Any], entity: str) -> str | None:
    spec = entities.get(entity)
    owner = spec.get("owner") if isinstance(spec, dict) else None
    product = owner.get("product") if isinstance(owner, dict) else None
    return product if isinstance(product, str) else None
