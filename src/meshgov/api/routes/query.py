"""``POST /v1/query/authorize`` (secure SQL and decision), ``/v1/query/execute`` (Arrow, JSON)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from meshgov.api.deps import CallerDep, ServiceDep, service_and_caller
from meshgov.api.fast_authorize import authorize_body
from meshgov.api.security import require_self
from meshgov.errors import SqlDialectError
from meshgov.gateway import sql_dialect

router = APIRouter(prefix="/v1/query", tags=["query"])

ARROW_STREAM = "application/vnd.apache.arrow.stream"
JSON = "application/json"
MAX_SQL_CHARS = 100_000


def _known_dialect(value: str | None) -> str | None:
    """An unknown dialect is a 400 naming the allowed ones (kept as sent: it is logged so)."""
    if value is not None:
        try:
            sql_dialect(value, "dialect")
        except SqlDialectError as exc:
            message = exc.message.removeprefix("dialect: ")
            raise PydanticCustomError("invalid_dialect", message) from None
    return value


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    _dialect_is_known = field_validator("dialect")(_known_dialect)

    sql: Annotated[str, Field(min_length=1, max_length=MAX_SQL_CHARS)]
    purpose: Annotated[str | None, Field(max_length=128)] = None
    dialect: Annotated[str | None, Field(max_length=32, description="dialect of `sql`")] = None
    principal: Annotated[
        str | None,
        Field(
            max_length=256, description="must be the caller's own id (queries run as the caller)"
        ),
    ] = None


class AuthorizeRequest(QueryRequest):
    to: Annotated[str | None, Field(max_length=32, description="dialect of the secure SQL")] = None

    _to_is_known = field_validator("to")(_known_dialect)


class ExecuteRequest(QueryRequest):
    format: Literal["arrow", "json"] | None = None


class AuthorizeResponse(BaseModel):
    allowed: bool
    sql: str | None
    decision: dict[str, Any]
    decision_id: str
    revision: str


@router.post(
    "/authorize",
    response_model=None,
    responses={
        200: {"model": AuthorizeResponse, "description": "the secure SQL or a denial"},
        400: {"description": "invalid input: unparseable SQL, unknown dialect, malformed body"},
    },
)
async def authorize(request: AuthorizeRequest, http: Request) -> Response:
    """The secure SQL for the caller (masked, filtered), or a denial that says what and why.

    A denial is still HTTP 200 with ``allowed: false``: the request itself was valid. Invalid
    input is 400: unparseable SQL (``invalid_sql``), an unknown ``dialect`` or ``to``.
    Runs on the event loop: decisions and rewrites are cached and take microseconds when warm.
    Well-formed requests are answered by ``meshgov.api.fast_authorize`` in front of FastAPI
    (same service call, same bytes); this route serves the rest, and its errors.
    """
    service, caller = service_and_caller(http)
    require_self(caller, request.principal)
    authorization, decision_id, state = service.authorize(
        caller, request.sql, request.purpose, request.dialect, request.to
    )
    return Response(authorize_body(state, authorization, decision_id), media_type=JSON)


@router.post(
    "/execute",
    response_model=None,
    responses={
        200: {
            "content": {ARROW_STREAM: {}, "application/json": {}},
            "description": "Arrow IPC stream (default) or JSON records",
        },
        400: {"description": "invalid input: unparseable SQL, unknown dialect, malformed body"},
        403: {"description": "denied: the body says which table or column and which rule"},
    },
)
async def execute(
    request: ExecuteRequest,
    service: ServiceDep,
    caller: CallerDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Run the query through the gateway on the configured engine; rows come back masked and
    filtered. Arrow IPC stream unless ``format: json`` or ``Accept: application/json``.
    """
    from meshgov.results import json_bytes, records, serialize

    require_self(caller, request.principal)
    wants_json = request.format == "json" or (
        request.format is None
        and accept is not None
        and "application/json" in accept
        and ARROW_STREAM not in accept
    )
    table, authorization, decision_id = await run_in_threadpool(
        service.execute, caller, request.sql, request.purpose, request.dialect
    )
    headers = {
        "X-Meshgov-Decision-Id": decision_id,
        "X-Meshgov-Policy-Revision": authorization.policy_revision,
    }
    if wants_json:
        document = {
            "columns": [f.name for f in table.schema],
            "rows": records(table),
            "decision": authorization.decision(),
            "decision_id": decision_id,
        }
        # Strict JSON: dates, decimals and timestamps as their text form, NaN and infinities as
        # strings (JSON has no such values; meshgov.results).
        body = json_bytes(document)
        return Response(body, media_type="application/json", headers=headers)
    if not authorization.allowed:  # execute raises first; kept as a guard
        raise authorization.refusal()
    return Response(serialize(table, "arrow"), media_type=ARROW_STREAM, headers=headers)
