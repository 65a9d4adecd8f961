"""OPA's Data API (``POST/GET /v1/data[/{path}]``) and the Trino OPA access-control endpoints.

``{"input": …}`` → ``{"result": …, "decision_id": …}``; an undefined document → ``{"decision_id":
…}`` without ``result``, HTTP 200, as OPA answers. As OPA: extra top-level body keys are ignored,
a gzip body (``Content-Encoding: gzip``) is read, and ``?pretty``, ``?metrics`` and
``?provenance`` are honoured. An input that breaks the contract of a documented entrypoint is 400,
and an evaluation error is blamed on the input (400) or on the service (500) by the rule of
``api/data_inputs.py``. Without input, a document is a constant of the revision: it is computed
once (builtin errors make a value undefined there, OPA's default) and kept with the revision.

The Trino paths (``/v1/data/meshgov/trino/…`` and the ``/v1/data/trino/…`` aliases of Trino's
documentation) are answered from ``meshgov.access`` decisions (``api/trino.py``); they are the only
paths that ``MESHGOV_DATA_API_ANONYMOUS=true`` opens to tokenless callers.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from meshgov import __version__
from meshgov.api.data_inputs import blame, check_input
from meshgov.api.offload import CpuPool
from meshgov.api.security import TokenRegistry, Unauthenticated, may_speak_for_others
from meshgov.api.trino import (
    PortIndex,
    TrinoAuthorizer,
    TrinoConfig,
    TrinoRequest,
    trino_principal,
    trino_rule,
)
from meshgov.core.principal import Principal
from meshgov.errors import AccessDenied, InputError, PolicyEvaluationError
from meshgov.limits import check_size
from meshgov.service import Service, data_api_outcome, data_query
from meshgov.store.decision_log import input_digest

router = APIRouter(prefix="/v1/data", tags=["opa"])

INPUT_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"input": {}}},
            }
        },
    }
}
# Documents computed without input, per serving state (bounded: cleared when full).
_DOCUMENT_CACHE = "opa_documents"
_DOCUMENT_CACHE_SIZE = 256


class BodyTooLarge(InputError):
    code = "request_too_large"
    http_status = 413


def _gunzip(raw: bytes, limit: int) -> bytes:
    """A gzip body, decompressed to at most ``limit`` bytes (a small body may inflate a lot)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise InputError("the body is not valid gzip (Content-Encoding: gzip)") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"the decompressed request body exceeds the limit of {limit} bytes")
    return out


async def _json_body(request: Request, limit: int) -> dict[str, Any]:
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw, limit)
    elif encoding not in ("", "identity"):
        raise InputError(f"unsupported Content-Encoding {encoding!r}; send gzip or none")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise InputError("malformed JSON body") from None
    if not isinstance(body, dict):
        raise InputError('the body must be a JSON object {"input": …}')
    return body


def _check_input_size(service: Service, path: str, size: int) -> None:
    """Rego's cost grows with the input (faster than linearly for the gate's rules) and a native
    evaluation cannot be stopped: the input's size is its budget, checked before parsing.

    Trino's requests (whose size grows with a table's columns) are not evaluated as Rego and have
    only their body limit."""
    if trino_rule(path) is not None:
        return
    check_size(
        size,
        service.settings.max_data_input_bytes,
        "the Data API input",
        "MESHGOV_MAX_DATA_INPUT_BYTES",
    )


def _flag(request: Request, name: str) -> bool:
    """OPA's boolean query parameters: ``?name`` or ``?name=true`` (any case)."""
    values = request.query_params.getlist(name)
    if values == [""]:
        return True
    return any(v.lower() == "true" for v in values)


def _respond(
    request: Request, document: dict[str, Any], revision: str, started: int
) -> JSONResponse:
    if _flag(request, "provenance"):
        document["provenance"] = {
            "version": __version__,
            "revision": revision,
            "bundles": {"meshgov": {"revision": revision}},
        }
    if _flag(request, "metrics"):
        document["metrics"] = {"timer_server_handler_ns": time.perf_counter_ns() - started}
    if _flag(request, "pretty"):
        return _PrettyJSONResponse(document)
    return JSONResponse(document)


class _PrettyJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, indent=2, ensure_ascii=False).encode("utf-8")


