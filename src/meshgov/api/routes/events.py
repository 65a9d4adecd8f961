"""``GET /v1/products/{domain}/{name}/ports/{port}/events``: a principal's governed events.

Read from the raw stream at a position the client keeps (``from``, or SSE's ``Last-Event-ID``),
each event filtered and masked for the caller by the same decision and secure SQL as a query.
NDJSON (one ``{"seq", "revision", "event"}`` per line) or Server-Sent Events (``id`` = the raw
stream position, so a reconnecting EventSource resumes after the last event it saw).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from meshgov.api.deps import service_and_caller
from meshgov.api.streaming import event_broker, governed_runner
from meshgov.errors import InputError, NotFound

router = APIRouter(prefix="/v1/products", tags=["events"])

NamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]*$", max_length=128)]
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


@router.get(
    "/{domain}/{name}/ports/{port}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {NDJSON: {}, SSE: {}}, "description": "governed events, in order"},
        403: {"description": "denied: the body says why"},
        404: {"description": "no such product or events port"},
        503: {"description": "no broker configured or reachable"},
    },
)
async def port_events(
    domain: NamePath,
    name: NamePath,
    port: NamePath,
    request: Request,
    start: Annotated[
        int, Query(alias="from", ge=1, description="raw stream position to start at")
    ] = 1,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    wait: Annotated[float, Query(gt=0, le=60, description="stop after this idle time (s)")] = 2.0,
    format: Annotated[str | None, Query(max_length=16, description="ndjson | sse")] = None,
    purpose: Annotated[str | None, Query(max_length=128)] = None,
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """The caller's governed events of an events port, from position ``from``."""
    from meshgov.event_batches import events_port, pull_events
    from meshgov.governed import governed_port

    service, caller = service_and_caller(request)
    sse = format == "sse" or (format is None and accept is not None and SSE in accept)
    if format not in (None, "sse", "ndjson"):
        raise InputError(f"unknown events format {format!r}: use ndjson or sse")
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise InputError("Last-Event-ID must be a stream position (digits)")
        start = int(last_event_id) + 1
    state = service.state
    product = f"{domain}/{name}"
    if product not in state.catalog.manifests:
        raise NotFound(f"no product {product}")
    try:
        events_port(state.gateway, product, port)
    except InputError as exc:
        raise NotFound(exc.message) from None
    decision = state.gateway.decide(caller, purpose, product, port)
    decision_id = service.record(
        kind="subscribe",
        principal=caller.id,
        product=product,
        document=None,
        allowed=decision.allow,
        result={"port": port, "from": start, "purpose": purpose, "reasons": list(decision.reasons)},
        revision=state.revision,
    )
    governed_port(state.gateway, caller, purpose, product, port)  # 403 / 503 before streaming
    broker = await event_broker(request)
    runner = governed_runner(request)

    async def body() -> AsyncIterator[bytes]:
        events = pull_events(
            broker,
            state.gateway,
            runner,
            caller,
            purpose,
            product,
            port,
            start=start,
            limit=limit,
            wait=wait,
        )
        async for item in events:
            if sse:
                yield b"id: %d\nevent: event\ndata: %s\n\n" % (item.sequence, item.event)
            else:
                head = json.dumps({"seq": item.sequence, "revision": item.revision})
                yield head[:-1].encode() + b',"event":' + item.event + b"}\n"

    headers = {"X-Meshgov-Decision-Id": decision_id, "Cache-Control": "no-store"}
    return StreamingResponse(body(), media_type=SSE if sse else NDJSON, headers=headers)
