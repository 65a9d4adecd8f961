"""The example mesh: reproducible snapshots, valid manifests, joinable identifiers, principals."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from meshgov.catalog import Catalog, load_catalog
from meshgov.core.manifest import Classification, LogicalType, Manifest

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "examples" / "generate_mesh.py"
ENTITIES = ROOT / "policies" / "data" / "entities.yaml"
QUASI_IDENTIFIERS = ROOT / "policies" / "data" / "quasi_identifiers.yaml"
PURPOSES = ROOT / "policies" / "data" / "purposes.yaml"

ARROW_TYPES = {
    LogicalType.string: pa.types.is_string,
    LogicalType.integer: pa.types.is_integer,
    LogicalType.number: pa.types.is_floating,
    LogicalType.decimal: pa.types.is_decimal,
    LogicalType.boolean: pa.types.is_boolean,
    LogicalType.date: pa.types.is_date,
    LogicalType.timestamp: pa.types.is_timestamp,
}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_mesh", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_mesh", module)  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def catalog(mesh_dir: Path) -> Catalog:
    return load_catalog(mesh_dir)


@pytest.fixture(scope="module")
def entities() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ENTITIES.read_text())
    return data


def _snapshot(catalog: Catalog, manifest: Manifest) -> pa.Table:
    port = manifest.spec.output_ports[0]
    assert port.data is not None, f"{manifest.id} has no snapshot"
    return pq.read_table(catalog.resolve_data_path(manifest, port.data))


def _column_values(catalog: Catalog, product: str, column: str) -> set[str]:
    table = _snapshot(catalog, catalog.manifests[product])
    return set(table.column(column).drop_null().to_pylist())


def test_regenerating_reproduces_the_committed_snapshots(tmp_path: Path, mesh_dir: Path) -> None:
    generator = _load_generator()
    written = generator.write_mesh(tmp_path)
    assert len(written) >= 6
    for product, path in written.items():
        committed = generator.snapshot_path(mesh_dir, product)
        assert committed.is_file(), f"{committed} is missing: run examples/generate_mesh.py"
        fresh, stored = pq.read_table(path), pq.read_table(committed)
        assert fresh.schema.equals(stored.schema), product
        assert fresh.equals(stored), f"{product}: committed snapshot differs from the generator"
    broken = ROOT / "examples" / "broken"
    for name, path in generator.write_broken_snapshots(tmp_path / "broken").items():
        committed_csv = broken / "data" / f"{name}.csv"
        assert path.read_bytes() == committed_csv.read_bytes(), name


def test_the_mesh_has_four_domains_and_six_products(catalog: Catalog) -> None:
    domains = {m.metadata.domain for m in catalog.manifests.values()}
    assert {"customer", "commerce", "payments", "marketing"} <= domains
    assert len(catalog.manifests) >= 6


def test_snapshots_match_the_declared_columns_and_types(catalog: Catalog) -> None:
    for manifest in catalog.manifests.values():
        port = manifest.spec.output_ports[0]
        table = _snapshot(catalog, manifest)
        assert table.num_rows >= 1000, manifest.id
        assert table.column_names == [c.name for c in port.columns], manifest.id
        for column in port.columns:
            arrow_type = table.schema.field(column.name).type
            assert ARROW_TYPES[column.type](arrow_type), f"{manifest.id}.{column.name}"
            values = table.column(column.name)
            if column.required:
                assert values.null_count == 0, f"{manifest.id}.{column.name} has nulls"
            if column.unique:
                assert pc.count_distinct(values).as_py() == len(values), column.name
            if column.enum:
                assert set(values.drop_null().to_pylist()) <= set(column.enum), column.name


def test_pii_columns_are_classified_masked_and_retained(catalog: Catalog) -> None:
    pii_seen = 0
    for manifest in catalog.manifests.values():
        for port in manifest.spec.output_ports:
            pii = [c for c in port.columns if c.pii]
            pii_seen += len(pii)
            for column in pii:
                assert column.classification is not None
                assert column.classification.rank >= Classification.confidential.rank
                assert column.pii_category
                assert column.mask is not None
            if pii:
                assert port.retention, f"{manifest.id}:{port.name} has PII but no retention"
    assert pii_seen >= 7


def test_entity_columns_match_the_registry_format(catalog: Catalog, entities: Any) -> None:
    for manifest in catalog.manifests.values():
        table = _snapshot(catalog, manifest)
        for column in manifest.spec.output_ports[0].columns:
            if column.entity is None:
                continue
            assert column.entity in entities, f"{manifest.id}.{column.name}: unknown entity"
            canonical = entities[column.entity]["canonical"]
            assert column.type == canonical["type"]
            pattern = re.compile(canonical["format"])
            bad = [
                v for v in table.column(column.name).drop_null().to_pylist() if not pattern.match(v)
            ]
            assert not bad, f"{manifest.id}.{column.name}: {bad[:3]}"


def test_entity_owners_exist_and_own_their_canonical_column(
    catalog: Catalog, entities: Any
) -> None:
    for name, entity in entities.items():
        owner = catalog.manifests[entity["owner"]["product"]]
        assert owner.metadata.domain == entity["owner"]["domain"]
        columns = {c.name: c for c in owner.spec.output_ports[0].columns}
        canonical = columns[entity["canonical"]["name"]]
        assert canonical.entity == name
        assert canonical.unique
        assert entity["canonical"]["name"] not in entity["aliases"]


def test_no_alias_column_lacks_its_entity_mapping(catalog: Catalog, entities: Any) -> None:
    alias_of = {alias: name for name, e in entities.items() for alias in e["aliases"]}
    mapped = []
    for manifest in catalog.manifests.values():
        for column in manifest.spec.output_ports[0].columns:
            if column.name in alias_of:
                assert column.entity == alias_of[column.name], f"{manifest.id}.{column.name}"
                mapped.append(column.name)
    # payments' cust_ref and marketing's client_id carry the customer id under local names.
    assert {"cust_ref", "client_id"} <= set(mapped)


@pytest.mark.parametrize(
    ("product", "column", "owner", "owner_column"),
    [
        ("commerce/orders", "customer_id", "customer/customers", "customer_id"),
        ("payments/payments", "cust_ref", "customer/customers", "customer_id"),
        ("payments/payments", "order_id", "commerce/orders", "order_id"),
        ("commerce/order_items", "order_id", "commerce/orders", "order_id"),
        ("commerce/order_items", "product_id", "commerce/products", "product_id"),
        ("marketing/campaign_audience", "client_id", "customer/customers", "customer_id"),
        ("marketing/customer_360", "customer_id", "customer/customers", "customer_id"),
    ],
)
def test_identifiers_join_across_products(
    catalog: Catalog, product: str, column: str, owner: str, owner_column: str
) -> None:
    referenced = _column_values(catalog, product, column)
    assert referenced
    assert referenced <= _column_values(catalog, owner, owner_column)


def test_lineage_points_at_existing_ports(catalog: Catalog) -> None:
    derived = catalog.manifests["marketing/customer_360"]
    assert len(derived.spec.inputs) >= 3
    for manifest in catalog.manifests.values():
        upstream_ids = {upstream.product for upstream in manifest.spec.inputs}
        for upstream in manifest.spec.inputs:
            assert catalog.manifests[upstream.product].port(upstream.port) is not None
        for column in manifest.spec.output_ports[0].columns:
            for reference in column.derived_from:  # domain/product:port:column
                product, port_name, column_name = reference.split(":")
                assert product in upstream_ids, reference
                port = catalog.manifests[product].port(port_name)
                assert port is not None, reference
                assert column_name in {c.name for c in port.columns}, reference


def test_region_row_filters_reference_existing_columns(catalog: Catalog) -> None:
    filtered = set()
    for manifest in catalog.manifests.values():
        names = {c.name for c in manifest.spec.output_ports[0].columns}
        for grant in manifest.spec.access.grants:
            if grant.row_filter:
                assert "region" in names, manifest.id
                filtered.add(manifest.id)
    assert {"customer/customers", "commerce/orders"} <= filtered


def test_principals_have_the_documented_shape(mesh_dir: Path) -> None:
    files = {
        p.stem: yaml.safe_load(p.read_text()) for p in (mesh_dir / "principals").glob("*.yaml")
    }
    assert {
        "analyst-eu",
        "analyst-us",
        "owner-customer",
        "fraud-investigator",
        "nobody",
        "guild",
    } <= set(files)
    for stem, principal in files.items():
        assert set(principal) == {"id", "groups", "domain", "attributes"}, stem
        assert principal["id"] == stem
        assert isinstance(principal["groups"], list)
        assert isinstance(principal["attributes"], dict)
    assert files["analyst-eu"]["attributes"]["region"] == "EU"
    assert files["analyst-us"]["attributes"]["region"] == "US"
    assert "pii" in files["fraud-investigator"]["attributes"]["clearances"]
    assert files["nobody"]["groups"] == []


def test_quasi_identifiers_list_the_classic_triple() -> None:
    data = yaml.safe_load(QUASI_IDENTIFIERS.read_text())
    assert {"birth_date", "postcode", "gender"} <= set(data["columns"])


def test_principals_parse_with_the_principal_model(mesh_dir: Path) -> None:
    from meshgov.core.principal import parse_principal

    for path in sorted((mesh_dir / "principals").glob("*.yaml")):
        principal = parse_principal(path.read_text(), str(path))
        assert principal.id == path.stem
    fraud = parse_principal((mesh_dir / "principals" / "fraud-investigator.yaml").read_text())
    assert fraud.clearances == ("pii",)


def test_grants_name_registered_purposes_and_groups_principals_hold(
    catalog: Catalog, mesh_dir: Path
) -> None:
    purposes = set(yaml.safe_load(PURPOSES.read_text()))
    principal_groups = {
        group
        for path in (mesh_dir / "principals").glob("*.yaml")
        for group in yaml.safe_load(path.read_text())["groups"]
    }
    granted_groups = set()
    for manifest in catalog.manifests.values():
        for grant in manifest.spec.access.grants:
            assert grant.purposes, f"{manifest.id}: a grant without purposes"
            assert set(grant.purposes) <= purposes, f"{manifest.id}: {grant.purposes}"
            granted_groups.update(grant.to.groups)
    assert {"analysts", "customer-owners", "fraud"} <= granted_groups & principal_groups
