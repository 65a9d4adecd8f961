"""OPA's Data API, exercised with opa-python-client against a real meshgov server."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest
from api_server import TOKENS, RunningServer
from opa_client.opa import OpaClient


@pytest.fixture
def opa(server: RunningServer) -> OpaClient:
    url = urlparse(server.url)
    client = OpaClient(host=url.hostname or "", port=url.port or 0, token=TOKENS["analyst-eu"])
    yield client
    client.close_connection()


def test_query_rule_returns_the_access_decision(opa: OpaClient) -> None:
    principal = {
        "id": "analyst-eu",
        "groups": ["analysts"],
        "domain": "analytics",
        "attributes": {"region": "EU", "clearances": []},
    }
    answer = opa.query_rule(
        {
            "principal": principal,
            "purpose": "analytics",
            "product": "customer/customers",
            "port": "customers",
        },
        "meshgov/access",
        "decision",
    )
    result = answer["result"]
    assert result["allow"] is True
    assert result["row_filters"] == ["region = {principal.region}"]
    assert result["masks"]["email"]["kind"] == "hash"
    assert len(answer["decision_id"]) == 32


def test_undefined_is_an_empty_object(opa: OpaClient) -> None:
    assert opa.query_rule({}, "meshgov/nothing", "here") == {}


def test_get_data_reads_documents(opa: OpaClient) -> None:
    registry = opa.get_data("registry/purposes")
    assert "result" in registry


def test_get_with_an_input_parameter(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        document = {
            "principal": {"id": "x", "groups": []},
            "purpose": "analytics",
            "product": "customer/customers",
            "port": "customers",
        }
        answer = client.get(
            "/v1/data/meshgov/access/decision", params={"input": json.dumps(document)}
        ).json()
        bad = client.get("/v1/data/meshgov/access/decision", params={"input": "{"})
        not_object = client.post("/v1/data/meshgov/access/decision", content=b"[1]")
        bad_path = client.post("/v1/data/meshgov/1bad", json={"input": {}})
    assert answer["result"]["allow"] is False
    assert bad.status_code == 400
    assert not_object.status_code == 400
    assert bad_path.status_code == 400


def test_data_api_calls_are_logged(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        decision_id = client.post(
            "/v1/data/meshgov/access/decision",
            json={"input": {"product": "nope/nope", "port": "x"}},
        ).json()["decision_id"]
        logged = client.get("/v1/decisions", params={"kind": "opa", "limit": 1000}).json()
    assert decision_id in {d["id"] for d in logged["decisions"]}
