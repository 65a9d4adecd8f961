"""Impossible YAML values in request bodies are 400 naming the line, never a 500."""

from __future__ import annotations

import pytest
from api_server import ROOT, RunningServer

CUSTOMERS = (ROOT / "examples/mesh/customer/customers.yaml").read_text(encoding="utf-8")


def _customers_with(end_of_support: str) -> str:
    return CUSTOMERS.replace(
        "      retention: 3y\n", f"      retention: 3y\n      endOfSupport: {end_of_support}\n", 1
    ).replace("version: 2.1.0", "version: 2.2.0")


@pytest.mark.parametrize("value", ["2099-02-30", "2020-01-01T25:00:00", ".nan"])
def test_publish_and_check_name_the_line(server: RunningServer, value: str) -> None:
    manifest = _customers_with(value)
    line = manifest.splitlines().index(f"      endOfSupport: {value}") + 1
    with server.client("owner-customer") as client:
        as_yaml = client.put(
            "/v1/products/customer/customers",
            content=manifest,
            headers={"Content-Type": "application/yaml"},
        )
        as_json = client.put("/v1/products/customer/customers", json={"manifest": manifest})
        checked = client.post("/v1/check", json={"manifest": manifest})
    for response in (as_yaml, as_json, checked):
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "invalid_manifest"
        assert body["errors"][0]["location"]["line"] == line
        assert f":{line}:" in body["message"]


@pytest.mark.parametrize("body", ["x: 2020-02-30\n", "x: 2020-01-01T25:00:00\n", "x: .inf\n"])
def test_staging_a_data_file_names_the_line(server: RunningServer, body: str) -> None:
    with server.client("guild") as client:
        response = client.put(
            "/v1/policies/data/purposes.yaml", content=body, headers={"Content-Type": "text/plain"}
        )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_input"
    assert response.json()["message"].startswith("data/purposes.yaml:1:4: ")


def test_a_valid_date_in_a_data_file_is_staged_as_text(own_server: RunningServer) -> None:
    """A date used to reach the policy engine as a Python date: TypeError, HTTP 500."""
    with own_server.client("guild") as client:
        response = client.put(
            "/v1/policies/data/calendar.yaml",
            content="freeze: 2099-12-24\n",
            headers={"Content-Type": "text/plain"},
        )
        assert response.status_code in (200, 201), response.text
        revision = client.get(f"/v1/policies/revisions/{response.json()['id']}").json()
    assert response.json()["status"] == "valid"
    assert revision["data"]["registry"]["calendar"] == {"freeze": "2099-12-24"}
