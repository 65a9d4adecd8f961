"""The HTTP API hides the names of the columns a principal may not see, as the console does
(``meshgov.visibility``): the guild and a product's own domain see every column; anyone else
sees a port's columns as its access decisions show them (union over purposes)."""

from __future__ import annotations

import pytest
from api_server import RunningServer

from meshgov.catalog import read_manifest_text

# Restricted, unmasked: hidden from analyst-eu (`meshgov access --purpose analytics`).
SECRET = "failed_payment_count"
PRODUCT = "marketing/customer_360"
HIDDEN = "[a column you may not see]"  # the console's placeholder


def _columns(manifest: dict[str, object]) -> set[str]:
    spec = manifest["spec"]
    assert isinstance(spec, dict)
    return {c["name"] for p in spec["outputPorts"] for c in p["columns"]}


def test_product_detail_leaves_hidden_columns_out(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        latest = client.get(f"/v1/products/{PRODUCT}")
        version = latest.json()["version"]
        pinned = client.get(f"/v1/products/{PRODUCT}/versions/{version}")
    with server.client("guild") as client:
        guild = client.get(f"/v1/products/{PRODUCT}").json()
    for answer in (latest, pinned):
        assert answer.status_code == 200
        assert SECRET not in answer.text
        body = answer.json()
        assert "customer_id" in _columns(body["manifest"])
        # The text is still a manifest, the one the analyst is shown.
        assert _columns(body["manifest"]) == {
            c.name
            for p in read_manifest_text(body["manifest_text"], "answer").spec.output_ports
            for c in p.columns
        }
    assert SECRET in _columns(guild["manifest"])
    assert SECRET in guild["manifest_text"]


def test_a_product_without_access_shows_no_columns_but_its_owners_see_all(
    server: RunningServer,
) -> None:
    with server.client("nobody") as client:
        nobody = client.get("/v1/products/customer/customers").json()
    with server.client("owner-customer") as client:
        owner = client.get("/v1/products/customer/customers").json()
    assert _columns(nobody["manifest"]) == set()
    assert "email" not in nobody["manifest_text"]
    assert {"customer_id", "email", "birth_date"} <= _columns(owner["manifest"])


def test_catalog_export_leaves_hidden_columns_out(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        analyst = client.get("/v1/catalog")
    with server.client("guild") as client:
        guild = client.get("/v1/catalog").json()
    assert analyst.status_code == 200
    assert SECRET not in analyst.text
    shown = {e["product"]: e["manifest"] for e in analyst.json()["products"]}
    assert "total_spend" in shown[PRODUCT]
    read_manifest_text(shown[PRODUCT], "answer")  # still a manifest `meshgov check --catalog` reads
    published = {e["product"]: e["manifest"] for e in guild["products"]}
    assert SECRET in published[PRODUCT]
    # A product with nothing hidden from the analyst is given as published, text and all.
    whole = [key for key, text in shown.items() if key != PRODUCT and text == published[key]]
    assert whole, "every product was rewritten for the analyst"
    for key in whole:
        assert _columns_of(shown[key]) == _columns_of(published[key])


def _columns_of(text: str) -> set[str]:
    return {c.name for p in read_manifest_text(text, "answer").spec.output_ports for c in p.columns}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/graph/impact", {"target": "payments/payments:payments:status"}),
        ("/v1/graph/export", {}),
        ("/v1/graph/export", {"format": "graphml"}),
        ("/v1/graph/export", {"format": "html"}),
    ],
)
def test_graph_answers_leave_hidden_columns_out(
    server: RunningServer, path: str, params: dict[str, str]
) -> None:
    with server.client("analyst-eu") as client:
        answer = client.get(path, params=params)
    assert answer.status_code == 200
    assert SECRET not in answer.text


def test_graph_export_and_impact_stay_whole_for_the_guild(server: RunningServer) -> None:
    with server.client("guild") as client:
        exported = client.get("/v1/graph/export")
        impact = client.get(
            "/v1/graph/impact", params={"target": "payments/payments:payments:status"}
        )
    assert SECRET in exported.text
    assert SECRET in impact.text


def test_impact_of_a_hidden_column_is_answered_as_for_a_missing_one(
    server: RunningServer,
) -> None:
    with server.client("analyst-eu") as client:
        hidden = client.get(
            "/v1/graph/impact", params={"target": f"{PRODUCT}:customer_360:{SECRET}"}
        )
        missing = client.get("/v1/graph/impact", params={"target": f"{PRODUCT}:customer_360:nope"})
    with server.client("guild") as client:
        guild = client.get(
            "/v1/graph/impact", params={"target": f"{PRODUCT}:customer_360:{SECRET}"}
        )
    assert hidden.status_code == missing.status_code == 404
    assert guild.status_code == 200


def test_access_overview_does_not_name_hidden_columns(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        answer = client.get("/v1/access", params={"purpose": "analytics"})
    assert answer.status_code == 200
    assert SECRET not in answer.text
    port = next(p for p in answer.json()["ports"] if p["product"] == PRODUCT)
    assert port["hidden_columns"] == []
    assert any(HIDDEN in r for r in port["reasons"])
    assert "total_spend" in {c["name"] for c in port["columns"]}


def test_own_decisions_do_not_name_hidden_columns(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        denied = client.post(
            "/v1/query/authorize",
            json={"sql": f"SELECT {SECRET} FROM marketing.customer_360", "purpose": "analytics"},
        )
        server.service.flush_decisions(5.0)
        logged = client.get("/v1/decisions", params={"product": PRODUCT, "limit": 1000})
    # The hot path is unchanged: its answer names what was asked.
    assert denied.json()["allowed"] is False
    assert SECRET in denied.text
    assert logged.status_code == 200
    assert logged.json()["decisions"]
    assert SECRET not in logged.text


def test_entities_paths_and_pii_leave_out_columns_of_unreadable_ports(
    server: RunningServer,
) -> None:
    """`nobody` may read no port: no column is a carrier, a join key or a PII source for it."""
    pair = {"left": "customer/customers", "right": "payments/payments"}
    answers = {}
    for who in ("nobody", "guild"):
        with server.client(who) as client:
            answers[who] = (
                client.get("/v1/graph/entities").json(),
                client.get("/v1/graph/paths", params=pair).json(),
                client.get("/v1/graph/pii").json(),
            )
    entities, paths, pii = answers["nobody"]
    assert all(e["carriers"] == [] and e["registered"] for e in entities)
    assert paths == []
    assert pii == []
    entities, paths, pii = answers["guild"]
    assert any(e["carriers"] for e in entities)
    assert paths
