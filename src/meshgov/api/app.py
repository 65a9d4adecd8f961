"""The FastAPI application: ``create_app(settings)`` (``meshgov.process`` composes the process)."""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshgov import __version__
from meshgov.api.docs import install_docs
from meshgov.api.errors import error_body, install_error_handlers
from meshgov.api.fast_authorize import AUTHORIZE_PATH, FastAuthorize, replay_body
from meshgov.api.offload import CpuPool
from meshgov.api.security import TokenRegistry
from meshgov.api.trino import is_trino_path
from meshgov.config import Settings
from meshgov.service import Service

log = logging.getLogger("meshgov.api")


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed; the Trino paths
    have their own ``trino_limit`` (a FilterTables batch lists a whole catalog)."""

    def __init__(self, app: ASGIApp, limit: int, trino_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.trino_limit = trino_limit or limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.trino_limit if is_trino_path(str(scope.get("path", ""))) else self.limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "invalid_input", "invalid Content-Length header")
                    return
                if declared > limit:
                    await _reply(send, 413, "request_too_large", _too_large(limit))
                    return
        if any(name == b"content-length" for name, _ in scope.get("headers", ())):
            # Declared and within the limit; the server stops reading at that length.
            await self.app(scope, receive, send)
            return
        # Streamed (chunked) body: read it here, bounded, and replay it to the app.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _reply(send, 413, "request_too_large", _too_large(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(b"".join(chunks), receive), send)


def _too_large(limit: int) -> str:
    return f"request body exceeds the limit of {limit} bytes"


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Count requests and their latency per route template (not per raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.service.metrics.observe_request(
                template, scope.get("method", ""), status, time.perf_counter() - start
            )


class MeshgovAPI(FastAPI):
    """FastAPI with the ``POST /v1/query/authorize`` fast path in front (``fast_authorize``)."""

    fast_path: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and scope["type"] == "http" and scope["path"] == AUTHORIZE_PATH:
            await fast(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def full_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The whole FastAPI application (middlewares, routing), without the fast path."""
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    service: Service | None = None,
    tokens: TokenRegistry | None = None,
    bootstrap: bool = True,
    listeners: Sequence[Callable[[Service, TokenRegistry], Listener]] = (),
) -> FastAPI:
    """The meshgov HTTP API. A given ``service`` is started and closed by the app's lifespan.

    ``listeners`` make the process's other faces (the PostgreSQL wire protocol) from the same
    service and tokens; they start after the service and stop before it.
    """
    from meshgov.api.routes import (
        access,
        catalog,
        check,
        data,
        decisions,
        events,
        exports,
        graph,
        health,
        policies,
        products,
        query,
    )

    if tokens is None:
        tokens_file = settings.resolved_tokens_file()
        tokens = TokenRegistry.from_file(tokens_file) if tokens_file else TokenRegistry.empty()
        if tokens_file is None:
            log.warning("no tokens file: every authenticated endpoint answers 401")
    registry = tokens
    owned = service or Service(settings)
    owned.principals = sorted(tokens.by_id().values(), key=lambda principal: principal.id)
    # CPU-bound request work runs here, off the event loop, within the request's time budget.
    pool = CpuPool(settings.cpu_workers, settings.request_timeout_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from meshgov.api.streaming import close_streaming, start_relay

        owned.start(bootstrap=bootstrap)
        relay = start_relay(settings, owned)
        started: list[Listener] = []
        app.state.listeners = started  # the process's other faces, for tests and operators
        try:
            for make in listeners:
                listener = make(owned, registry)
                await listener.start()
                started.append(listener)
            # Compiled policies, catalogue and caches live for the process: keep them out of
            # the garbage collector's generations so collections stay short (latency tail).
            gc.collect()
            gc.freeze()
            yield
        finally:
            pool.close()
            for listener in reversed(started):
                await listener.stop()
            if relay is not None:
                relay.stop()
            await close_streaming(app.state)
            owned.close()

    app = MeshgovAPI(
        title="meshgov",
        version=__version__,
        summary="Data mesh governance: registry, query gateway, policies, OPA and Trino.",
        lifespan=lifespan,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
    )

    def openapi_with_bearer() -> dict[str, Any]:
        # One bearer scheme for the whole API, so that /docs has an "Authorize" button.
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            document.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "meshgov token"}
            }
            document["security"] = [{"bearer": []}]
            for open_path in ("/health", "/metrics"):
                for operation in document["paths"].get(open_path, {}).values():
                    operation["security"] = []  # no token needed
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi_with_bearer  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.service = owned
    app.state.tokens = tokens
    app.state.cpu = pool
    install_error_handlers(app)
    routers = (
        health,
        products,
        catalog,
        exports,
        events,
        check,
        query,
        access,
        graph,
        policies,
        decisions,
        data,
    )
    for module in routers:
        app.include_router(module.router)
    install_docs(app)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        trino_limit=settings.trino_max_body_bytes,
    )
    app.add_middleware(MetricsMiddleware, service=owned)
    app.fast_path = FastAuthorize(
        app.full_app,
        service=owned,
        tokens=tokens,
        max_body_bytes=settings.max_body_bytes,
        request_model=query.AuthorizeRequest,
        pool=pool,
        max_sql_chars=settings.max_sql_chars,
    )
    return app


class Listener(Protocol):
    """Another face served by the same process (started and stopped by the app's lifespan)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def openapi_document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()
