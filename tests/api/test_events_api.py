"""Events in ``meshgov serve``: the relay started by the service, and the pull API
(``GET …/ports/{port}/events`` as NDJSON or SSE), against the real NATS server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import ROOT, RunningServer, settings_for, start_server

from meshgov.store.base import DecisionFilter

EVENTS = "/v1/products/commerce/orders/ports/order_events/events"


def order_event(number: int, region: str) -> dict[str, Any]:
    return {
        "event_id": f"E{number:010d}",
        "order_id": f"O{number:08d}",
        "customer_id": f"C{1_000_000 + number:07d}",
        "voucher_code": f"VOUCHER-{number:06d}",
        "fraud_score": number * 7 % 100,
        "status": "placed",
        "amount": 12.5 + number,
        "currency": "EUR" if region == "EU" else "USD",
        "region": region,
        "occurred_at": "2026-12-06T10:00:00+00:00",
    }


@pytest.fixture
def events_server(tmp_path: Path, nats_url: str) -> Iterator[tuple[RunningServer, str]]:
    ns = "t" + uuid.uuid4().hex[:10]
    mesh = tmp_path / "mesh"
    shutil.copytree(ROOT / "examples" / "mesh", mesh)
    orders = mesh / "commerce" / "orders.yaml"
    text = orders.read_text(encoding="utf-8")
    text = text.replace("subject: commerce.orders.events", f"subject: {ns}.orders.events")
    text = text.replace("name: COMMERCE_ORDER_EVENTS", f"name: {ns.upper()}_RAW")
    orders.write_text(text, encoding="utf-8")
    asyncio.run(_create_raw_stream(nats_url, ns))
    handle = start_server(
        settings_for(tmp_path, catalog_dir=mesh, nats_url=nats_url, stream_namespace=ns)
    )
    try:
        yield handle.running, ns
    finally:
        handle.stop()
        asyncio.run(_delete_streams(nats_url, ns))


async def _create_raw_stream(url: str, ns: str) -> None:
    import nats

    client = await nats.connect(url)
    await client.jetstream().add_stream(name=f"{ns.upper()}_RAW", subjects=[f"{ns}.orders.events"])
    await client.close()


async def _delete_streams(url: str, ns: str) -> None:
    import nats

    client = await nats.connect(url)
    js = client.jetstream()
    for info in await js.streams_info():
        if info.config.name and info.config.name.startswith(ns.upper()):
            with contextlib.suppress(Exception):
                await js.delete_stream(info.config.name)
    await client.close()


async def _publish(url: str, ns: str, events: list[bytes]) -> None:
    import nats

    client = await nats.connect(url)
    js = client.jetstream()
    for event in events:
        await js.publish(f"{ns}.orders.events", event)
    await client.close()


async def _governed(url: str, ns: str, subject: str, expected: int) -> list[Any]:
    import nats

    client = await nats.connect(url)
    js = client.jetstream()
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < expected and time.monotonic() < deadline:
        try:
            stream = await js.find_stream_name_by_subject(subject)
        except Exception:
            await asyncio.sleep(0.2)
            continue
        sub = await js.pull_subscribe(subject, stream=stream)
        with contextlib.suppress(Exception):
            got.extend(await sub.fetch(100, timeout=0.5))
        await sub.unsubscribe()
        if len(got) < expected:
            got.clear()
            await asyncio.sleep(0.3)
    await client.close()
    return got


def test_serve_relays_and_the_pull_api_serves_the_callers_events(
    events_server: tuple[RunningServer, str], nats_url: str
) -> None:
    server, ns = events_server
    events = [order_event(n, "EU" if n % 2 else "US") for n in range(1, 11)]
    asyncio.run(_publish(nats_url, ns, [json.dumps(e).encode() for e in events] + [b"not json"]))
    # The relay inside the service publishes the analyst's governed subject.
    subject = f"{ns}gov.analytics.analyst-eu.commerce.orders.order_events"
    governed = asyncio.run(_governed(nats_url, ns, subject, 5))
    relayed = [json.loads(m.data) for m in governed]
    assert all(e["voucher_code"].startswith("*") and "fraud_score" not in e for e in relayed)
    assert sorted(e["order_id"] for e in relayed) == [
        e["order_id"] for e in events if e["region"] == "EU"
    ]
    # The pull API gives the same governed events to the same principal.
    with server.client("analyst-eu") as client:
        response = client.get(EVENTS, params={"purpose": "analytics", "limit": 5, "wait": 2})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["event"] for line in lines] == sorted(relayed, key=lambda e: e["order_id"])
    assert all(line["revision"] == server.service.state.bundle.revision for line in lines)
    # Resume after the third event: SSE with Last-Event-ID.
    third = lines[2]["seq"]
    with server.client("analyst-eu") as client:
        sse = client.get(
            EVENTS,
            params={"purpose": "analytics", "limit": 2, "wait": 1},
            headers={"Accept": "text/event-stream", "Last-Event-ID": str(third)},
        )
    assert sse.status_code == 200
    ids = [int(line[4:]) for line in sse.text.splitlines() if line.startswith("id: ")]
    assert ids == [lines[3]["seq"], lines[4]["seq"]]
    # A principal without a grant gets a 403, logged.
    with server.client("nobody") as client:
        assert client.get(EVENTS, params={"purpose": "analytics"}).status_code == 403
    server.service.flush_decisions()
    kinds = {
        (d.principal, d.kind, d.allowed)
        for d in server.service.decisions(DecisionFilter(product="commerce/orders", limit=500))
    }
    assert ("analyst-eu", "stream", True) in kinds
    assert ("analyst-eu", "subscribe", True) in kinds
    assert ("nobody", "subscribe", False) in kinds


def test_without_a_broker_the_events_api_is_503(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.get(EVENTS, params={"purpose": "analytics"})
    assert response.status_code == 503
    assert "MESHGOV_NATS_URL" in response.json()["message"]


def test_serve_starts_and_serves_the_rest_when_nats_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from api_server import free_port

    down = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level("WARNING", logger="meshgov.streams"):
        handle = start_server(settings_for(tmp_path, nats_url=down))
        try:
            with handle.running.client("analyst-eu") as client:
                assert client.get("/health").status_code == 200
                export = client.get(
                    "/v1/products/customer/customers/ports/customers/export",
                    params={"purpose": "analytics"},
                )
                assert export.status_code == 200
                assert client.get(EVENTS, params={"purpose": "analytics"}).status_code == 503
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "not relayed" not in caplog.text:
                time.sleep(0.1)
        finally:
            handle.stop()
    assert "event streams are not relayed" in caplog.text
    assert down in caplog.text
