"""The console's decision log and graph pages (on the router of ``pages``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from meshgov.authz import GUILD_GROUP
from meshgov.console import graph_views, views, visibility
from meshgov.console.pages import (
    DECISIONS_SHOWN,
    MAX_ANSWER_ROWS,
    MAX_EMBEDDED_PICTURE,
    MAX_LISTED_PRODUCTS,
    PREFIX,
    _explorable,
    _render,
    _service,
    _session,
    router,
)
from meshgov.core.principal import Principal
from meshgov.errors import AccessDenied, MeshgovError
from meshgov.store.base import DECISION_KINDS, DecisionFilter

RISK_WAIT_S = 0.7  # a risk answer not ready by then is shown as progress (the page reloads)


# --- decisions and graph --------------------------------------------------------------------


@router.get("/decisions", response_class=HTMLResponse)
async def decisions(
    request: Request,
    principal: str = "",
    product: str = "",
    outcome: str = "",
    kind: str = "",
    since: str = "",
    until: str = "",
) -> HTMLResponse:
    session = await _session(request)
    me = session.principal
    chosen = {
        "principal": principal,
        "product": product,
        "outcome": outcome,
        "kind": kind,
        "since": since,
        "until": until,
    }
    # As the API: only the guild reads other principals' decisions.
    who = principal.strip() or None
    if GUILD_GROUP not in me.groups:
        who = me.id
    try:
        query = DecisionFilter(
            principal=who,
            product=product.strip() or None,
            allowed={"allowed": True, "denied": False}.get(outcome),
            kind=views.decision_kind(kind),
            since=views.parse_when(since, "from"),
            until=views.parse_when(until, "to", end=True),
            limit=DECISIONS_SHOWN,
        )
    except MeshgovError as exc:
        return _render(
            request,
            "decisions.html",
            session,
            status_code=exc.http_status,
            records=[],
            chosen=chosen,
            kinds=DECISION_KINDS,
            error=str(exc),
        )
    records = await run_in_threadpool(_service(request).decisions, query)
    state = _service(request).state
    rows = await run_in_threadpool(
        lambda: [_redacted(state, me, r, views.decision_row(r)) for r in records]
    )
    return _render(
        request,
        "decisions.html",
        session,
        records=rows,
        shown=DECISIONS_SHOWN,
        chosen=chosen,
        kinds=DECISION_KINDS,
        error=None,
    )


@router.get("/decisions/{decision_id}", response_class=HTMLResponse)
async def decision_detail(request: Request, decision_id: str) -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    me = session.principal
    await run_in_threadpool(service.flush_decisions, 2.0)
    record = await run_in_threadpool(service.store.decision, decision_id[:64])
    # Somebody else's decision is "not found" for all but the guild (no existence oracle).
    if record is None or (GUILD_GROUP not in me.groups and record.principal != me.id):
        return _render(
            request,
            "error.html",
            session,
            status_code=404,
            message=f"no decision {decision_id[:64]} that you may read",
        )
    shown = await run_in_threadpool(
        _redacted, service.state, me, record, views.decision_detail(record)
    )
    return _render(request, "decision.html", session, decision=shown)


def _redacted(state: Any, viewer: Principal, record: Any, shown: dict[str, Any]) -> dict[str, Any]:
    """A decision as shown to ``viewer``: the columns hidden from it in the products the decision
    is about are taken out of its text (the guild's is unchanged)."""
    if visibility.sees_everything(viewer):
        return shown
    products = {record.product} if record.product else set()
    for table in record.result.get("tables", []) or []:
        port = state.gateway.resolve_port(tuple(str(table).lower().split(".")))
        if port is not None:
            products.add(port.product)
    names = visibility.hidden_names(state, viewer, products)
    return visibility.redact_value(shown, names) if names else shown


@router.get("/graph", response_class=HTMLResponse)
async def graph(
    request: Request,
    question: str = "",
    left: str = "",
    right: str = "",
    target: str = "",
    principal: str = "",
    purpose: str = "",
) -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    state = service.state
    me = session.principal
    allowed = {p.id: p for p in _explorable(service, me)}
    answer: Any = None
    pending: graph_views.RiskProgress | None = None
    error = None
    status_code = 200
    try:
        if question == "risk":
            chosen = allowed.get(principal or me.id)
            # Another's risk names the columns it sees: for the guild only (a query engine that
            # may explore others' access is not shown columns hidden from itself).
            if chosen is not None and chosen.id != me.id and GUILD_GROUP not in me.groups:
                chosen = None
            if chosen is None:
                status_code = 403
                raise AccessDenied(
                    f"only the guild may assess another principal's risk ({principal})"
                )
            job = graph_views.risk_job(state, PREFIX, chosen, purpose or None)
            try:
                answer = (
                    job.future.result()
                    if job.future.done()
                    else await asyncio.wait_for(
                        asyncio.shield(asyncio.wrap_future(job.future)), RISK_WAIT_S
                    )
                )
            except TimeoutError:
                pending = job.progress
        elif question:
            # Remembered per state and viewer (the guild's answer is everybody's unfiltered one).
            viewer = "" if visibility.sees_everything(me) else me.cache_key()
            answer = await run_in_threadpool(
                views.memo,
                state,
                "graph",
                (question, left, right, target, viewer),
                lambda: graph_views.graph_answer(state, PREFIX, question, left, right, target, me),
            )
    except MeshgovError as exc:
        error = str(exc)
        status_code = exc.http_status if status_code == 200 else status_code
    count = len(state.catalog.manifests)
    return _render(
        request,
        "graph.html",
        session,
        status_code=status_code,
        products=sorted(state.catalog.manifests) if count <= MAX_LISTED_PRODUCTS else [],
        product_count=count,
        embed_picture=count <= MAX_EMBEDDED_PICTURE,
        principals=sorted(allowed),
        purposes=views.purposes(state),
        chosen={
            "question": question,
            "left": left,
            "right": right,
            "target": target,
            "principal": principal or me.id,
            "purpose": purpose,
        },
        answer=answer,
        pending=pending,
        rows_shown=MAX_ANSWER_ROWS,
        error=error,
    )


@router.get("/graph/picture", response_class=HTMLResponse)
async def graph_picture(request: Request) -> HTMLResponse:
    session = await _session(request)
    from meshgov import graph_export

    state = _service(request).state
    html = await run_in_threadpool(
        lambda: graph_export.to_html(
            graph_views.picture_graph(state, session.principal), title="meshgov"
        )
    )
    response = HTMLResponse(html)
    # The picture is a self-contained page with its own inline script and styles.
    response.headers["Content-Security-Policy"] = "default-src 'self' 'unsafe-inline'"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
