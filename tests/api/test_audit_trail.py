"""The audit trail: every denial keeps its subject, and `allowed` is the access outcome
(issue 12, point 4)."""

from __future__ import annotations

import uuid

from api_server import RunningServer


def _guild_decisions(server: RunningServer, **params: str) -> list[dict]:  # type: ignore[type-arg]
    server.service.flush_decisions()
    with server.client("guild") as client:
        response = client.get("/v1/decisions", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    return list(response.json()["decisions"])


def test_a_denied_query_is_found_by_its_product(server: RunningServer) -> None:
    marker = uuid.uuid4().hex[:8]
    sql = f"SELECT customer_id FROM customer.customers WHERE region <> '{marker}'"
    with server.client("nobody") as client:
        denied = client.post("/v1/query/authorize", json={"sql": sql, "purpose": "analytics"})
        executed = client.post("/v1/query/execute", json={"sql": sql, "purpose": "analytics"})
    assert denied.json()["allowed"] is False, denied.text
    assert executed.status_code == 403
    found = _guild_decisions(
        server, principal="nobody", product="customer/customers", allowed="false"
    )
    kinds = {d["kind"] for d in found}
    assert {"authorize", "execute"} <= kinds
    for record in found:
        assert record["product"] == "customer/customers"
        assert record["result"]["tables"] == ["customer/customers:customers"]
        assert record["result"]["products"] == ["customer/customers"]


def test_a_data_api_denial_is_logged_as_a_denial(server: RunningServer) -> None:
    document = {
        "input": {
            "principal": {"id": "nobody", "groups": [], "domain": "guest"},
            "purpose": "analytics",
            "product": "customer/customers",
            "port": "customers",
        }
    }
    with server.client("trino") as client:
        answer = client.post("/v1/data/meshgov/access/decision", json=document).json()
    assert answer["result"]["allow"] is False
    found = [
        d
        for d in _guild_decisions(server, kind="opa", product="customer/customers")
        if d["id"] == answer["decision_id"]
    ]
    assert len(found) == 1
    assert found[0]["allowed"] is False
    assert found[0]["result"]["tables"] == ["customer/customers:customers"]


def test_unknown_filter_values_name_the_allowed_ones(server: RunningServer) -> None:
    with server.client("guild") as client:
        kind = client.get("/v1/decisions", params={"kind": "bogus"})
        allowed = client.get("/v1/decisions", params={"allowed": "maybe"})
    assert kind.status_code == 400
    for name in ("check", "publish", "authorize", "execute", "wire", "opa", "trino"):
        assert name in kind.json()["message"]
    assert allowed.status_code == 400
    assert "true or false" in allowed.json()["message"]