def _trino(
    service: Service,
    known: Mapping[str, Principal],
    caller: Principal | None,
    rule: str,
    request_doc: TrinoRequest,
    digest: str,
) -> Any:
    settings = service.settings
    principal = trino_principal(request_doc, known)
    state = service.state
    purpose = request_doc.properties.get("purpose") or settings.trino_default_purpose
    ports = state.cache.get("trino")
    if ports is None:
        ports = PortIndex(service.ports(state), TrinoConfig.from_settings(settings))
        state.cache["trino"] = ports
    authorizer = TrinoAuthorizer(
        ports, lambda port: service.access_decision(state, principal, purpose, port), principal
    )
    result: Any
    if rule == "allow":
        result = authorizer.allow(request_doc)
        allowed = bool(result)
    elif rule == "batch":
        result = authorizer.batch(request_doc)
        allowed = bool(result)
    elif rule == "row_filters":
        result = authorizer.row_filters(request_doc)
        allowed = result != [{"expression": "FALSE"}]
    elif rule == "column_mask":
        result = authorizer.single_column_mask(request_doc)
        allowed = True
    else:
        result = authorizer.batch_column_masks(request_doc)
        allowed = True
    products = sorted({f"{p}:{port}" for p, port in authorizer.decisions()})
    service.record(
        kind="trino",
        principal=principal.id,
        product=products[0].split(":")[0] if len(products) == 1 else None,
        document=None,
        digest=digest,
        allowed=allowed,
        result={
            "rule": rule,
            "operation": request_doc.operation,
            "malformed": request_doc.problem,
            "caller": caller.id if caller else None,
            "tables": products,
            "result": result,
        },
        revision=state.revision,
    )
    return result


def _may_ask_trino(caller: Principal | None, asked_for: str, anonymous: bool) -> None:
    """Who may have the Trino answers for the identity Trino names (docs/service.md).

    The ``query-engines`` group and the guild answer for anyone; with anonymous mode on, anyone on
    the network may, so a caller with a valid token may too (a token never gets less than no
    token); otherwise a principal may ask only about itself.
    """
    if caller is None or may_speak_for_others(caller) or anonymous or asked_for == caller.id:
        return
    raise AccessDenied(
        "the Trino endpoints answer for other identities only to the 'query-engines' group: "
        f"'{caller.id}' may ask about itself only"
    )


def _no_input_document(service: Service, path: str) -> tuple[Any, str]:
    """``data.<path>`` without input: a constant of the serving state, computed once.

    Evaluated strictly first. When a builtin fails (a rule that reads ``input`` has none), the
    value is read from the root document computed as OPA's Data API does by default, with
    builtin errors undefined (once per serving state, so every such path agrees with the root).
    """
    state = service.state
    cache: dict[str, Any] = state.cache.setdefault(_DOCUMENT_CACHE, {})
    key = "/".join(p for p in path.split("/") if p)
    if key in cache:
        return cache[key], state.revision
    query = data_query(path)
    try:
        value = state.prepared.evaluate(query, None)
    except PolicyEvaluationError:
        lenient = getattr(state.prepared, "evaluate_lenient", None)
        if lenient is None:
            lenient = _lenient_policy(service).evaluate_lenient
        if key:
            value = _member(_no_input_document(service, "")[0], key.split("/"))
        else:
            value = lenient(query)
    if len(cache) >= _DOCUMENT_CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value, state.revision


def _lenient_policy(service: Service) -> Any:
    """The embedded engine's policy of this serving state, for documents read without input
    when the serving engine cannot evaluate with builtin errors undefined (regorus cannot)."""
    state = service.state
    policy = state.cache.get("opa_lenient_policy")
    if policy is None:
        from meshgov.policy_backends.embedded import EmbeddedEngine
        from meshgov.service import catalog_data

        policy = EmbeddedEngine().prepare(state.bundle, catalog_data(state.catalog))
        state.cache["opa_lenient_policy"] = policy
    return policy


def _member(document: Any, path: list[str]) -> Any:
    """``document[a][b]…``; ``None`` (undefined) where a step is missing."""
    for step in path:
        if not isinstance(document, dict) or step not in document:
            return None
        document = document[step]
    return document


def _with_base_data(service: Service, root: dict[str, Any]) -> dict[str, Any]:
    """The root document with the base data the engine leaves out of it (embedded engine)."""
    keys: tuple[str, ...] = tuple(getattr(service.state.prepared, "data_keys", None) or ())
    if not keys:
        keys = tuple(getattr(_lenient_policy(service), "data_keys", ()))
    missing = [key for key in keys if key not in root]
    return {**root, **{key: _no_input_document(service, key)[0] for key in missing}}


