"""OPA's Data API (``POST/GET /v1/data/{path}``) and the Trino OPA access-control endpoints.

``{"input": …}`` → ``{"result": …, "decision_id": …}``; an undefined document → ``{}`` with HTTP
200, as OPA answers. An input that breaks the contract of a documented entrypoint is 400, and an
evaluation error is blamed on the input (400) or on the service (500) by the rule of
``api/data_inputs.py``. The Trino paths (``/v1/data/meshgov/trino/…`` and the ``/v1/data/trino/…``
aliases of Trino's documentation) are answered from ``meshgov.access`` decisions (``api/trino.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from meshgov.api.data_inputs import blame, check_input
from meshgov.api.deps import OptionalCallerDep, ServiceDep, TokensDep
from meshgov.api.security import TokenRegistry, may_speak_for_others
from meshgov.api.trino import PortIndex, TrinoAuthorizer, TrinoRequest, trino_principal
from meshgov.core.principal import Principal
from meshgov.errors import AccessDenied, InputError, PolicyEvaluationError
from meshgov.service import Service, data_api_outcome

router = APIRouter(prefix="/v1/data", tags=["opa"])

TRINO_RULES = {
    "allow": "allow",
    "batch": "batch",
    "row_filters": "row_filters",
    "rowFilters": "row_filters",
    "column_mask": "column_mask",
    "columnMask": "column_mask",
    "batch_column_masks": "batch_column_masks",
    "batchColumnMasks": "batch_column_masks",
}
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


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InputError("malformed JSON body") from None
    if not isinstance(body, dict):
        raise InputError('the body must be a JSON object {"input": …}')
    return body


def _trino_rule(path: str) -> str | None:
    for prefix in ("meshgov/trino/", "trino/"):
        if path.startswith(prefix):
            rule = path.removeprefix(prefix).strip("/")
            return TRINO_RULES.get(rule)
    return None


def _trino(
    service: Service,
    known: Mapping[str, Principal],
    caller_id: str | None,
    rule: str,
    body: dict[str, Any],
) -> Any:
    request_doc = TrinoRequest.parse(body)
    settings = service.settings
    principal = trino_principal(request_doc, known)
    state = service.state
    purpose = request_doc.properties.get("purpose") or settings.trino_default_purpose
    ports = state.cache.get("trino")
    if ports is None:
        ports = PortIndex(service.ports(state))
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
        document=body,
        allowed=allowed,
        result={
            "rule": rule,
            "operation": request_doc.operation,
            "malformed": request_doc.problem,
            "caller": caller_id,
            "tables": products,
            "result": result,
        },
        revision=state.revision,
    )
    return result


async def _answer(
    path: str,
    body: dict[str, Any],
    service: Service,
    tokens: TokenRegistry,
    caller: Principal | None,
) -> JSONResponse:
    caller_id = caller.id if caller else None
    may_speak = caller is None or may_speak_for_others(caller)
    rule = _trino_rule(path)
    if rule is not None:
        if not may_speak:
            raise AccessDenied(
                "the Trino endpoints answer for other identities: the caller must be in the "
                "'query-engines' group"
            )
        result = _trino(service, tokens.by_id(), caller_id, rule, body)
        return JSONResponse({"result": result})
    if "input" in body and len(body) > 1:
        raise InputError('unknown keys in the body; expected {"input": …}')
    document = body.get("input")
    # Input contracts and who is to blame for an evaluation error: api/data_inputs.py.
    checked = check_input(path, document)
    try:
        value, revision = service.evaluate(path, document)
    except PolicyEvaluationError as exc:
        raise blame(exc, path, document, checked) from None
    product, allowed, ports = data_api_outcome(path, document, value)
    decision_id = service.record(
        kind="opa",
        principal=caller_id or "anonymous",
        product=product,
        document={"path": path, "input": body.get("input")},
        allowed=allowed,
        result={"path": path, "defined": value is not None, "tables": ports},
        revision=revision,
    )
    if value is None:
        return JSONResponse({})
    return JSONResponse({"result": value, "decision_id": decision_id})


@router.post("/{path:path}", openapi_extra=INPUT_SCHEMA)
async def post_data(path: str, request: Request) -> JSONResponse:
    """Evaluate ``data.<path>`` with ``input``; ``{}`` when undefined (OPA's Data API).

    Trino calls this several times per query: app state is read directly (no dependencies).
    """
    service: Service = request.app.state.service
    tokens: TokenRegistry = request.app.state.tokens
    caller: Principal | None = None
    header = request.headers.get("authorization")
    if header is not None or not request.app.state.settings.data_api_anonymous:
        caller = tokens.authenticate(header)
    body = await _json_body(request)
    return await _answer(path, body, service, tokens, caller)


@router.get("/{path:path}")
async def get_data(
    path: str,
    service: ServiceDep,
    tokens: TokensDep,
    caller: OptionalCallerDep,
    input: Annotated[str | None, Query(description="JSON-encoded input document")] = None,
) -> JSONResponse:
    """Evaluate ``data.<path>`` (``input`` as a JSON query parameter, as OPA accepts)."""
    body: dict[str, Any] = {}
    if input is not None:
        try:
            body["input"] = json.loads(input)
        except ValueError:
            raise InputError("the input query parameter is not valid JSON") from None
    return await _answer(path, body, service, tokens, caller)
