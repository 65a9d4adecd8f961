"""/health, /metrics, and the error contract for bad input."""

from __future__ import annotations

import json

from api_server import RunningServer


def test_health_reports_the_active_revision(server: RunningServer) -> None:
    with server.client() as client:
        body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["revision"] == server.service.state.revision
    assert body["products"] == 7
    assert body["store"] == "sqlite"
    # The engine that decides, with its version (auto: regorus, installed by the dev extra).
    assert body["policy_engine"] == server.service.engine_label
    assert body["policy_engine"] in {"regorus 0.13.0", f"embedded regopy {_regopy_version()}"}


def _regopy_version() -> str:
    import regopy

    return str(regopy.__version__)


def test_metrics_are_prometheus_text(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        client.post("/v1/query/authorize", json={"sql": "SELECT 1 FROM commerce.products"})
        client.post("/v1/query/authorize", json={"sql": "SELECT 1 FROM commerce.products"})
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "meshgov_http_requests_total{",
        "meshgov_decisions_total{",
        "meshgov_denials_total ",
        'meshgov_http_request_duration_seconds_bucket{route="/v1/query/authorize",le="0.025"}',
        "meshgov_decision_cache_hits_total ",
        f'meshgov_active_policy_revision{{revision="{server.service.state.revision}"}} 1',
    ):
        assert name in text, name
    hits = next(
        line for line in text.splitlines() if line.startswith("meshgov_rewrite_cache_hits_total ")
    )
    assert int(hits.split()[-1]) >= 1  # the second identical request came from the cache


def test_openapi_document_is_served(server: RunningServer) -> None:
    with server.client() as client:
        document = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    for path in ("/v1/query/authorize", "/v1/products/{domain}/{name}", "/v1/data/{path}"):
        assert path in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]


def test_malformed_json_is_a_clear_400(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/authorize",
            content=b'{"sql": "SELECT 1",',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert "malformed JSON" in body["message"]


def test_wrong_types_are_a_400_naming_the_field(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post("/v1/query/authorize", json={"sql": 42, "purpose": ["x"]})
    assert response.status_code == 400
    assert "sql" in response.json()["message"]


def test_oversized_bodies_are_refused_with_413(server: RunningServer) -> None:
    big = json.dumps({"sql": "SELECT 1 -- " + "x" * (server.settings.max_body_bytes + 10)})
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/authorize", content=big, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["code"] == "request_too_large"

        def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(3):
                yield b"x" * server.settings.max_body_bytes

        streamed = client.post(
            "/v1/query/authorize", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert streamed.status_code == 413


def test_unknown_routes_answer_json_404(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "resource_not_found"
