"""The decision log: every decision recorded once, off the request path, filterable."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from api_server import RunningServer


def test_logged_decisions_equal_requests_under_concurrent_load(own_server: RunningServer) -> None:
    store = own_server.service.store
    own_server.service.flush_decisions()
    before = store.count_decisions()
    requests = 400

    def ask(index: int) -> int:
        who = "analyst-eu" if index % 2 else "nobody"
        with own_server.client(who) as client:
            return client.post(
                "/v1/query/authorize",
                json={"sql": f"SELECT product_id FROM commerce.products LIMIT {index + 1}"},
            ).status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(ask, range(requests)))
    assert statuses == [200] * requests
    assert own_server.service.flush_decisions(timeout=30)
    assert store.count_decisions() - before == requests


def test_filters_by_principal_product_allowed_and_time(server: RunningServer) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with server.client("analyst-us") as client:
        client.post(
            "/v1/query/authorize",
            json={"sql": "SELECT product_id FROM commerce.products", "purpose": "analytics"},
        )
        client.post("/v1/query/authorize", json={"sql": "DROP TABLE commerce.products"})
        own = client.get("/v1/decisions", params={"since": start.isoformat()}).json()["decisions"]
        others = client.get("/v1/decisions", params={"principal": "analyst-eu"})
    assert {d["principal"] for d in own} == {"analyst-us"}
    assert len(own) >= 2
    assert others.status_code == 403
    with server.client("guild") as client:
        allowed = client.get(
            "/v1/decisions",
            params={
                "principal": "analyst-us",
                "product": "commerce/products",
                "allowed": "true",
                "since": start.isoformat(),
            },
        ).json()["decisions"]
        denied = client.get(
            "/v1/decisions",
            params={"principal": "analyst-us", "allowed": "false", "since": start.isoformat()},
        ).json()["decisions"]
        future = client.get(
            "/v1/decisions", params={"since": (start + dt.timedelta(hours=1)).isoformat()}
        ).json()["decisions"]
        bad = client.get("/v1/decisions", params={"allowed": "perhaps"})
    assert allowed
    assert all(d["allowed"] and d["product"] == "commerce/products" for d in allowed)
    assert allowed[0]["revision"] == server.service.state.revision
    assert len(allowed[0]["input_digest"]) == 64
    assert denied
    assert all(not d["allowed"] for d in denied)
    assert future == []
    assert bad.status_code == 400


def test_a_decision_id_returned_to_the_caller_is_in_the_log(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        decision_id = client.post(
            "/v1/query/authorize", json={"sql": "SELECT 1 FROM commerce.products"}
        ).json()["decision_id"]
        logged = client.get("/v1/decisions", params={"kind": "authorize", "limit": 1000}).json()
    assert decision_id in {d["id"] for d in logged["decisions"]}
    (record,) = [d for d in logged["decisions"] if d["id"] == decision_id]
    # Which engine made the decision is part of its record.
    assert record["result"]["policy_engine"] == server.service.engine_label
