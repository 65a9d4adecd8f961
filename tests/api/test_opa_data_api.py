"""OPA's REST API as OPA's clients call it: every read method of opa-python-client 3.0 against a
real meshgov server, and the details of OPA's Data API (open-policy-agent/opa, v1/server)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from api_server import TOKENS, RunningServer
from opa_client.errors import PolicyNotFoundError
from opa_client.opa import OpaClient

PRINCIPAL = {
    "id": "analyst-eu",
    "groups": ["analysts"],
    "domain": "analytics",
    "attributes": {"region": "EU", "clearances": []},
}
ACCESS_INPUT = {
    "principal": PRINCIPAL,
    "purpose": "analytics",
    "product": "customer/customers",
    "port": "customers",
}


@pytest.fixture
def opa(server: RunningServer) -> Iterator[OpaClient]:
    url = urlparse(server.url)
    # The root document is computed once per revision; the first read may take seconds.
    client = OpaClient(
        host=url.hostname or "", port=url.port or 0, token=TOKENS["analyst-eu"], timeout=60
    )
    yield client
    client.close_connection()


def test_connection_health_and_readiness(opa: OpaClient) -> None:
    assert opa.check_connection() is True
    assert opa.check_health() is True
    assert opa.wait_for_ready(timeout=5) is True


def test_policies_list_info_and_one_policy(opa: OpaClient, tmp_path: Path) -> None:
    ids = opa.get_policies_list()
    assert "meshgov/access/access.rego" in ids
    info = opa.get_policies_info()["meshgov/access/access.rego"]
    assert info["path"].endswith("/v1/data/meshgov/access")
    assert any(rule.endswith("/v1/data/meshgov/access/decision") for rule in info["rules"])
    policy = opa.get_policy("meshgov/access/access.rego")["result"]
    assert policy["id"] == "meshgov/access/access.rego"
    assert policy["raw"].startswith("# METADATA") or "package meshgov.access" in policy["raw"]
    assert [t["value"] for t in policy["ast"]["package"]["path"]] == ["data", "meshgov", "access"]
    assert opa.policy_to_file("meshgov/access/access.rego", str(tmp_path), "access.rego")
    assert "package meshgov.access" in (tmp_path / "access.rego").read_text(encoding="utf-8")
    with pytest.raises(PolicyNotFoundError) as missing:
        opa.get_policy("meshgov/no/such.rego")
    assert missing.value.args[0] == "resource_not_found"


def test_query_rule_returns_the_access_decision(opa: OpaClient) -> None:
    answer = opa.query_rule(ACCESS_INPUT, "meshgov/access", "decision")
    result = answer["result"]
    assert result["allow"] is True
    assert result["row_filters"] == ["region = {principal.region}"]
    assert result["masks"]["email"]["kind"] == "hash"
    assert len(answer["decision_id"]) == 32
    dotted = opa.query_rule(ACCESS_INPUT, "meshgov.access", "decision", {"metrics": True})
    assert dotted["result"] == result
    assert dotted["metrics"]["timer_server_handler_ns"] > 0


def test_undefined_has_a_decision_id_and_no_result(opa: OpaClient) -> None:
    answer = opa.query_rule({}, "meshgov/nothing", "here")
    assert set(answer) == {"decision_id"}
    # A rule that reads input, evaluated without input: undefined, not an error.
    no_input = opa.query_rule(None, "meshgov/access", "decision")  # type: ignore[arg-type]
    assert set(no_input) == {"decision_id"}
    with pytest.raises(PolicyNotFoundError):
        opa.get_data("meshgov/nothing/here")


def test_get_data_reads_root_package_and_documents(opa: OpaClient) -> None:
    root = opa.get_data("")
    assert {"meshgov", "registry", "catalog"} <= set(root["result"])
    package = opa.get_data("meshgov")
    assert "access" in package["result"]
    purposes = opa.get_data("registry/purposes", {"provenance": True})
    assert purposes["result"]
    assert purposes["provenance"]["bundles"]["meshgov"]["revision"]


def test_pretty_prints(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        pretty = client.get("/v1/data/registry/purposes", params={"pretty": ""})
        compact = client.get("/v1/data/registry/purposes")
    assert "\n  " in pretty.text
    assert "\n" not in compact.text
    assert pretty.json()["result"] == compact.json()["result"]


def test_gzip_bodies_and_extra_keys(server: RunningServer) -> None:
    body = json.dumps({"input": ACCESS_INPUT, "unknown": True, "strict": 1}).encode()
    with server.client("analyst-eu") as client:
        zipped = client.post(
            "/v1/data/meshgov/access/decision",
            content=gzip.compress(body),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        bad_gzip = client.post(
            "/v1/data/meshgov/access/decision",
            content=b"not gzip",
            headers={"Content-Encoding": "gzip"},
        )
        bomb = client.post(
            "/v1/data/meshgov/access/decision",
            content=gzip.compress(b" " * (server.settings.max_body_bytes + 10)),
            headers={"Content-Encoding": "gzip"},
        )
    assert zipped.status_code == 200, zipped.text
    assert zipped.json()["result"]["allow"] is True
    assert bad_gzip.status_code == 400
    assert bad_gzip.json()["code"] == "invalid_parameter"
    assert bomb.status_code == 413


def test_errors_have_opas_shape(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        bad = client.get("/v1/data/meshgov/access/decision", params={"input": "{"})
        not_object = client.post("/v1/data/meshgov/access/decision", content=b"[1]")
        bad_path = client.post("/v1/data/meshgov/1bad", json={"input": {}})
    with server.client() as anonymous:
        unauthenticated = anonymous.get("/v1/data/registry")
    for response in (bad, not_object, bad_path):
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_parameter"
        assert response.json()["message"]
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == "unauthorized"


def test_get_with_an_input_parameter(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        document = {**ACCESS_INPUT, "principal": {"id": "x", "groups": []}}
        answer = client.get(
            "/v1/data/meshgov/access/decision", params={"input": json.dumps(document)}
        ).json()
    assert answer["result"]["allow"] is False


def test_data_api_calls_are_logged(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        decision_id = client.post(
            "/v1/data/meshgov/access/decision",
            json={"input": {"product": "nope/nope", "port": "x"}},
        ).json()["decision_id"]
        server.service.flush_decisions()
        logged = client.get("/v1/decisions", params={"kind": "opa", "limit": 1000}).json()
    assert decision_id in {d["id"] for d in logged["decisions"]}


def test_meshgov_revisions_stay_beside_opas_result(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        listed = client.get("/v1/policies").json()
        slashed = client.get("/v1/policies/").json()
    assert listed == slashed
    assert listed["active"] == server.service.state.revision
    assert any(r["id"] == listed["active"] for r in listed["revisions"])
    assert {m["id"] for m in listed["result"]} >= {"meshgov/access/access.rego"}


def test_the_async_client_reads_too(server: RunningServer) -> None:
    import asyncio

    from opa_client.opa_async import AsyncOpaClient

    url = urlparse(server.url)

    async def read() -> tuple[Any, ...]:
        async with AsyncOpaClient(
            host=url.hostname or "", port=url.port or 0, token=TOKENS["analyst-eu"], timeout=60
        ) as client:
            return (
                await client.check_connection(),
                await client.get_policies_list(),
                await client.get_policy("meshgov/access/access.rego"),
                await client.get_data("registry/purposes"),
                await client.query_rule(ACCESS_INPUT, "meshgov/access", "decision"),
            )

    connected, ids, policy, purposes, decision = asyncio.run(read())
    assert connected
    assert "meshgov/access/access.rego" in ids
    assert policy["result"]["id"] == "meshgov/access/access.rego"
    assert purposes["result"]
    assert decision["result"]["allow"] is True
