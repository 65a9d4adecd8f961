"""The console's routes: login/logout and the pages (``install_console(app)`` mounts them)."""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlglot import exp

from meshgov.authz import GUILD_GROUP, may_speak_for_others, require_guild, visible_report
from meshgov.console import views, visibility
from meshgov.console.sessions import SESSION_COOKIE, ConsoleSession, Sessions
from meshgov.core.principal import Principal
from meshgov.errors import AccessDenied, MeshgovError
from meshgov.service import Service
from meshgov.store.base import DecisionFilter
from meshgov.tokens import TokenRegistry

HERE = Path(__file__).parent
PREFIX = "/ui"
PAGE_SIZE = 50
OVERVIEW_PAGE_SIZE = 25  # ports per page of "what may I see?" (a decision and a rewrite each)
MAX_RESULT_ROWS = 200
MAX_FORM_BYTES = 1_000_000
DECISIONS_SHOWN = 200
MAX_ANSWER_ROWS = 500  # a graph answer's table lists this many (the rest are counted)
MAX_LISTED_PRODUCTS = 1_000  # beyond, product fields are free text (no 10,000-option lists)
MAX_EMBEDDED_PICTURE = 500  # beyond, the whole-graph picture is a link, not an iframe
COLUMN_CHECK_S = 0.4  # the catalogue's search checks column matches against access this long

templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes HTML
router = APIRouter(prefix=PREFIX, include_in_schema=False)


class LoginRequired(Exception):
    """No (or an expired) session: the page answers with a redirect to the login form."""


def install_console(app: FastAPI) -> FastAPI:
    """Mount the console on ``app`` (which holds the service and the token registry)."""
    app.state.console_sessions = Sessions(lambda: app.state.service.store, lambda: app.state.tokens)
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    async def to_login(_request: Request, _: Exception) -> Response:
        return RedirectResponse(f"{PREFIX}/login", status_code=303)

    app.add_exception_handler(LoginRequired, to_login)
    return app


# --- plumbing -------------------------------------------------------------------------------


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


