"""The entity graph over HTTP, mirroring `meshgov graph`."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections import Counter

import networkx as nx
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


def test_graphml_export_has_unique_edge_ids(server: RunningServer) -> None:
    """The edge kind used to be written as the edge id (id="exposes" dozens of times)."""
    with server.client("analyst-eu") as client:
        graphml = client.get("/v1/graph/export", params={"format": "graphml"})
        source = client.get("/v1/graph/export").json()
    assert graphml.status_code == 200
    root = ET.fromstring(graphml.text)
    ids = [e.get("id") for e in root.iterfind(".//{http://graphml.graphdrawing.org/xmlns}edge")]
    assert len(ids) == len(source["edges"]) and len(set(ids)) == len(ids)
    read = nx.read_graphml(io.BytesIO(graphml.content), force_multigraph=True)
    assert read.number_of_nodes() == len(source["nodes"])
    assert read.number_of_edges() == len(source["edges"])
    assert Counter(k for _, _, k in read.edges(data="kind")) == Counter(
        e["kind"] for e in source["edges"]
    )
