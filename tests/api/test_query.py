"""Authorize (secure SQL and decision) and execute (Arrow IPC stream or JSON)."""

from __future__ import annotations

import pyarrow as pa
from api_server import RunningServer


def test_authorize_masks_and_filters_for_the_caller(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        body = client.post(
            "/v1/query/authorize",
            json={
                "sql": "SELECT customer_id, email FROM customer.customers",
                "purpose": "analytics",
            },
        ).json()
    assert body["allowed"] is True
    assert "'EU'" in body["sql"]
    assert "MESHGOV_HASH" in body["sql"].upper()
    table = body["decision"]["tables"][0]
    assert table["product"] == "customer/customers"
    assert table["masks"]["email"]["kind"] == "hash"
    assert body["revision"] == server.service.state.revision
    assert len(body["decision_id"]) == 32


def test_authorize_in_another_dialect(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        body = client.post(
            "/v1/query/authorize",
            json={
                "sql": "SELECT product_id FROM commerce.products LIMIT 1",
                "purpose": "analytics",
                "to": "trino",
            },
        ).json()
    assert body["allowed"] is True
    assert body["decision"]["tables"][0]["product"] == "commerce/products"


def test_a_denial_says_what_and_why(server: RunningServer) -> None:
    with server.client("nobody") as client:
        body = client.post(
            "/v1/query/authorize", json={"sql": "SELECT * FROM customer.customers"}
        ).json()
        ddl = client.post("/v1/query/authorize", json={"sql": "DROP TABLE customer.customers"})
    assert body["allowed"] is False
    assert body["sql"] is None
    assert body["decision"]["reason"]
    assert ddl.status_code == 200
    assert ddl.json()["allowed"] is False


def test_execute_returns_an_arrow_stream(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT product_id, category FROM commerce.products ORDER BY 1 LIMIT 3",
                "purpose": "analytics",
            },
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert len(response.headers["x-meshgov-decision-id"]) == 32
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == ["product_id", "category"]
    assert table.num_rows == 3


def test_execute_as_json_on_request(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        by_field = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT product_id FROM commerce.products LIMIT 2",
                "format": "json",
                "purpose": "analytics",
            },
        )
        by_accept = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT product_id FROM commerce.products LIMIT 2",
                "purpose": "analytics",
            },
            headers={"Accept": "application/json"},
        )
    for response in (by_field, by_accept):
        assert response.status_code == 200
        body = response.json()
        assert body["columns"] == ["product_id"]
        assert len(body["rows"]) == 2


def test_execute_masks_values_and_filters_rows(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT email, region FROM customer.customers",
                "purpose": "analytics",
                "format": "json",
            },
        )
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert rows
    assert {r["region"] for r in rows} == {"EU"}
    assert all("@" not in (r["email"] or "") for r in rows)


def test_execute_denied_is_403_with_the_reason(server: RunningServer) -> None:
    with server.client("nobody") as client:
        response = client.post(
            "/v1/query/execute", json={"sql": "SELECT * FROM customer.customers"}
        )
    assert response.status_code == 403
    assert response.json()["code"] == "access_denied"
    assert response.json()["message"]


def test_execute_json_carries_dates_and_decimals_as_text(server: RunningServer) -> None:
    with server.client("owner-customer") as client:
        response = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT signup_date FROM customer.customers LIMIT 1",
                "purpose": "analytics",
                "format": "json",
            },
        )
    assert response.status_code == 200, response.text
    value = response.json()["rows"][0]["signup_date"]
    assert len(value) == 10
    assert value[4] == "-"
