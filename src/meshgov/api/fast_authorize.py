"""The hot path of ``POST /v1/query/authorize`` as plain ASGI, in front of FastAPI.

A well-formed request (JSON body within the size limit, a known token, no foreign ``principal``,
an active revision) is answered here: the body is parsed and validated by the route's own pydantic
model, the caller authenticated, the authorization computed and logged by ``Service.authorize``
exactly as on the FastAPI route, the request counted in the metrics under the route's template,
and the response body is the cached pre-serialised bytes of the authorization with this request's
``decision_id`` spliced in. That skips FastAPI's routing, dependency solving, request object,
middleware send chain and response rendering (most of the per-request CPU).

Everything else is handed, body replayed, to the full FastAPI application before any side effect,
so errors (400, 401, 403, 413, 503…) keep one implementation and one shape.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshgov.api.errors import error_body, meshgov_error_response
from meshgov.api.security import TokenRegistry, Unauthenticated
from meshgov.errors import MeshgovError
from meshgov.gateway import Authorization
from meshgov.metrics import Metrics
from meshgov.service import Service, ServingState

log = logging.getLogger("meshgov.api")

AUTHORIZE_PATH = "/v1/query/authorize"
JSON_TYPE = (b"content-type", b"application/json")
_BODY_CACHE = "authorize_bodies"
_BODY_CACHE_SIZE = 8192
_BODY_CACHE_MAX_BYTES = 16 * 1024  # larger responses are serialised per request


def _dumps(document: Any) -> str:
    # Exactly what starlette's JSONResponse renders.
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def authorize_body(state: ServingState, authorization: Authorization, decision_id: str) -> bytes:
    """The JSON response of an authorization: ``{allowed, sql, decision, decision_id, revision}``.

    The parts around ``decision_id`` are serialised once per (serving state, cached
    authorization) and reused; only the id differs between requests.

    Raises the refusal (``SqlParseError``, ``SqlDialectError``: HTTP 400) when the request itself
    is invalid: a denial is a 200 answer, invalid input is not. The route and the fast path both
    call this, so they answer alike.
    """
    if authorization.invalid_input:
        raise authorization.refusal()
    cache: dict[int, tuple[Authorization, bytes, bytes]] = state.cache.setdefault(_BODY_CACHE, {})
    entry = cache.get(id(authorization))
    if entry is not None and entry[0] is authorization:  # the entry holds it: ids stay unique
        return entry[1] + decision_id.encode() + entry[2]
    head = _dumps(
        {
            "allowed": authorization.allowed,
            "sql": authorization.sql,
            "decision": authorization.decision(),
            "decision_id": "",
        }
    )
    if not head.endswith('""}'):  # pragma: no cover - json.dumps keeps key order
        raise AssertionError("unexpected serialisation of the authorize response")
    prefix = head[:-2].encode()  # up to the opening quote of decision_id's value
    suffix = f'","revision":{_dumps(state.revision)}}}'.encode()
    if len(prefix) + len(suffix) <= _BODY_CACHE_MAX_BYTES:
        if len(cache) >= _BODY_CACHE_SIZE:
            cache.clear()
        cache[id(authorization)] = (authorization, prefix, suffix)
    return prefix + decision_id.encode() + suffix


class _Fallback(Exception):
    """Not for the fast path: the full application answers (nothing was done yet)."""


class FastAuthorize:
    """ASGI wrapper: ``POST /v1/query/authorize`` fast path, everything else to ``app``.

    ``app`` is the full application; it also answers every request the fast path declines.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: Service,
        tokens: TokenRegistry,
        max_body_bytes: int,
        request_model: Any,
    ) -> None:
        self.app = app
        self.service = service
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.request_model = request_model
        self.metrics: Metrics = service.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != AUTHORIZE_PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        length = -1
        authorization_header: str | None = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                    break
            elif name == b"content-type":
                json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
            elif name == b"authorization":
                authorization_header = value.decode("latin-1")
        if length < 0 or length > self.max_body_bytes or not json_body:
            await self.app(scope, receive, send)  # chunked, too large, not JSON: the full path
            return
        body = b""
        if length:
            chunks: list[bytes] = []
            received_bytes = 0
            while True:
                received = await receive()
                if received["type"] != "http.request":
                    return  # the client went away
                chunk = received.get("body", b"")
                chunks.append(chunk)
                received_bytes += len(chunk)
                if received_bytes > self.max_body_bytes:
                    # More than Content-Length announced: the full path's body limit answers 413.
                    more = bool(received.get("more_body", False))
                    await self.app(scope, replay_body(b"".join(chunks), receive, more), send)
                    return
                if not received.get("more_body", False):
                    break
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            service, state, caller, request = self._accept(body, authorization_header)
        except _Fallback:
            await self.app(scope, replay_body(body, receive), send)
            return
        try:
            authorization, decision_id, state = service.authorize(
                caller, request.sql, request.purpose, request.dialect, request.to, state=state
            )
            status = 200
            payload = authorize_body(state, authorization, decision_id)
            headers = [(b"content-length", b"%d" % len(payload)), JSON_TYPE]
        except MeshgovError as exc:
            error = meshgov_error_response(exc)
            status, payload, headers = error.status_code, bytes(error.body), error.raw_headers
        except Exception as exc:  # the service's own fault: deny, without internals
            log.exception("unexpected error: %s", type(exc).__name__)
            status = 500
            reason = f"internal error ({type(exc).__name__}); denied"
            payload = _dumps(error_body("internal_error", reason)).encode()
            headers = [(b"content-length", b"%d" % len(payload)), JSON_TYPE]
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        finally:
            self.metrics.observe_request(
                AUTHORIZE_PATH, "POST", status, time.perf_counter() - start
            )

    def _accept(self, body: bytes, header: str | None) -> tuple[Service, ServingState, Any, Any]:
        """Parse, validate and authenticate, or ``_Fallback`` (no side effects so far)."""
        state = self.service.current
        if state is None or not body:
            raise _Fallback
        try:
            document = json.loads(body)
            request = self.request_model.model_validate(document)
            caller = self.tokens.authenticate(header)
        except (ValueError, RecursionError, ValidationError, Unauthenticated):
            raise _Fallback from None
        if request.principal is not None and request.principal != caller.id:
            raise _Fallback  # 403 from the route
        return self.service, state, caller, request


def replay_body(
    body: bytes, receive: Receive, more_body: bool = False
) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that gives ``body`` once more (``more_body``: the rest is still to come from
    ``receive``), then defers to the real one."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay
