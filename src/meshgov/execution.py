"""Executing a query through the gateway: authorize and rewrite, run the secure SQL, return Arrow.

This is the one path by which user SQL reaches an engine (the CLI and the HTTP service both call
``execute_query``): only SQL the gateway generated from a rewritten tree is ever sent, in the
engine's own dialect, and a denial raises ``AccessDenied`` before the engine is touched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from meshgov.errors import AccessDenied, InputError, SqlParseError, SqlUnsupportedError

if TYPE_CHECKING:
    import pyarrow as pa

    from meshgov.core.principal import Principal
    from meshgov.engines.base import QueryEngine


class ResultFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    arrow = "arrow"


class Authorizer(Protocol):
    """What execution needs of ``meshgov.gateway.Gateway``."""

    def authorize(
        self,
        sql: str,
        principal: Principal,
        purpose: str | None,
        read_dialect: str,
        write_dialect: str,
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
        sql, principal, purpose, read_dialect or engine.dialect, engine.dialect
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


def run_secure_sql(engine: QueryEngine, secure_sql: str) -> pa.Table:
    """Run SQL the gateway generated; when a name does not bind, say which column, from the SQL.

    The engine's own message is withheld (it can carry values); sqlglot resolves the secure SQL
    again and names the column reference that no table or subquery in its scope provides.
    """
    from meshgov.core.sql.diagnose import unresolved_column
    from meshgov.engines.base import QueryFailed

    try:
        return engine.execute(secure_sql)
    except QueryFailed as exc:
        # DuckDB reports unknown columns as binder ("type") errors, PostgreSQL as unknown names.
        if exc.kind not in {"unknown name", "type error"}:
            raise
        problem = unresolved_column(secure_sql, engine.dialect)
        if problem is None:
            raise
        raise QueryFailed(problem, "unknown name") from None


def serialize(table: pa.Table, result_format: ResultFormat | str) -> bytes:
    """An Arrow table as bytes: ``arrow`` (IPC stream), ``csv``, ``json`` (records) or ``table``."""
    import pyarrow as pa

    fmt = ResultFormat(result_format)
    if fmt is ResultFormat.arrow:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue().to_pybytes())
    if fmt is ResultFormat.csv:
        import pyarrow.csv as pa_csv

        sink = pa.BufferOutputStream()
        try:
            pa_csv.write_csv(table, sink)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            # Nested columns have no CSV form; write them as JSON text.
            return _csv_fallback(table)
        return bytes(sink.getvalue().to_pybytes())
    if fmt is ResultFormat.json:
        return json.dumps(records(table), default=str, ensure_ascii=False).encode() + b"\n"
    return render_text_table(table).encode()


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts (duplicate column names get a ``_2``, ``_3``… suffix)."""
    names = unique_names(table.column_names)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out: list[str] = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        out.append(name if count == 1 else f"{name}_{count}")
    return out


def render_text_table(table: pa.Table) -> str:
    """A plain-text grid for terminals."""
    names = unique_names(table.column_names)
    cells = [[_cell(v) for v in table.column(i).to_pylist()] for i in range(table.num_columns)]
    widths = [max([len(n), *(len(c) for c in col)]) for n, col in zip(names, cells, strict=True)]
    lines = [
        " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    for row in zip(*cells, strict=True) if cells else []:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    lines.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _csv_fallback(table: pa.Table) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.column_names)
    for row in records(table):
        writer.writerow(
            "" if v is None else (json.dumps(v, default=str) if isinstance(v, dict | list) else v)
            for v in row.values()
        )
    return buffer.getvalue().encode()


def parse_format(value: str) -> ResultFormat:
    try:
        return ResultFormat(value)
    except ValueError:
        raise InputError(
            f"unknown format {value!r}: use {', '.join(f.value for f in ResultFormat)}"
        ) from None
