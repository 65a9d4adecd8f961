"""Identity facts of a few products against a large mesh, computed incrementally, are exactly the
whole-mesh analysis restricted to those products (the gate's publication path at scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshgov.catalog import load_catalog, load_manifest, manifest_paths
from meshgov.core.graph import identity
from meshgov.core.graph.identity import MeshFacts, identity_facts, product_identity_facts
from meshgov.core.graph.model import MeshIndex, build_index, index_replacing
from meshgov.core.manifest import Manifest
from meshgov.errors import MeshgovError

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT / "tests" / "fixtures" / "graph"
EXAMPLES = ROOT / "examples"
MESHES = [
    (GRAPH / "mesh", GRAPH / "broken", GRAPH / "policies" / "data" / "entities.yaml"),
    (EXAMPLES / "mesh", EXAMPLES / "broken", ROOT / "policies" / "data" / "entities.yaml"),
]


def _readable(paths: list[Path]) -> list[Manifest]:
    out: list[Manifest] = []
    for path in paths:
        try:
            out.append(load_manifest(path))
        except MeshgovError:
            continue
    return out


def _cases() -> list[tuple[str, list[Manifest], list[Manifest], dict[str, Any]]]:
    cases = []
    for mesh, broken, entities in MESHES:
        manifests = list(load_catalog(mesh).manifests.values())
        variants = _readable(manifest_paths([broken]))
        registry = yaml.safe_load(entities.read_text())
        cases.append((mesh.parent.name, manifests, variants, registry))
    return cases


CASES = _cases()


def _restricted(facts: list[dict[str, Any]], products: set[str]) -> list[dict[str, Any]]:
    return [fact for fact in facts if fact["product"] in products]


def _with(manifests: list[Manifest], replacing: Manifest) -> list[Manifest]:
    return [m for m in manifests if m.id != replacing.id] + [replacing]


def _shape(index: MeshIndex) -> dict[str, Any]:
    """The index's content, independent of insertion order."""
    return {
        "manifests": {k: id(v) for k, v in index.manifests.items()},
        "carriers": {k: sorted(map(repr, v)) for k, v in index.carriers.items()},
        "product_entities": index.product_entities,
        "inputs": {k: sorted(v) for k, v in index.inputs.items()},
        "consumers": {k: sorted(map(repr, v)) for k, v in index.consumers.items()},
        "derived_from": {k: sorted(v) for k, v in index.derived_from.items()},
        "derivations": {k: sorted(v) for k, v in index.derivations.items()},
        "carrier_products": index.carrier_products,
        "identifier_columns": {k: sorted(v) for k, v in index.identifier_columns.items()},
    }


@pytest.mark.parametrize(
    ("name", "manifests", "variants", "registry"), CASES, ids=[c[0] for c in CASES]
)
def test_product_facts_are_the_whole_analysis_restricted(
    name: str, manifests: list[Manifest], variants: list[Manifest], registry: dict[str, Any]
) -> None:
    meshes = [manifests] + [_with(manifests, variant) for variant in variants]
    assert len(meshes) > 3
    kinds: set[str] = set()
    for mesh in meshes:
        whole = identity_facts(mesh, registry)
        kinds.update(fact["kind"] for fact in whole)
        index = build_index(mesh, registry)
        for manifest in mesh:
            assert product_identity_facts(index, [manifest.id]) == _restricted(whole, {manifest.id})
        every = {m.id for m in mesh}
        assert product_identity_facts(index, every) == whole
    assert len(kinds) >= 4  # the broken manifests raise facts of several kinds


@pytest.mark.parametrize(
    ("name", "manifests", "variants", "registry"), CASES, ids=[c[0] for c in CASES]
)
def test_an_index_derived_by_replacing_products_is_the_index_built_whole(
    name: str, manifests: list[Manifest], variants: list[Manifest], registry: dict[str, Any]
) -> None:
    base = build_index(manifests, registry)
    before = _shape(base)
    for variant in variants:
        derived = index_replacing(base, [variant])
        assert _shape(derived) == _shape(build_index(_with(manifests, variant), registry))
        assert product_identity_facts(derived, [variant.id]) == _restricted(
            identity_facts(_with(manifests, variant), registry), {variant.id}
        )
    for removed in manifests:
        rest = [m for m in manifests if m.id != removed.id]
        derived = index_replacing(base, [], [removed.id])
        assert _shape(derived) == _shape(build_index(rest, registry))
    assert _shape(base) == before  # the base index is never changed


@pytest.mark.parametrize(
    ("name", "manifests", "variants", "registry"), CASES, ids=[c[0] for c in CASES]
)
def test_mesh_facts_keeps_its_index_across_a_run_of_publications(
    name: str,
    manifests: list[Manifest],
    variants: list[Manifest],
    registry: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(identity, "INCREMENTAL_MIN_MESH", 0)
    facts = MeshFacts(registry)
    mesh = {m.id: m for m in manifests}
    for variant in [*variants, *manifests]:
        candidate = {**mesh, variant.id: variant}
        expected = _restricted(identity_facts(candidate.values(), registry), {variant.id})
        assert facts.facts(candidate, [variant.id]) == expected
        mesh = candidate  # published: the next check is against the mesh with it
