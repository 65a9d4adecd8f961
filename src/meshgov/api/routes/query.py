"""``POST /v1/query/authorize`` (secure SQL and decision), ``/v1/query/execute`` (Arrow, JSON)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from meshgov.api.deps import CallerDep, CpuDep, ServiceDep, service_and_caller
from meshgov.api.fast_authorize import authorize_body
from meshgov.api.offload import CpuPool
from meshgov.api.security import require_self
from meshgov.config import Settings
from meshgov.errors import SqlDialectError
from meshgov.gateway import sql_dialect
from meshgov.limits import check_size

router = APIRouter(prefix="/v1/query", tags=["query"])

ARROW_STREAM = "application/vnd.apache.arrow.stream"
JSON = "application/json"
# The model's bound; the configured budget (MESHGOV_MAX_SQL_CHARS, 413 past it) is checked first.
MAX_SQL_CHARS = 10_000_000


def check_sql_size(settings: Settings, sql: str) -> None:
    check_size(len(sql), settings.max_sql_chars, "the query", "MESHGOV_MAX_SQL_CHARS", "characters")


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
        413: {"description": "the query is longer than MESHGOV_MAX_SQL_CHARS"},
        422: {"description": "the request exceeded its time budget (time_budget_exceeded)"},
    },
)
async def authorize(request: AuthorizeRequest, http: Request) -> Response:
    """The secure SQL for the caller (masked, filtered), or a denial that says what and why.

    A denial is still HTTP 200 with ``allowed: false``: the request itself was valid. Invalid
    input is 400: unparseable SQL (``invalid_sql``), an unknown ``dialect`` or ``to``.
    A cached authorization is answered on the event loop; others are computed on the worker
    pool within the time budget. Well-formed requests are answered by
    ``meshgov.api.fast_authorize`` in front of FastAPI (same service call, same bytes); this
    route serves the rest, and its errors.
    """
    service, caller = service_and_caller(http)
    require_self(caller, request.principal)
    check_sql_size(service.settings, request.sql)
    pool: CpuPool = http.app.state.cpu
    arguments = (caller, request.sql, request.purpose, request.dialect, request.to)
    if service.state.gateway.cached(*arguments) is not None:
        authorization, decision_id, state = service.authorize(*arguments)
    else:
        authorization, decision_id, state = await pool.run(service.authorize, *arguments)
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
        413: {"description": "the query is longer than MESHGOV_MAX_SQL_CHARS"},
        422: {
            "description": "a limit was reached: result rows or bytes (result_too_large), "
            "engine memory (limit_exceeded) or time (time_budget_exceeded); the body names it"
        },
    },
)
async def execute(
    request: ExecuteRequest,
    service: ServiceDep,
    caller: CallerDep,
    pool: CpuDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Run the query through the gateway on the configured engine; rows come back masked and
    filtered. Arrow IPC stream unless ``format: json`` or ``Accept: application/json``.

    The result is capped (``MESHGOV_RESULT_MAX_ROWS``, ``MESHGOV_RESULT_MAX_BYTES``): a query
    past a cap is stopped and answered 422 ``result_too_large`` naming it, never truncated.
    The body is encoded batch by batch on the worker pool while it is sent.
    """
    from meshgov.results import arrow_stream_chunks, json_result_chunks

    require_self(caller, request.principal)
    check_sql_size(service.settings, request.sql)
    wants_json = request.format == "json" or (
        request.format is None
        and accept is not None
        and "application/json" in accept
        and ARROW_STREAM not in accept
    )
    table, authorization, decision_id = await pool.run(
        service.execute, caller, request.sql, request.purpose, request.dialect
    )
    headers = {
        "X-Meshgov-Decision-Id": decision_id,
        "X-Meshgov-Policy-Revision": authorization.policy_revision,
        "X-Meshgov-Result-Rows": str(table.num_rows),
    }
    if not authorization.allowed:  # execute raises first; kept as a guard
        raise authorization.refusal()
    if wants_json:
        # Strict JSON: dates, decimals and timestamps as their text form, NaN and infinities as
        # strings (JSON has no such values; meshgov.results).
        chunks = json_result_chunks(
            table, {"decision": authorization.decision(), "decision_id": decision_id}
        )
        return StreamingResponse(_on_pool(pool, chunks), media_type=JSON, headers=headers)
    return StreamingResponse(
        _on_pool(pool, arrow_stream_chunks(table)), media_type=ARROW_STREAM, headers=headers
    )


async def _on_pool(pool: CpuPool, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each chunk encoded on the worker pool (one batch of rows at a time)."""
    done = object()
    while True:
        chunk = await pool.run(next, chunks, done)
        if chunk is done:
            return
        yield cast("bytes", chunk)
