"""The entity graph over HTTP, mirroring `meshgov graph`."""

from __future__ import annotations

from api_server import RunningServer


def test_entities(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        entities = client.get("/v1/graph/entities").json()
    customer = next(e for e in entities if e["name"] == "customer")
    assert "customer/customers" in customer["products"]
    assert "payments/payments" in customer["products"]


def test_paths_lineage_impact_pii_and_export(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        paths = client.get(
            "/v1/graph/paths", params={"left": "customer/customers", "right": "payments/payments"}
        )
        lineage = client.get(
            "/v1/graph/lineage",
            params={"product": "marketing/customer_360", "direction": "upstream"},
        )
        impact = client.get("/v1/graph/impact", params={"target": "customer/customers"})
        pii = client.get("/v1/graph/pii")
        exported = client.get("/v1/graph/export")
        graphml = client.get("/v1/graph/export", params={"format": "graphml"})
        html = client.get("/v1/graph/export", params={"format": "html"})
        bad = client.get("/v1/graph/paths", params={"left": "x", "right": "y"})
        unknown = client.get(
            "/v1/graph/lineage", params={"product": "nope/nope", "direction": "upstream"}
        )
    assert paths.status_code == 200
    assert paths.json()
    assert paths.json()[0]["hops"] >= 1
    assert lineage.status_code == 200
    assert impact.status_code == 200
    assert pii.status_code == 200
    assert exported.status_code == 200
    assert exported.json()["nodes"] if "nodes" in exported.json() else exported.json()
    assert graphml.headers["content-type"].startswith("application/graphml+xml")
    assert html.headers["content-type"].startswith("text/html")
    assert bad.status_code == 400
    assert unknown.status_code in (400, 404)
