"""The entity linkage graph: model, identity facts and the questions, on fixed meshes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshgov.catalog import load_catalog, load_manifest, manifest_paths
from meshgov.core.graph import (
    EdgeKind,
    EntityGraph,
    NodeKind,
    PortView,
    build_graph,
    entities,
    facts_for_product,
    grant_access,
    identity_facts,
    impact,
    join_paths,
    lineage,
    pii_flows,
    principal_view,
    quasi_identifier_policy,
    registry_from_data,
    reidentification_risk,
)
from meshgov.core.manifest import Manifest, parse_manifest
from meshgov.errors import InputError, ManifestError, NotFound, PrincipalError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "graph"


def _data(name: str) -> Any:
    return yaml.safe_load((FIXTURES / "policies" / "data" / name).read_text())


@pytest.fixture(scope="module")
def registry() -> dict[str, Any]:
    data: dict[str, Any] = _data("entities.yaml")
    return data


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return list(load_catalog(FIXTURES / "mesh").manifests.values())


@pytest.fixture(scope="module")
def broken() -> list[Manifest]:
    return [load_manifest(p) for p in manifest_paths([FIXTURES / "broken"])]


@pytest.fixture(scope="module")
def graph(manifests: list[Manifest], registry: dict[str, Any]) -> EntityGraph:
    return build_graph(manifests, registry)


# --- model --------------------------------------------------------------------------------------


def test_graph_counts_every_kind_of_node_and_edge(graph: EntityGraph) -> None:
    stats = graph.stats()
    assert stats.nodes == {"column": 35, "domain": 4, "entity": 4, "port": 8, "product": 8}
    assert stats.edges == {"derives_from": 17, "exposes": 43, "identifies": 11, "owns": 8}
    assert set(stats.nodes) == {k.value for k in NodeKind}
    assert set(stats.edges) == {k.value for k in EdgeKind}


def test_fast_assembly_equals_networkx_public_construction(graph: EntityGraph) -> None:
    import networkx as nx

    g = graph.nx_graph
    public: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    public.add_nodes_from(g.nodes(data=True))
    public.add_edges_from(g.edges(keys=True, data=True))
    assert nx.utils.graphs_equal(g, public)
    assert sorted(g.in_edges("entity:customer", keys=True)) == sorted(
        public.in_edges("entity:customer", keys=True)
    )
    assert g.number_of_edges() == 79


def test_identifies_edges_record_canonical_or_mapped_names(graph: EntityGraph) -> None:
    g = graph.nx_graph
    mapped = sorted(
        (u, v) for u, v, k, d in g.edges(keys=True, data=True) if d.get("mapping") == "mapped"
    )
    assert mapped == [
        ("column:marketing/campaign_audience:audience:client_id", "entity:customer"),
        ("column:payments/payments:payments:cust_ref", "entity:customer"),
    ]


def test_column_lineage_edges_follow_derived_from(graph: EntityGraph) -> None:
    g = graph.nx_graph
    assert g.has_edge(
        "column:customer/customers:customers:postcode",
        "column:marketing/customer_360:customer_360:postcode",
        key=EdgeKind.derives_from.value,
    )
    assert g.has_edge(
        "port:commerce/orders:orders", "port:payments/payments:payments", key="derives_from"
    )


def test_inputs_outside_the_catalog_become_undeclared_nodes(
    manifests: list[Manifest], registry: dict[str, Any]
) -> None:
    only_orders = [m for m in manifests if m.id == "commerce/orders"]
    g = build_graph(only_orders, registry).nx_graph
    assert g.nodes["port:customer/customers:customers"]["declared"] is False
    assert g.nodes["port:customer/customers:customers"]["kind"] == "port"


def test_a_bad_derived_from_reference_is_refused_where_it_is_written() -> None:
    text = (FIXTURES / "mesh" / "marketing" / "segment_report.yaml").read_text()
    bad_text = text.replace("marketing/customer_360:customer_360:lifetime_value", "lifetime_value")
    with pytest.raises(ManifestError, match="derivedFrom") as caught:
        parse_manifest(bad_text, "segment_report.yaml")
    assert caught.value.location is not None
    lines = bad_text.splitlines()
    assert "lifetime_value" in lines[caught.value.location.line - 1]


def test_a_bad_derived_from_reference_names_the_column_in_the_graph(
    registry: dict[str, Any],
) -> None:
    """A manifest built in code (not parsed) with a bad reference is still refused, located."""
    good = parse_manifest(
        (FIXTURES / "mesh" / "marketing" / "segment_report.yaml").read_text(),
        "segment_report.yaml",
    )
    port = good.spec.output_ports[0]
    columns = [
        c.model_copy(update={"derived_from": ["lifetime_value"]}) if c.derived_from else c
        for c in port.columns
    ]
    bad_port = port.model_copy(update={"columns": columns})
    bad = good.model_copy(
        update={"spec": good.spec.model_copy(update={"output_ports": [bad_port]})}
    )
    with pytest.raises(ManifestError, match="derivedFrom") as caught:
        build_graph([bad], registry)
    assert caught.value.location is not None
    assert caught.value.location.column == next(c.name for c in columns if c.derived_from)


def test_registry_that_is_not_a_mapping_is_invalid_input() -> None:
    with pytest.raises(InputError, match="must be a mapping"):
        registry_from_data({"customer": ["customer_id"]})


# --- identity facts -----------------------------------------------------------------------------


def test_a_clean_mesh_has_no_identity_facts(graph: EntityGraph) -> None:
    assert identity_facts(graph) == []


def test_broken_products_give_located_facts_of_every_kind(
    manifests: list[Manifest], broken: list[Manifest], registry: dict[str, Any]
) -> None:
    facts = identity_facts([*manifests, *broken], registry)
    assert [(f["kind"], f["entity"], f["product"], f["port"], f["column"]) for f in facts] == [
        ("entity_multiple_owners", "customer", "crm/accounts", None, None),
        ("owner_unreachable", "customer", "crm/accounts", "accounts", "customer_id"),
        ("identifier_format_mismatch", "order", "logistics/shipments", "shipments", "order_id"),
        ("unknown_entity", "parcel", "logistics/shipments", "shipments", "parcel_id"),
        ("undeclared_identifier", "customer", "support/tickets", "tickets", "cust_id"),
        ("identifier_type_mismatch", "customer", "support/tickets", "tickets", "customer_ref"),
        ("owner_unreachable", "customer", "support/tickets", "tickets", "customer_ref"),
    ]
    details = {(f["kind"], f["product"]): f["detail"] for f in facts}
    assert details[("entity_multiple_owners", "crm/accounts")] == {
        "owners": ["crm/accounts", "customer/customers"],
        "expected": "customer/customers",
    }
    assert details[("identifier_type_mismatch", "support/tickets")] == {
        "type": "integer",
        "expected": "string",
    }
    assert details[("identifier_format_mismatch", "logistics/shipments")] == {
        "format": "^[0-9]+$",
        "expected": "^O[0-9]{8}$",
    }
    assert details[("undeclared_identifier", "support/tickets")] == {
        "matched": "alias",
        "expected": "customer_id",
    }
    assert details[("owner_unreachable", "support/tickets")] == {"owner": "customer/customers"}
    assert all(set(f) == {"kind", "entity", "product", "port", "column", "detail"} for f in facts)


def test_facts_for_product_keeps_only_that_product(
    manifests: list[Manifest], broken: list[Manifest], registry: dict[str, Any]
) -> None:
    facts = identity_facts([*manifests, *broken], registry)
    mine = facts_for_product(facts, "support/tickets")
    assert {f["kind"] for f in mine} == {
        "undeclared_identifier",
        "identifier_type_mismatch",
        "owner_unreachable",
    }
    assert facts_for_product(facts, "customer/customers") == []


def test_an_entity_nobody_in_its_owner_domain_carries_is_unowned(
    manifests: list[Manifest], registry: dict[str, Any]
) -> None:
    extended = {
        **registry,
        "campaign": {
            "owner": {"domain": "marketing", "product": "campaigns"},
            "canonical": {"name": "campaign_id", "type": "string"},
        },
    }
    facts = identity_facts(manifests, extended)
    assert facts == [
        {
            "kind": "entity_unowned",
            "entity": "campaign",
            "product": "marketing/campaigns",
            "port": None,
            "column": None,
            "detail": {"owner_domain": "marketing"},
        }
    ]


def test_registry_inconsistencies_are_multiple_owner_facts(
    manifests: list[Manifest], registry: dict[str, Any]
) -> None:
    inconsistent = {
        **registry,
        "client": {
            "owner": {"domain": "crm", "product": "customer/customers"},
            "canonical": {"name": "client_no", "type": "string"},
            "aliases": ["cust_id"],
        },
    }
    facts = [f for f in identity_facts(manifests, inconsistent) if f["entity"] == "client"]
    reasons = sorted(f["detail"]["reason"] for f in facts if f["kind"] == "entity_multiple_owners")
    assert reasons == [
        "registry: name 'cust_id' is also claimed by customer",
        "registry: owner product customer/customers is not in owner domain crm",
    ]
    customer = [f for f in identity_facts(manifests, inconsistent) if f["entity"] == "customer"]
    assert [f["detail"]["reason"] for f in customer] == [
        "registry: name 'cust_id' is also claimed by client"
    ]


def test_lineage_through_carriers_makes_the_owner_reachable(
    manifests: list[Manifest], registry: dict[str, Any]
) -> None:
    # payments carries customer under cust_ref, reading orders which reads customers: reachable.
    facts = identity_facts(manifests, registry)
    assert not [f for f in facts if f["kind"] == "owner_unreachable"]
    # Without the orders product in between, payments cannot be traced back to the owners (of
    # customer, and of order, whose only owner-domain carrier left is order_items).
    without_orders = [m for m in manifests if m.id not in {"commerce/orders"}]
    unreachable = [
        (f["entity"], f["product"], f["column"], f["detail"]["owner"])
        for f in identity_facts(without_orders, registry)
        if f["kind"] == "owner_unreachable"
    ]
    assert unreachable == [
        ("customer", "payments/payments", "cust_ref", "customer/customers"),
        ("order", "payments/payments", "order_id", "commerce/order_items"),
    ]


def test_identity_facts_do_not_import_networkx() -> None:
    code = (
        "import sys, yaml\n"
        "from meshgov.catalog import load_catalog\n"
        "from meshgov.core.graph import identity_facts\n"
        f"root = {str(FIXTURES)!r}\n"
        "reg = yaml.safe_load(open(root + '/policies/data/entities.yaml'))\n"
        "facts = identity_facts(load_catalog(root + '/mesh').manifests.values(), reg)\n"
        "assert facts == [], facts\n"
        "assert 'networkx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- entities and join paths --------------------------------------------------------------------


def test_entities_list_owner_and_every_carrier(graph: EntityGraph) -> None:
    by_name = {e.name: e for e in entities(graph)}
    assert sorted(by_name) == ["customer", "order", "payment", "product"]
    customer = by_name["customer"]
    assert customer.owner_product == "customer/customers"
    assert [(c.product, c.port, c.column, c.mapping, c.owner) for c in customer.carriers] == [
        ("commerce/orders", "orders", "customer_id", "canonical", False),
        ("customer/customers", "customers", "customer_id", "canonical", True),
        ("marketing/campaign_audience", "audience", "client_id", "mapped", False),
        ("marketing/customer_360", "customer_360", "customer_id", "canonical", False),
        ("payments/payments", "payments", "cust_ref", "mapped", False),
    ]


def test_unregistered_entities_are_listed_without_owner(
    broken: list[Manifest], registry: dict[str, Any]
) -> None:
    parcel = next(e for e in entities(build_graph(broken, registry)) if e.name == "parcel")
    assert (parcel.registered, parcel.owner_domain, parcel.products) == (
        False,
        None,
        ("logistics/shipments",),
    )


def test_join_paths_shortest_first_with_columns(graph: EntityGraph) -> None:
    paths = join_paths(graph, "payments/payments", "marketing/campaign_audience")
    assert [(p.hops, p.products, p.entities) for p in paths] == [
        (1, ("payments/payments", "marketing/campaign_audience"), ("customer",)),
        (
            2,
            ("payments/payments", "commerce/orders", "marketing/campaign_audience"),
            ("order", "customer"),
        ),
    ]
    step = paths[0].steps[0]
    assert (step.left_columns, step.right_columns) == (
        ("payments:cust_ref",),
        ("audience:client_id",),
    )


def test_join_paths_through_several_entities(graph: EntityGraph) -> None:
    paths = join_paths(graph, "commerce/products", "customer/customers")
    assert [p.products for p in paths] == [
        ("commerce/products", "commerce/order_items", "commerce/orders", "customer/customers"),
        ("commerce/products", "commerce/order_items", "payments/payments", "customer/customers"),
    ]
    assert {p.entities for p in paths} == {("product", "order", "customer")}
    assert join_paths(graph, "commerce/products", "customer/customers", max_hops=2) == []
    assert len(join_paths(graph, "commerce/products", "customer/customers", limit=1)) == 1


def test_join_paths_bounds_and_products_without_identifiers(graph: EntityGraph) -> None:
    assert join_paths(graph, "marketing/segment_report", "customer/customers", max_hops=6) == []
    with pytest.raises(InputError, match="max_hops must be 1 to 6"):
        join_paths(graph, "payments/payments", "customer/customers", max_hops=7)
    with pytest.raises(InputError, match="limit 1 to 100"):
        join_paths(graph, "payments/payments", "customer/customers", limit=0)
    longest = join_paths(graph, "commerce/products", "customer/customers", max_hops=6, limit=100)
    assert [p.hops for p in longest][:2] == [3, 3]
    assert all(len(set(p.products)) == len(p.products) for p in longest)


def test_join_paths_reject_unknown_or_identical_products(graph: EntityGraph) -> None:
    with pytest.raises(NotFound, match="no product 'x/y'"):
        join_paths(graph, "x/y", "customer/customers")
    with pytest.raises(InputError, match="two different products"):
        join_paths(graph, "customer/customers", "customer/customers")


# --- lineage, impact, PII -----------------------------------------------------------------------


def test_upstream_lineage_with_depths(graph: EntityGraph) -> None:
    result = lineage(graph, "marketing/segment_report")
    assert [(n.product, n.depth) for n in result.nodes] == [
        ("marketing/customer_360", 1),
        ("commerce/orders", 2),
        ("customer/customers", 2),
        ("payments/payments", 2),
    ]


def test_downstream_lineage_with_links(graph: EntityGraph) -> None:
    result = lineage(graph, "commerce/orders", "downstream")
    assert [(n.product, n.depth) for n in result.nodes] == [
        ("commerce/order_items", 1),
        ("marketing/customer_360", 1),
        ("payments/payments", 1),
        ("marketing/segment_report", 2),
    ]
    assert ("commerce/orders:orders", "payments/payments") in {
        (link.source, link.target) for link in result.links
    }


def test_impact_of_a_column_is_precise_and_lists_owners(graph: EntityGraph) -> None:
    result = impact(graph, "customer/customers:customers:postcode")
    assert [(i.product, i.column, i.depth, i.precision) for i in result.items] == [
        ("commerce/orders", None, 1, "port"),
        ("marketing/campaign_audience", None, 1, "port"),
        ("marketing/customer_360", "postcode", 1, "column"),
        ("commerce/order_items", None, 2, "port"),
        ("marketing/segment_report", None, 2, "port"),
        ("payments/payments", None, 2, "port"),
    ]
    assert [(o.owner, o.products) for o in result.owners] == [
        ("commerce-team@acme.example", ("commerce/order_items", "commerce/orders")),
        ("marketing-bi@acme.example", ("marketing/segment_report",)),
        ("marketing@acme.example", ("marketing/campaign_audience", "marketing/customer_360")),
        ("payments-team@acme.example", ("payments/payments",)),
    ]


def test_impact_of_a_product_and_of_unknown_targets(graph: EntityGraph) -> None:
    result = impact(graph, "payments/payments")
    assert [i.product for i in result.items] == [
        "marketing/customer_360",
        "marketing/segment_report",
    ]
    with pytest.raises(NotFound, match="no port 'nope'"):
        impact(graph, "payments/payments:nope")
    with pytest.raises(NotFound, match="no column 'nope'"):
        impact(graph, "payments/payments:payments:nope")


def test_pii_flows_follow_products_that_declare_no_pii(graph: EntityGraph) -> None:
    flows = {f.product: f for f in pii_flows(graph)}
    assert sorted(flows) == ["commerce/order_items", "commerce/orders", "marketing/segment_report"]
    assert flows["commerce/order_items"].sources[0].path == (
        "customer/customers:customers",
        "commerce/orders",
        "commerce/order_items",
    )
    assert flows["commerce/orders"].sources[0].columns == (
        "email (email)",
        "full_name (name)",
        "birth_date (birth_date)",
    )
    segment = flows["marketing/segment_report"].sources
    assert [(s.product, s.columns) for s in segment] == [
        ("marketing/customer_360", ("birth_date (birth_date)",))
    ]


# --- re-identification risk ---------------------------------------------------------------------


def _principal(name: str, purpose: str | None = None) -> Any:
    data = yaml.safe_load((FIXTURES / "principals" / f"{name}.yaml").read_text())
    return principal_view(data, purpose)


def test_analyst_can_join_quasi_identifiers_across_products(graph: EntityGraph) -> None:
    policy = quasi_identifier_policy(_data("quasi_identifiers.yaml"))
    report = reidentification_risk(graph, _principal("analyst"), policy)
    assert len(report.findings) == 1
    finding = report.findings[0]
    assert finding.entity == "customer"
    assert finding.quasi_identifiers == ("birth_date", "gender", "postcode")
    assert finding.cross_product is True
    assert finding.matched_combinations == (("birth_date", "gender", "postcode"),)
    assert [(e.name, e.product, e.column, e.generalised) for e in finding.exposed] == [
        ("birth_date", "marketing/customer_360", "birth_date", True),
        ("gender", "customer/customers", "gender", False),
        ("gender", "marketing/campaign_audience", "gender", False),
        ("postcode", "customer/customers", "postcode", False),
        ("postcode", "marketing/customer_360", "postcode", False),
    ]


def test_cleared_principal_sees_one_risky_product_and_purpose_narrows(graph: EntityGraph) -> None:
    policy = quasi_identifier_policy(_data("quasi_identifiers.yaml"))
    report = reidentification_risk(graph, _principal("fraud"), policy)
    assert report.visible_products == ("customer/customers", "payments/payments")
    assert [(f.products, f.cross_product) for f in report.findings] == [
        (("customer/customers",), False)
    ]
    wrong_purpose = reidentification_risk(graph, _principal("fraud", "marketing"), policy)
    assert wrong_purpose.visible_products == ()
    assert reidentification_risk(graph, _principal("nobody"), policy).findings == ()


def test_an_access_view_replaces_the_grant_approximation(graph: EntityGraph) -> None:
    policy = quasi_identifier_policy(_data("quasi_identifiers.yaml"))

    def only_customers_in_clear(manifest: Manifest, port: str) -> PortView:
        return PortView(manifest.id == "customer/customers")

    report = reidentification_risk(
        graph, _principal("nobody"), policy, only_customers_in_clear, "policy"
    )
    assert report.access_model == "policy"
    assert report.visible_products == ("customer/customers",)
    assert [(f.products, f.cross_product) for f in report.findings] == [
        (("customer/customers",), False)
    ]

    def hashed_ids_only(manifest: Manifest, port: str) -> PortView:
        masks = {"customer_id": "hash", "client_id": "redact", "birth_date": "year"}
        return PortView(True, frozenset({"postcode"}), masks)

    report = reidentification_risk(graph, _principal("nobody"), policy, hashed_ids_only)
    # Redacted client_id cannot join; without postcode only two quasi-identifiers remain.
    assert report.findings == ()
    assert grant_access(_principal("nobody"))(
        graph.index.manifests["customer/customers"], "customers"
    ) == PortView(False)


def test_quasi_identifier_configuration_shapes() -> None:
    plain = quasi_identifier_policy(["birth_date", "postcode"])
    assert [q.name for q in plain.identifiers] == ["birth_date", "postcode"]
    assert plain.threshold == 3
    columns = quasi_identifier_policy({"columns": ["zip", "gender"], "piiCategories": ["address"]})
    assert [q.name for q in columns.identifiers] == ["zip", "gender", "address"]
    named = quasi_identifier_policy({"postcode": ["zip"], "gender": None})
    assert named.identifiers[0].aliases == ("zip",)
    with pytest.raises(InputError, match="threshold"):
        quasi_identifier_policy({"columns": ["zip"], "threshold": 0})
    with pytest.raises(InputError):
        quasi_identifier_policy("birth_date")


def test_a_principal_needs_an_id() -> None:
    with pytest.raises(PrincipalError):
        principal_view({"groups": ["analysts"]})


# --- the example mesh ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example(mesh_dir: Path, policies_dir: Path) -> EntityGraph:
    if not (mesh_dir.is_dir() and (policies_dir / "data" / "entities.yaml").is_file()):
        pytest.skip("examples/mesh or policies/data/entities.yaml not present")
    registry = yaml.safe_load((policies_dir / "data" / "entities.yaml").read_text())
    return build_graph(load_catalog(mesh_dir).manifests.values(), registry)


def test_example_mesh_passes_identity_harmonisation(example: EntityGraph) -> None:
    assert identity_facts(example) == []


def test_example_mesh_customer_is_carried_under_mapped_names(example: EntityGraph) -> None:
    customer = next(e for e in entities(example) if e.name == "customer")
    assert customer.owner_product == "customer/customers"
    assert [(c.product, c.column, c.mapping) for c in customer.carriers] == [
        ("commerce/orders", "customer_id", "canonical"),
        ("customer/customers", "customer_id", "canonical"),
        ("marketing/campaign_audience", "client_id", "mapped"),
        ("marketing/customer_360", "customer_id", "canonical"),
        ("payments/payments", "cust_ref", "mapped"),
    ]


def test_example_mesh_join_paths_and_impact(example: EntityGraph) -> None:
    paths = join_paths(example, "payments/payments", "marketing/campaign_audience")
    assert [(p.products, p.entities) for p in paths] == [
        (("payments/payments", "marketing/campaign_audience"), ("customer",)),
        (
            ("payments/payments", "commerce/orders", "marketing/campaign_audience"),
            ("order", "customer"),
        ),
    ]
    result = impact(example, "customer/customers:customers:customer_id")
    assert [o.owner for o in result.owners] == [
        "commerce-data@acme.example",
        "marketing-data@acme.example",
        "payments-data@acme.example",
    ]
    assert {i.product for i in result.items} == {
        "commerce/orders",
        "commerce/order_items",
        "marketing/campaign_audience",
        "marketing/customer_360",
        "payments/payments",
    }


def test_example_mesh_pii_flows(example: EntityGraph) -> None:
    flows = {f.product: [s.path for s in f.sources] for f in pii_flows(example)}
    assert flows == {
        "commerce/order_items": [
            ("customer/customers:customers", "commerce/orders", "commerce/order_items")
        ],
        "commerce/orders": [("customer/customers:customers", "commerce/orders")],
        "marketing/customer_360": [
            ("customer/customers:customers", "marketing/customer_360"),
            ("payments/payments:payments", "marketing/customer_360"),
        ],
    }


BROKEN_KINDS = {
    "identity-entity-unowned": "entity_unowned",
    "identity-format-mismatch": "identifier_format_mismatch",
    "identity-multiple-owners": "entity_multiple_owners",
    "identity-owner-unreachable": "owner_unreachable",
    "identity-type-mismatch": "identifier_type_mismatch",
    "identity-undeclared-identifier": "undeclared_identifier",
    "identity-unknown-entity": "unknown_entity",
}


@pytest.mark.parametrize("name", sorted(BROKEN_KINDS))
def test_each_broken_identity_example_gives_exactly_its_fact(
    name: str, repo_root: Path, mesh_dir: Path, policies_dir: Path
) -> None:
    path = repo_root / "examples" / "broken" / f"{name}.yaml"
    if not path.is_file() or not mesh_dir.is_dir():
        pytest.skip(f"{path.name} or examples/mesh not present")
    broken = load_manifest(path)
    registry = yaml.safe_load((policies_dir / "data" / "entities.yaml").read_text())
    # The broken manifest replaces the product of the same id, as the gate's catalog does.
    mesh = {m.id: m for m in load_catalog(mesh_dir).manifests.values()}
    mesh[broken.id] = broken
    facts = facts_for_product(identity_facts(mesh.values(), registry), broken.id)
    assert [f["kind"] for f in facts] == [BROKEN_KINDS[name]]
