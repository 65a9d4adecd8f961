"""The registry: list, get, versions; publish gated by the release check; survives a restart."""

from __future__ import annotations

from pathlib import Path

import yaml
from api_server import ROOT, RunningServer, settings_for, start_server

CUSTOMERS = ROOT / "examples/mesh/customer/customers.yaml"


def _customers(version: str, **column_changes: object) -> str:
    doc = yaml.safe_load(CUSTOMERS.read_text(encoding="utf-8"))
    doc["metadata"]["version"] = version
    port = doc["spec"]["outputPorts"][0]
    port.pop("data", None)
    if column_changes.get("add"):
        port["columns"].append(column_changes["add"])
    for column in port["columns"]:
        if column["name"] in column_changes.get("unmask", ()):  # type: ignore[operator]
            column.pop("mask", None)
    return yaml.safe_dump(doc, sort_keys=False)


def test_list_get_and_versions(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        listed = client.get("/v1/products").json()["products"]
        product = client.get("/v1/products/customer/customers").json()
        versions = client.get("/v1/products/customer/customers/versions").json()
        one = client.get("/v1/products/customer/customers/versions/2.1.0")
        missing = client.get("/v1/products/customer/nope")
        bad_name = client.get("/v1/products/Customer/x")
    assert [p["id"] for p in listed] == sorted(p["id"] for p in listed)
    assert "customer/customers" in {p["id"] for p in listed}
    assert product["version"] == "2.1.0"
    assert product["manifest"]["metadata"]["owner"] == "customer-data@acme.example"
    assert [v["version"] for v in versions["versions"]] == ["2.1.0"]
    assert one.status_code == 200
    assert missing.status_code == 404
    assert missing.json()["code"] == "resource_not_found"
    assert bad_name.status_code == 400


def test_owner_publishes_a_compatible_version(own_server: RunningServer) -> None:
    manifest = _customers(
        "2.2.0", add={"name": "loyalty_tier", "type": "string", "classification": "internal"}
    )
    with own_server.client("owner-customer") as client:
        response = client.put(
            "/v1/products/customer/customers",
            content=manifest,
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["published"] is True
        assert body["version"] == "2.2.0"
        versions = client.get("/v1/products/customer/customers/versions").json()["versions"]
        again = client.put("/v1/products/customer/customers", json={"manifest": manifest})
    assert [v["version"] for v in versions] == ["2.1.0", "2.2.0"]
    assert versions[-1]["publisher"] == "owner-customer"
    assert again.status_code == 409
    # The gateway now knows the new column.
    with own_server.client("owner-customer") as client:
        authorized = client.post(
            "/v1/query/authorize",
            json={"sql": "SELECT loyalty_tier FROM customer.customers", "purpose": "analytics"},
        ).json()
    assert authorized["allowed"] is True, authorized


def test_a_version_that_fails_the_gate_is_refused_with_findings(own_server: RunningServer) -> None:
    manifest = _customers("2.2.0", unmask=("email",))
    with own_server.client("owner-customer") as client:
        response = client.put(
            "/v1/products/customer/customers",
            content=manifest,
            headers={"Content-Type": "application/yaml"},
        )
        versions = client.get("/v1/products/customer/customers/versions").json()["versions"]
    assert response.status_code == 422
    body = response.json()
    assert body["published"] is False
    errors = [f for f in body["findings"] if f["severity"] == "error"]
    assert errors
    assert any(f["location"]["column"] == "email" for f in errors)
    assert [v["version"] for v in versions] == ["2.1.0"]


def test_the_url_must_name_the_manifests_product(own_server: RunningServer) -> None:
    with own_server.client("owner-customer") as client:
        response = client.put(
            "/v1/products/customer/segments",
            content=_customers("2.2.0"),
            headers={"Content-Type": "application/yaml"},
        )
        broken = client.put(
            "/v1/products/customer/customers",
            content="apiVersion: meshgov/v1\nkind: DataProduct\nmetadata: [",
            headers={"Content-Type": "application/yaml"},
        )
        wrong_type = client.put(
            "/v1/products/customer/customers",
            content=b"\x00\x01",
            headers={"Content-Type": "application/octet-stream"},
        )
    assert response.status_code == 400
    assert "customer/customers" in response.json()["message"]
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_manifest"
    assert wrong_type.status_code == 400


def test_published_versions_survive_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    first = start_server(settings)
    try:
        with first.running.client("owner-customer") as client:
            response = client.put(
                "/v1/products/customer/customers",
                content=_customers("2.3.0"),
                headers={"Content-Type": "application/yaml"},
            )
            assert response.status_code == 201, response.text
    finally:
        first.stop()
    second = start_server(settings_for(tmp_path, port=settings.port + 0))
    try:
        with second.running.client("analyst-eu") as client:
            product = client.get("/v1/products/customer/customers").json()
    finally:
        second.stop()
    assert product["version"] == "2.3.0"
    assert product["publisher"] == "owner-customer"