async def _answer(
    request: Request,
    path: str,
    body: dict[str, Any],
    caller: Principal | None,
    started: int,
    raw: bytes | None = None,
) -> JSONResponse:
    service: Service = request.app.state.service
    tokens: TokenRegistry = request.app.state.tokens
    # Decisions (Rego, Trino batches) run on the CPU pool, never on the event loop.
    pool: CpuPool = request.app.state.cpu
    rule = trino_rule(path)
    if rule is not None:
        request_doc = TrinoRequest.parse(body)
        _may_ask_trino(caller, request_doc.user, request.app.state.settings.data_api_anonymous)
        # The log keeps the digest of the body as sent: canonical JSON of a 10,000-table
        # FilterTables batch would cost more than answering it.
        digest = hashlib.sha256(raw).hexdigest() if raw is not None else input_digest(body)
        result = await pool.run(_trino, service, tokens.by_id(), caller, rule, request_doc, digest)
        return JSONResponse({"result": result})
    if caller is None:  # only the Trino paths answer tokenless callers (``_caller``)
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    # OPA ignores top-level keys other than ``input``, and so does meshgov.
    document = body.get("input")
    if document is None:
        value, revision = await pool.run(_no_input_document, service, path)
    else:
        # Input contracts and who is to blame for an evaluation error: api/data_inputs.py.
        checked = check_input(path, document)
        try:
            value, revision = await pool.run(service.evaluate, path, document)
        except PolicyEvaluationError as exc:
            raise blame(exc, path, document, checked) from None
    if not path.strip("/") and isinstance(value, dict):
        value = await pool.run(_with_base_data, service, value)
    product, allowed, ports = data_api_outcome(path, document, value)
    decision_id = service.record(
        kind="opa",
        principal=caller.id,
        product=product,
        document={"path": path, "input": document},
        allowed=allowed,
        result={"path": path, "defined": value is not None, "tables": ports},
        revision=revision,
    )
    answer: dict[str, Any] = {"decision_id": decision_id}
    if value is not None:
        answer["result"] = value
    return _respond(request, answer, revision, started)


def _caller(request: Request, path: str) -> Principal | None:
    """The token's principal; ``None`` only for a tokenless POST to a Trino path in anonymous
    mode (every other path needs a token, whatever the mode)."""
    tokens: TokenRegistry = request.app.state.tokens
    header = request.headers.get("authorization")
    if (
        header is None
        and request.method == "POST"
        and request.app.state.settings.data_api_anonymous
        and trino_rule(path) is not None
    ):
        return None
    principal = tokens.authenticate(header)
    request.state.principal_id = principal.id
    return principal


async def _post(path: str, request: Request) -> JSONResponse:
    started = time.perf_counter_ns()
    caller = _caller(request, path)
    settings = request.app.state.settings
    limit = settings.trino_max_body_bytes if trino_rule(path) else settings.max_body_bytes
    raw = await request.body()
    _check_input_size(request.app.state.service, path, len(raw))
    body = await _json_body(request, limit)
    return await _answer(request, path, body, caller, started, raw)


async def _get(path: str, request: Request, input_text: str | None) -> JSONResponse:
    started = time.perf_counter_ns()
    caller = _caller(request, path)
    body: dict[str, Any] = {}
    if input_text is not None:
        _check_input_size(request.app.state.service, path, len(input_text.encode()))
        try:
            body["input"] = json.loads(input_text)
        except (ValueError, RecursionError):
            raise InputError("the input query parameter is not valid JSON") from None
    return await _answer(request, path, body, caller, started)


InputParam = Annotated[str | None, Query(description="JSON-encoded input document")]


@router.post("", openapi_extra=INPUT_SCHEMA)
async def post_root(request: Request) -> JSONResponse:
    """Evaluate the root document ``data`` (OPA's ``POST /v1/data``)."""
    return await _post("", request)


@router.get("")
async def get_root(request: Request, input: InputParam = None) -> JSONResponse:
    """Read the root document ``data`` (OPA's ``GET /v1/data``)."""
    return await _get("", request, input)


@router.post("/{path:path}", openapi_extra=INPUT_SCHEMA)
async def post_data(path: str, request: Request) -> JSONResponse:
    """Evaluate ``data.<path>`` with ``input``; no ``result`` when undefined (OPA's Data API).

    Trino calls this several times per query: app state is read directly (no dependencies).
    """
    return await _post(path, request)


@router.get("/{path:path}")
async def get_data(path: str, request: Request, input: InputParam = None) -> JSONResponse:
    """Evaluate ``data.<path>`` (``input`` as a JSON query parameter, as OPA accepts)."""
    return await _get(path, request, input)
