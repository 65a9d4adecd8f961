"""Invalid input on the query routes is 400 (as the CLI exits 2); a denial stays a denial.

Unparseable SQL is ``invalid_sql`` and an unknown dialect names the field and the allowed
dialects, on ``/v1/query/execute``, on ``/v1/query/authorize`` and on its fast path alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from api_server import RunningServer

from meshgov.core.sql.parse import DIALECTS

HIDDEN = "SELECT segment, failed_payment_count FROM marketing.customer_360"


def _chunked(document: dict[str, Any]) -> Iterator[bytes]:
    # No Content-Length: the fast path declines and the FastAPI route answers.
    yield json.dumps(document).encode()


def _without_id(body: bytes) -> bytes:
    return re.sub(rb'"decision_id":"[0-9a-f]{32}"', b'"decision_id":""', body)


@pytest.mark.parametrize("route", ["/v1/query/execute", "/v1/query/authorize"])
@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT (", "SELECT FROM WHERE ("])
def test_unparseable_sql_is_400_invalid_sql(server: RunningServer, route: str, sql: str) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(route, json={"sql": sql, "purpose": "analytics"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_sql"
    assert body["message"].startswith("cannot parse the query as duckdb")
    assert body["errors"][0]["code"] == "invalid_sql"


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ("/v1/query/execute", "dialect"),
        ("/v1/query/authorize", "dialect"),
        ("/v1/query/authorize", "to"),  # execute writes the engine's dialect: it has no `to`
    ],
)
def test_an_unknown_dialect_is_400_naming_the_field_and_the_dialects(
    server: RunningServer, route: str, field: str
) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(route, json={"sql": "SELECT 1", field: "klingon"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["message"].startswith(f"body.{field}: unknown SQL dialect 'klingon'")
    assert all(name in body["message"] for name in DIALECTS)
    assert body["errors"][0]["code"] == "invalid_dialect"
    assert body["errors"][0]["location"] == f"body.{field}"


def test_dialect_names_are_case_insensitive_and_postgresql_is_postgres(
    server: RunningServer,
) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/authorize",
            json={"sql": "SELECT 1", "dialect": "DuckDB", "to": "postgresql"},
        )
    assert response.status_code == 200
    assert response.json()["allowed"] is True


def test_denials_stay_denials(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        authorize = client.post("/v1/query/authorize", json={"sql": HIDDEN, "purpose": "x"})
        execute = client.post("/v1/query/execute", json={"sql": HIDDEN, "purpose": "analytics"})
        copy = client.post("/v1/query/execute", json={"sql": "COPY t TO 'x.csv'"})
    assert authorize.status_code == 200
    assert authorize.json()["allowed"] is False
    assert execute.status_code == 403
    assert execute.json()["code"] == "access_denied"
    assert "failed_payment_count" in execute.json()["message"]
    # Parseable but not a query: a denial (unsupported_sql), not invalid input.
    assert copy.status_code == 403
    assert copy.json()["code"] == "unsupported_sql"


@pytest.mark.parametrize(
    "document",
    [
        {"sql": "SELEC 1", "purpose": "analytics"},
        {"sql": "SELECT 1", "dialect": "klingon"},
        {"sql": "SELECT 1", "to": "klingon"},
        {"sql": HIDDEN, "purpose": "analytics"},
    ],
    ids=["invalid sql", "unknown dialect", "unknown to", "denial"],
)
def test_fast_path_and_route_answer_invalid_input_alike(
    server: RunningServer, document: dict[str, Any]
) -> None:
    with server.client("analyst-eu") as client:
        fast = client.post("/v1/query/authorize", json=document)
        full = client.post(
            "/v1/query/authorize",
            content=_chunked(document),
            headers={"Content-Type": "application/json"},
        )
    assert fast.status_code == full.status_code
    assert fast.headers["content-type"] == full.headers["content-type"]
    assert _without_id(fast.content) == _without_id(full.content)
