"""A construct that would not mean the same on the engine is refused through HTTP: 403, named."""

from __future__ import annotations

from api_server import RunningServer


def test_execute_refuses_a_construct_the_engine_reads_differently(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT SUBSTR(currency, 0, 2) AS c FROM commerce.orders",
                "purpose": "analytics",
                "dialect": "snowflake",
                "format": "json",
            },
        )
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "unsupported_sql"
    assert "SUBSTR" in body["message"] and "snowflake" in body["message"]


def test_execute_answers_integer_division_as_trino_means_it(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/execute",
            json={"sql": "SELECT 7 / 2 AS q, -7 / 2 AS r", "purpose": "analytics",
                  "dialect": "trino", "format": "json"},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [{"q": 3, "r": -3}]
