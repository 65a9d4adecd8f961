"""The ``POST /v1/query/authorize`` fast path answers exactly as the FastAPI route does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from api_server import RunningServer

from meshgov.api.security import TokenRegistry, Unauthenticated
from meshgov.metrics import Metrics
from meshgov.store.base import DecisionFilter

QUERY = {"sql": "SELECT customer_id, email FROM customer.customers", "purpose": "analytics"}


def _without_id(body: bytes) -> bytes:
    return re.sub(rb'"decision_id":"[0-9a-f]{32}"', b'"decision_id":""', body)


def _chunked(document: dict[str, str]) -> Iterator[bytes]:
    # No Content-Length: the fast path declines and the FastAPI route answers.
    yield json.dumps(document).encode()


def test_fast_path_and_route_give_the_same_bytes_and_both_log(own_server: RunningServer) -> None:
    service = own_server.service
    service.flush_decisions()
    before = service.store.count_decisions()
    with own_server.client("analyst-eu") as client:
        fast = [client.post("/v1/query/authorize", json=QUERY) for _ in range(3)]
        full = client.post(
            "/v1/query/authorize",
            content=_chunked(QUERY),
            headers={"Content-Type": "application/json"},
        )
    assert {r.status_code for r in [*fast, full]} == {200}
    assert "transfer-encoding" not in fast[0].headers  # framed by Content-Length
    assert fast[0].headers["content-type"] == full.headers["content-type"] == "application/json"
    bodies = {_without_id(r.content) for r in [*fast, full]}
    assert len(bodies) == 1
    documents = [r.json() for r in [*fast, full]]
    assert len({d["decision_id"] for d in documents}) == 4
    assert documents[0]["revision"] == service.state.revision
    assert documents[0]["allowed"] is True
    assert service.flush_decisions(timeout=30)
    assert service.store.count_decisions() - before == 4
    logged = {d.id for d in service.store.decisions(DecisionFilter(principal="analyst-eu"))}
    assert {d["decision_id"] for d in documents} <= logged


def test_fast_path_requests_are_counted_under_the_route(own_server: RunningServer) -> None:
    with own_server.client("analyst-us") as client:
        for _ in range(5):
            assert client.post("/v1/query/authorize", json=QUERY).status_code == 200
        text = client.get("/metrics").text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith(
            'meshgov_http_requests_total{route="/v1/query/authorize",method="POST",status="200"}'
        )
    )
    assert int(line.split()[-1]) == 5
    assert 'meshgov_decisions_total{kind="authorize",allowed="true"} 5' in text
    assert 'meshgov_http_request_duration_seconds_count{route="/v1/query/authorize"} 5' in text


def test_errors_on_the_hot_route_keep_their_shape(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        cases = {
            "malformed": client.post(
                "/v1/query/authorize",
                content=b'{"sql": ',
                headers={"Content-Type": "application/json"},
            ),
            "unknown key": client.post("/v1/query/authorize", json={"sql": "SELECT 1", "x": 1}),
            "wrong type": client.post("/v1/query/authorize", json={"sql": 1}),
            "not an object": client.post("/v1/query/authorize", json=[1]),
            "foreign principal": client.post(
                "/v1/query/authorize", json={"sql": "SELECT 1", "principal": "guild"}
            ),
            "text": client.post(
                "/v1/query/authorize",
                content=b'{"sql": "SELECT 1"}',
                headers={"Content-Type": "text/plain"},
            ),
        }
    with server.client() as anonymous:
        cases["no token"] = anonymous.post("/v1/query/authorize", json={"sql": "SELECT 1"})
    expected = {
        "malformed": 400,
        "unknown key": 400,
        "wrong type": 400,
        "not an object": 400,
        "foreign principal": 403,
        "text": 400,
        "no token": 401,
    }
    assert {name: r.status_code for name, r in cases.items()} == expected
    for response in cases.values():
        body = response.json()
        assert set(body) == {"code", "message", "errors"}
        assert body["message"]


def test_known_tokens_are_remembered_and_unknown_ones_are_not(server: RunningServer) -> None:
    assert server.settings.tokens_file is not None
    registry = TokenRegistry.from_file(server.settings.tokens_file)
    first = registry.authenticate("Bearer dev-analyst-eu")
    assert registry.authenticate("Bearer dev-analyst-eu") is first
    for _ in range(2):
        try:
            registry.authenticate("Bearer not-a-token")
        except Unauthenticated:
            pass
        else:  # pragma: no cover
            raise AssertionError("an unknown token authenticated")
    assert list(registry._known) == ["Bearer dev-analyst-eu"]


def test_latency_histogram_is_cumulative() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.003, 0.003, 0.2, 30.0):
        metrics.observe_request("/r", "GET", 200, seconds)
    text = metrics.render()
    counts = {
        match.group(1): int(match.group(2))
        for match in re.finditer(
            r'meshgov_http_request_duration_seconds_bucket\{route="/r",le="([^"]+)"\} (\d+)', text
        )
    }
    assert counts["0.001"] == 1
    assert counts["0.0025"] == 1
    assert counts["0.005"] == 3
    assert counts["0.25"] == 4
    assert counts["10.0"] == 4
    assert counts["+Inf"] == 5


def test_a_body_longer_than_announced_goes_to_the_body_limit(server: RunningServer) -> None:
    """More bytes than Content-Length (and than the limit) reach the full path's 413, unbuffered."""
    import asyncio

    from meshgov.api.fast_authorize import AUTHORIZE_PATH, FastAuthorize

    seen: list[bytes] = []

    async def full_path(scope: object, receive: object, send: object) -> None:
        while True:
            message = await receive()  # type: ignore[operator]
            seen.append(message.get("body", b""))
            if not message.get("more_body"):
                break

    fast = FastAuthorize(
        full_path,
        service=server.service,
        tokens=TokenRegistry.empty(),
        max_body_bytes=100,
        request_model=object,
    )
    chunks = [b"x" * 60, b"y" * 60, b"z" * 60]

    async def receive() -> dict[str, object]:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: object) -> None:
        raise AssertionError(f"the fast path answered: {message}")

    scope = {
        "type": "http",
        "method": "POST",
        "path": AUTHORIZE_PATH,
        "headers": [(b"content-length", b"10"), (b"content-type", b"application/json")],
    }
    asyncio.run(fast(scope, receive, send))
    # The full path got what was read so far, then the rest of the stream, in order.
    assert b"".join(seen) == b"x" * 60 + b"y" * 60 + b"z" * 60
