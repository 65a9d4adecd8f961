"""Executing a query through the gateway: authorize and rewrite, run the secure SQL, return Arrow.

This is the one path by which user SQL reaches an engine (the CLI and the HTTP service both call
``execute_query``): only SQL the gateway generated from a rewritten tree is ever sent, in the
engine's own dialect, and a denial raises ``AccessDenied`` before the engine is touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from meshgov.errors import AccessDenied, InputError, SqlParseError, SqlUnsupportedError

# Results as bytes live in meshgov.results; these names stay importable from here.
from meshgov.results import ResultFormat as ResultFormat
from meshgov.results import records as records
from meshgov.results import render_text_table as render_text_table
from meshgov.results import serialize as serialize
from meshgov.results import unique_names as unique_names

if TYPE_CHECKING:
    import pyarrow as pa

    from meshgov.core.principal import Principal
    from meshgov.engines.base import QueryEngine, ResultStream

T = TypeVar("T")


class Authorizer(Protocol):
    """What execution needs of ``meshgov.gateway.Gateway``."""

    def authorize(
        self,
        sql: str,
        principal: Principal,
        purpose: str | None,
        read_dialect: str,
        write_dialect: str,
        *,
        engine_barrier: bool = False,
    ) -> Any: ...


@dataclass(frozen=True)
class QueryResult:
    """The rows, and the authorization (decisions per table) that produced the SQL that ran."""

    table: pa.Table
    authorization: Any
    engine: str
    elapsed_ms: float


def execute_query(
    gateway: Authorizer,
    engine: QueryEngine,
    sql: str,
    principal: Principal,
    purpose: str | None = None,
    read_dialect: str | None = None,
) -> QueryResult:
    """Authorize ``sql`` for ``principal``/``purpose``, run the rewritten SQL on ``engine``.

    Raises ``AccessDenied`` (naming what and why) on a denial, ``QueryFailed`` when the engine
    fails the query (with no engine text), ``BackendUnavailable`` when the engine is unreachable.
    """
    started = time.perf_counter()
    authorization = gateway.authorize(
        sql,
        principal,
        purpose,
        read_dialect or engine.dialect,
        engine.dialect,
        engine_barrier=structural_barrier(engine),
    )
    if not getattr(authorization, "allowed", False):
        reason = str(getattr(authorization, "reason", None) or "access denied")
        # Unparseable SQL is invalid input (exit 2); every other refusal is a denial (exit 3).
        if getattr(authorization, "code", None) == SqlParseError.code:
            raise SqlParseError(reason)
        if getattr(authorization, "code", None) == SqlUnsupportedError.code:
            raise SqlUnsupportedError(reason)
        raise AccessDenied(reason)
    secure_sql = getattr(authorization, "sql", None)
    if not secure_sql:
        raise AccessDenied("the gateway returned no SQL to run")
    table = run_secure_sql(engine, secure_sql)
    return QueryResult(
        table=table,
        authorization=authorization,
        engine=engine.name,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def structural_barrier(engine: QueryEngine) -> bool:
    """Whether ``engine`` runs every row-filtered secure view behind a barrier that orders the
    filter first (``structural_barrier``; an engine that does not say so has none)."""
    return getattr(engine, "structural_barrier", False) is True


def run_secure_sql(engine: QueryEngine, secure_sql: str) -> pa.Table:
    """Run SQL the gateway generated; when a name does not bind, say which column, from the SQL.

    The engine's own message is withheld (it can carry values); sqlglot resolves the secure SQL
    again and names the column reference that no table or subquery in its scope provides.
    """
    return _diagnosed(engine, secure_sql, lambda: engine.execute(secure_sql))


def run_secure_stream(engine: QueryEngine, secure_sql: str) -> ResultStream:
    """``run_secure_sql``, batch by batch (``ResultStream``): the wire sends rows as they come."""
    from meshgov.engines.base import execute_stream

    return _diagnosed(engine, secure_sql, lambda: execute_stream(engine, secure_sql))


def _diagnosed(engine: QueryEngine, secure_sql: str, run: Callable[[], T]) -> T:
    from meshgov.core.sql.diagnose import unresolved_column
    from meshgov.engines.base import QueryFailed

    try:
        return run()
    except QueryFailed as exc:
        # DuckDB reports unknown columns as binder ("type") errors, PostgreSQL as unknown names.
        if exc.kind not in {"unknown name", "type error"}:
            raise
        problem = unresolved_column(secure_sql, engine.dialect)
        if problem is None:
            raise
        raise QueryFailed(problem, "unknown name") from None


def parse_format(value: str) -> ResultFormat:
    try:
        return ResultFormat(value)
    except ValueError:
        raise InputError(
            f"unknown format {value!r}: use {', '.join(f.value for f in ResultFormat)}"
        ) from None
