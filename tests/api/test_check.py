"""``POST /v1/check``: the release gate over HTTP, against the registered previous version."""

from __future__ import annotations

import yaml
from api_server import ROOT, RunningServer

CUSTOMERS = (ROOT / "examples/mesh/customer/customers.yaml").read_text(encoding="utf-8")


def _variant(version: str, drop_column: str | None = None) -> str:
    doc = yaml.safe_load(CUSTOMERS)
    doc["metadata"]["version"] = version
    port = doc["spec"]["outputPorts"][0]
    port.pop("data", None)
    if drop_column:
        port["columns"] = [c for c in port["columns"] if c["name"] != drop_column]
    return yaml.safe_dump(doc, sort_keys=False)


def test_a_compatible_version_passes(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        body = client.post("/v1/check", json={"manifest": _variant("2.2.0")}).json()
    assert body["passed"] is True, body["findings"]
    assert body["revision"] == server.service.state.revision
    assert len(body["decision_id"]) == 32


def test_removing_a_column_needs_a_major_version(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        minor = client.post(
            "/v1/check", json={"manifest": _variant("2.2.0", drop_column="gender")}
        ).json()
        major = client.post(
            "/v1/check", json={"manifest": _variant("3.0.0", drop_column="gender")}
        ).json()
        explicit = client.post(
            "/v1/check",
            json={
                "manifest": _variant("2.2.0", drop_column="gender"),
                "previous": _variant("2.2.0"),
            },
        ).json()
    assert minor["passed"] is False
    assert any(f["location"]["column"] == "gender" for f in minor["findings"])
    assert major["passed"] is True, major["findings"]
    assert explicit["passed"] is False


def test_an_unreadable_manifest_is_a_400_naming_the_problem(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post("/v1/check", json={"manifest": "apiVersion: meshgov/v1\nkind: X\n"})
        missing = client.post("/v1/check", json={})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_manifest"
    assert missing.status_code == 400


def test_findings_carry_the_line_in_the_posted_text(server: RunningServer) -> None:
    text = _variant("2.2.0").replace("classification: confidential", "classification: public", 1)
    with server.client("analyst-eu") as client:
        body = client.post("/v1/check", json={"manifest": text}).json()
    assert body["passed"] is False
    located = [f for f in body["findings"] if f["location"].get("column")]
    assert located
    lines = text.splitlines()
    for finding in located:
        line = finding["location"]["line"]
        assert isinstance(line, int), finding
        assert f"name: {finding['location']['column']}" in lines[line - 1], finding


def test_check_refuses_what_publishing_would_refuse(server: RunningServer) -> None:
    doc = yaml.safe_load(CUSTOMERS)
    doc["metadata"]["version"] = "2.2.0"
    doc["spec"]["outputPorts"][0]["data"] = "/etc/passwd"
    with server.client("analyst-eu") as client:
        response = client.post("/v1/check", json={"manifest": yaml.safe_dump(doc)})
    assert response.status_code == 400
    assert "spec.outputPorts[0].data" in response.json()["message"]
    assert "absolute path" in response.json()["message"]
