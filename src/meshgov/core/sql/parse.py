"""Parse exactly one statement in the read dialect; nothing else is ever forwarded."""

from __future__ import annotations

import logging
from functools import lru_cache

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError

from meshgov.errors import SqlDialectError, SqlParseError, SqlUnsupportedError

# sqlglot logs unsupported syntax with the user's SQL; the denial reason is the only report.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

MAX_SQL_CHARS = 200_000
# Caps the AST so that a hostile query cannot make the gateway spend unbounded memory or time.
MAX_NODES = 50_000

DIALECTS = frozenset(
    {"duckdb", "postgres", "trino", "presto", "spark", "databricks", "snowflake", "bigquery"}
)


@lru_cache(maxsize=64)
def _dialect(name: str) -> Dialect:
    """One shared instance per dialect (``get_or_raise`` builds a new one on every call); Spark
    is sqlglot's with meshgov's corrections (``spark_dialect``)."""
    if name == "spark":
        from meshgov.core.sql.spark_dialect import MeshgovSpark

        return MeshgovSpark()
    return Dialect.get_or_raise(name)


def check_dialect(name: str, place: str = "dialect") -> str:
    """The canonical name of a dialect meshgov reads and writes (``postgresql`` is ``postgres``).

    Anything else is a usage error (``SqlDialectError``: exit 2, HTTP 400) whose message names
    ``place`` (the option or field that carried it) and the allowed dialects; never a denial.
    """
    canonical = name.lower()
    if canonical == "postgresql":
        canonical = "postgres"
    if canonical not in DIALECTS:
        raise SqlDialectError(
            f"{place}: unknown SQL dialect {name!r}; use one of {', '.join(sorted(DIALECTS))}"
            " (postgresql = postgres)"
        )
    return canonical


def parse_statement(sql: str, dialect: str) -> exp.Expr:
    """The single statement of ``sql``.

    Raises:
        SqlParseError: not parseable, empty, too large.
        SqlUnsupportedError: more than one statement.
    """
    if len(sql) > MAX_SQL_CHARS:
        raise SqlParseError(f"query is {len(sql)} characters, over the {MAX_SQL_CHARS} limit")
    try:
        statements = [s for s in _dialect(dialect).parse(sql, max_nodes=MAX_NODES) if s is not None]
    except (ParseError, TokenError) as exc:
        raise SqlParseError(f"cannot parse the query as {dialect}: {_first_line(exc)}") from None
    except RecursionError:
        raise SqlParseError("query is nested too deeply") from None
    if not statements:
        raise SqlParseError("empty query")
    if len(statements) > 1:
        raise SqlUnsupportedError(
            f"exactly one statement is allowed, found {len(statements)} (separated by ';')"
        )
    statement = statements[0]
    if isinstance(statement, exp.Block):
        raise SqlUnsupportedError("exactly one statement is allowed (found a block)")
    return statement


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


__all__ = ["DIALECTS", "check_dialect", "parse_statement"]