async def _session(request: Request) -> ConsoleSession:
    session = await run_in_threadpool(_sessions(request).get, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired
    request.state.principal_id = session.principal.id
    views.warm(_service(request).state)
    return session


async def _form(request: Request, session: ConsoleSession | None) -> dict[str, str]:
    """The urlencoded form of a POST; with a session, its CSRF token must match and the request
    must come from this origin (SameSite=Strict already keeps other sites' cookies out)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise AccessDenied("form too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and origin != _origin(request):
        raise AccessDenied("cross-origin form refused")
    if session is not None and not session.csrf_matches(fields.get("csrf")):
        raise AccessDenied("missing or wrong CSRF token: reload the page and try again")
    return fields


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def _render(
    request: Request,
    template: str,
    session: ConsoleSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    principal = session.principal if session else None
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "me": principal,
            "is_guild": principal is not None and GUILD_GROUP in principal.groups,
            "prefix": PREFIX,
            **context,
        },
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'self'; "
        "form-action 'self'"
    )
    return response


def _refused(request: Request, session: ConsoleSession, exc: MeshgovError) -> HTMLResponse:
    return _render(request, "error.html", session, status_code=exc.http_status, message=str(exc))


# --- login ----------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    await _session(request)
    return RedirectResponse(f"{PREFIX}/catalogue", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    views.warm(_service(request).state)
    return _render(request, "login.html", None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    try:
        fields = await _form(request, None)
    except MeshgovError as exc:
        return _render(request, "login.html", None, status_code=exc.http_status, error=str(exc))
    tokens: TokenRegistry = request.app.state.tokens
    token = fields.get("token", "").strip()
    try:
        principal = tokens.authenticate(f"Bearer {token}")
    except MeshgovError:
        return _render(
            request, "login.html", None, status_code=401, error="unknown or revoked token"
        )
    try:
        session = await run_in_threadpool(_sessions(request).open, principal, token)
    except MeshgovError as exc:
        return _render(request, "login.html", None, status_code=exc.http_status, error=str(exc))
    response = RedirectResponse(f"{PREFIX}/catalogue", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=int(_sessions(request).seconds),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    session = await _session(request)
    try:
        await _form(request, session)
    except MeshgovError as exc:
        return _refused(request, session, exc)
    await run_in_threadpool(_sessions(request).close, session.id)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


# --- catalogue and products -----------------------------------------------------------------


@router.get("/catalogue", response_class=HTMLResponse)
async def catalogue(
    request: Request,
    q: str = "",
    domain: str = "",
    classification: str = "",
    entity: str = "",
    status: str = "",
    page: int = 1,
) -> HTMLResponse:
    session = await _session(request)
    state = _service(request).state
    rows = views.catalogue_rows(state)
    me = session.principal
    # A product matching by a column name alone is listed only if the viewer may see that column:
    # decided here for COLUMN_CHECK_S, the rest in the background (the page says how many wait).
    deadline = time.perf_counter() + COLUMN_CHECK_S
    unchecked = 0
    known_hidden = visibility.known_hidden(state, me)

    def hidden_of(row: views.CatalogueRow) -> set[str] | None:
        nonlocal unchecked
        known = known_hidden(row.id)
        if known is not None:
            return known
        if time.perf_counter() < deadline:
            return visibility.hidden_names(state, me, [row.id])
        unchecked += 1
        return None

    matching = await run_in_threadpool(
        views.filter_catalogue,
        rows,
        q,
        domain,
        classification,
        entity,
        status,
        None if visibility.sees_everything(me) else hidden_of,
    )
    if unchecked:
        visibility.check_every_product(state, me)
    pages = max(1, math.ceil(len(matching) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    chosen = {
        "q": q,
        "domain": domain,
        "classification": classification,
        "entity": entity,
        "status": status,
    }
    return _render(
        request,
        "catalogue.html",
        session,
        products=matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        total=len(matching),
        unchecked=unchecked,
        page=page,
        pages=pages,
        chosen=chosen,
        query=urlencode({k: v for k, v in chosen.items() if v}),
        facets=views.catalogue_facets(state),
        classifications=views.CLASSIFICATIONS,
    )


@router.get("/products/{domain}/{name}", response_class=HTMLResponse)
async def product(request: Request, domain: str, name: str, purpose: str = "") -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    state = service.state
    manifest = state.catalog.manifests.get(f"{domain}/{name}")
    if manifest is None:
        return _render(
            request, "error.html", session, status_code=404, message=f"no product {domain}/{name}"
        )
    versions = await run_in_threadpool(service.product_versions, domain, name)
    published = await run_in_threadpool(
        service.decisions,
        DecisionFilter(product=manifest.id, kind="publish", allowed=True, limit=1000),
    )
    by_version = {}
    for record in reversed(published):  # oldest first: a later record of a version wins
        by_version[str(record.result.get("version"))] = record
    checks = await run_in_threadpool(views.version_checks, state, versions, by_version)
    shown = await run_in_threadpool(
        views.product_view, state, manifest, session.principal, purpose or None
    )
    return _render(
        request,
        "product.html",
        session,
        product=shown,
        versions=visibility.redact_checks(checks, shown["hidden"]),
        purpose=purpose,
        purposes=views.purposes(state),
    )


# --- access explorer and query --------------------------------------------------------------


def _explorable(service: Service, me: Principal) -> list[Principal]:
    """Whom ``me`` may look at: everybody for the guild (and query engines), else only itself."""
    if may_speak_for_others(me):
        return list(service.principals) or [me]
    return [me]


def _explain(
    service: Service, principal: Principal, purpose: str | None, port_key: str, viewer: Principal
) -> dict[str, Any] | None:
    state = service.state
    port = views.port_by_key(state).get(port_key.strip())
    if port is None:
        return None
    decision = service.access_decision(state, principal, purpose, port)
    *schema, table_name = port.table[-2:]
    select_all = exp.select("*").from_(exp.table_(table_name, db=schema[0] if schema else None))
    authorization, _, _ = service.authorize(
        principal, select_all.sql("duckdb"), purpose, "duckdb", "duckdb"
    )
    shown = decision.as_dict()
    refusal = None if authorization.allowed else authorization.reason
    manifest = state.catalog.manifests.get(port.product)
    if not visibility.sees_everything(viewer, manifest):
        # Hidden columns are counted, never named (nor in a reason) to whom may not see them.
        names = set(decision.hidden_columns) | visibility.hidden_names(
            state, viewer, [port.product]
        )
        shown["hidden_count"] = len(decision.hidden_columns)
        shown["hidden_columns"] = []
        shown["reasons"] = [visibility.redact(r, names) for r in shown.get("reasons", [])]
        refusal = visibility.redact(refusal, names) if refusal else refusal
    return {
        "principal": principal.id,
        "decision": shown,
        "sql": authorization.sql,
        "refusal": refusal,
    }


@router.get("/access", response_class=HTMLResponse)
async def access(
    request: Request,
    principal: str = "",
    other: str = "",
    purpose: str = "",
    port: str = "",
    domain: str = "",
    page: int = 1,
) -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    me = session.principal
    allowed = {p.id: p for p in _explorable(service, me)}
    results: list[dict[str, Any]] = []
    overview = None
    totals = None
    error = None
    state = service.state
    ports = views.sorted_ports(state)
    if not port and (principal or me.id) in allowed:
        # No port picked: "what may I see?", the answer of ``GET /v1/access`` a page of ports at
        # a time (one decision per port on the page; the purposes line only on a small catalogue).
        subject = allowed[principal or me.id]
        overview = await run_in_threadpool(
            views.memo,
            state,
            "overview",
            (subject.id, purpose, domain, page, OVERVIEW_PAGE_SIZE),
            lambda: views.overview_page(
                state,
                subject,
                purpose or None,
                domain,
                page,
                OVERVIEW_PAGE_SIZE,
                with_purposes=len(ports) <= MAX_LISTED_PRODUCTS,
            ),
        )
        if overview.pages > 1:
            totals = views.overview_totals(state, subject, purpose or None, domain)
    elif not port:
        error = f"only the guild may explore another principal's access ({principal})"
    if port:
        for who in [principal or me.id, *([other] if other else [])]:
            chosen = allowed.get(who)
            if chosen is None:
                error = f"only the guild may explore another principal's access ({who})"
                break
            explained = await run_in_threadpool(
                _explain, service, chosen, purpose or None, port, me
            )
            if explained is None:
                error = f"no port {port}"
                break
            results.append(explained)
    chosen_fields = {
        "principal": principal or me.id,
        "other": other,
        "purpose": purpose,
        "port": port,
        "domain": domain,
    }
    return _render(
        request,
        "access.html",
        session,
        status_code=403 if error and "guild" in error else 200,
        principals=sorted(allowed),
        # Beyond MAX_LISTED_PRODUCTS ports the port is a free-text field (no 10,000 options).
        ports=[f"{p.product}:{p.port}" for p in ports] if len(ports) <= MAX_LISTED_PRODUCTS else [],
        port_count=len(ports),
        domains=views.catalogue_facets(state).domains,
        purposes=views.purposes(state),
        chosen=chosen_fields,
        query=urlencode({k: v for k, v in chosen_fields.items() if v and k != "port"}),
        results=results,
        overview=overview,
        totals=totals,
        error=error,
    )


@router.get("/query", response_class=HTMLResponse)
async def query_form(request: Request) -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    return _render(
        request,
        "query.html",
        session,
        sql="",
        purpose="",
        purposes=views.purposes(service.state),
    )


@router.post("/query", response_class=HTMLResponse)
async def run_query(request: Request) -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    try:
        fields = await _form(request, session)
    except MeshgovError as exc:
        return _refused(request, session, exc)
    sql = fields.get("sql", "")
    purpose = fields.get("purpose") or None
    context: dict[str, Any] = {
        "sql": sql,
        "purpose": purpose or "",
        "purposes": views.purposes(service.state),
    }
    started = time.perf_counter()
    try:
        table, authorization, decision_id = await run_in_threadpool(
            service.execute, session.principal, sql, purpose, None, kind="console"
        )
    except MeshgovError as exc:
        return _render(
            request,
            "query.html",
            session,
            status_code=exc.http_status,
            denial=str(exc),
            code=exc.code,
            **context,
        )
    shown = table.slice(0, MAX_RESULT_ROWS)
    return _render(
        request,
        "query.html",
        session,
        columns=shown.column_names,
        rows=[[row[c] for c in shown.column_names] for row in shown.to_pylist()],
        total_rows=table.num_rows,
        rewrite=authorization.sql,
        decision=authorization.decision(),
        decision_id=decision_id,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        **context,
    )


# --- policies -------------------------------------------------------------------------------


@router.get("/policies", response_class=HTMLResponse)
async def policies(request: Request) -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    active = service.active_revision_id()
    return _render(
        request,
        "policies.html",
        session,
        active=active,
        revisions=[views.revision_row(r, active) for r in service.store.revisions()],
        files=sorted(service.state.bundle.modules),
    )


@router.get("/policies/{revision}", response_class=HTMLResponse)
async def revision_detail(request: Request, revision: str) -> HTMLResponse:
    session = await _session(request)
    service = _service(request)
    found = service.store.revision(revision)
    if found is None:
        return _render(
            request, "error.html", session, status_code=404, message=f"no revision {revision}"
        )
    active_id = service.active_revision_id()
    active = service.store.revision(active_id) if active_id else None
    before = {**(active.modules if active else {}), **views.data_files(active)}
    after = {**found.modules, **views.data_files(found)}
    diff = []
    for path in sorted(set(before) | set(after)):
        lines = list(
            difflib.unified_diff(
                before.get(path, "").splitlines(),
                after.get(path, "").splitlines(),
                f"active/{path}",
                f"{found.id[:12]}/{path}",
                lineterm="",
            )
        )
        if lines:
            diff.append({"path": path, "lines": lines})
    return _render(
        request,
        "revision.html",
        session,
        revision=views.revision_row(found, active_id),
        report=visible_report(found.report, session.principal),
        diff=diff,
    )


@router.post("/policies/stage", response_class=HTMLResponse)
async def stage(request: Request) -> Response:
    session = await _session(request)
    service = _service(request)
    try:
        fields = await _form(request, session)
        require_guild(session.principal)
        path = fields.get("path", "").strip()
        content = fields.get("content", "").replace("\r\n", "\n")
        revision = await run_in_threadpool(
            service.stage_file, session.principal.id, path, content or None
        )
    except MeshgovError as exc:
        return _refused(request, session, exc)
    return RedirectResponse(f"{PREFIX}/policies/{revision.id}", status_code=303)


async def _confirmed_guild_action(
    request: Request, unconfirmed: str, action: Callable[[Service, str, dict[str, str]], object]
) -> Response:
    """Activate and roll back: the guild only, with the confirmation box ticked."""
    session = await _session(request)
    service = _service(request)
    try:
        fields = await _form(request, session)
        require_guild(session.principal)
        if fields.get("confirm") != "yes":
            raise AccessDenied(unconfirmed)
        await run_in_threadpool(action, service, session.principal.id, fields)
    except MeshgovError as exc:
        return _refused(request, session, exc)
    return RedirectResponse(f"{PREFIX}/policies", status_code=303)


@router.post("/policies/activate", response_class=HTMLResponse)
async def activate(request: Request) -> Response:
    return await _confirmed_guild_action(
        request,
        "tick the confirmation box to activate a revision",
        lambda service, actor, fields: service.activate(actor, fields.get("revision", "")),
    )


@router.post("/policies/rollback", response_class=HTMLResponse)
async def rollback(request: Request) -> Response:
    return await _confirmed_guild_action(
        request,
        "tick the confirmation box to roll back",
        lambda service, actor, _fields: service.rollback(actor),
    )


# The decisions and graph pages (registered on the same router).
from meshgov.console import pages_graph as pages_graph  # noqa: E402
