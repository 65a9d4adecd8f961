"""Faults deny: a broken store, an engine that fails, no active revision. 5xx only for the
service's own faults, always with the JSON error body, never a row."""

from __future__ import annotations

from pathlib import Path

from api_server import RunningServer, settings_for, start_server

from meshgov.errors import PolicyEvaluationError


def test_a_broken_store_is_503_and_publishes_nothing(own_server: RunningServer) -> None:
    own_server.service.store.close()
    with own_server.client("owner-customer") as client:
        listed = client.get("/v1/products")
        history = client.get("/v1/products/customer/customers/versions")
    assert listed.status_code == 503
    assert listed.json()["code"] == "backend_unavailable"
    assert history.status_code == 503


def test_a_failing_policy_engine_denies(own_server: RunningServer) -> None:
    state = own_server.service.state

    def broken(query: str, document: object) -> object:
        raise PolicyEvaluationError(f"evaluating {query}: engine crashed")

    state.gateway.policy.evaluate = broken  # type: ignore[method-assign]
    with own_server.client("analyst-eu") as client:
        authorized = client.post(
            "/v1/query/authorize",
            json={"sql": "SELECT region FROM customer.customers", "purpose": "analytics"},
        ).json()
        executed = client.post(
            "/v1/query/execute",
            json={"sql": "SELECT region FROM customer.customers", "purpose": "analytics"},
        )
        trino = client.post(
            "/v1/data/meshgov/trino/row_filters",
            json={
                "input": {
                    "context": {"identity": {"user": "analyst-eu"}},
                    "action": {
                        "operation": "GetRowFilters",
                        "resource": {
                            "table": {
                                "catalogName": "lake",
                                "schemaName": "customer",
                                "tableName": "customers",
                            }
                        },
                    },
                }
            },
        )
    assert authorized["allowed"] is False
    assert "policy evaluation failed" in authorized["decision"]["reason"]
    assert executed.status_code == 403
    # A principal may ask the Trino endpoints about itself; the failed decision hides every row.
    assert trino.status_code == 200
    assert trino.json() == {"result": [{"expression": "FALSE"}]}


def test_no_active_revision_denies_everything(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    (broken / "meshgov").mkdir(parents=True)
    (broken / "meshgov" / "bad.rego").write_text("package meshgov.bad\n\nnot rego {", "utf-8")
    handle = start_server(settings_for(tmp_path, policies_dir=broken))
    try:
        with handle.running.client("analyst-eu") as client:
            health = client.get("/health")
            authorized = client.post(
                "/v1/query/authorize", json={"sql": "SELECT 1 FROM commerce.products"}
            )
            revisions = client.get("/v1/policies").json()
    finally:
        handle.stop()
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert authorized.status_code == 500
    assert authorized.json()["code"] == "policy_error"
    assert revisions["active"] is None
    assert revisions["revisions"][0]["status"] == "failed"
