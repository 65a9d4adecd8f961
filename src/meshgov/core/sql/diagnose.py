"""Naming the column at fault when an engine cannot bind secure SQL.

Engine error text is never shown to users (it can carry values). When an engine rejects a query
because a name does not bind, sqlglot resolves the secure SQL again to find the column reference
that no table in its scope provides. In secure SQL every product table is a secure view with an
explicit column list, so scopes resolve without a schema; the views' own bodies (a physical table
each) are not checked. The answer names only an identifier the user wrote.
"""

from __future__ import annotations

from sqlglot import exp, parse_one
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

_UNKNOWN_PREFIX = "Unknown column: "


def unresolved_column(sql: str, dialect: str) -> str | None:
    """What is wrong with the first column reference of ``sql`` that does not bind, else None:
    ``column 'x' does not exist …`` or ``column 'x' is ambiguous …``."""
    try:
        tree = parse_one(sql, read=dialect)
    except (SqlglotError, RecursionError, ValueError):
        return None
    resolved = True
    try:
        qualify(tree, dialect=dialect, validate_qualify_columns=False, identify=False)
    except OptimizeError as exc:
        # Raised for `alias.column` when the aliased source has no such column.
        text = str(exc)
        name = text.removeprefix(_UNKNOWN_PREFIX).strip()
        if text.startswith(_UNKNOWN_PREFIX) and name:
            return _missing(name)
        resolved = False  # e.g. a correlated reference into a view body: check what can be
    except (SqlglotError, RecursionError, ValueError):
        resolved = False
    for scope in traverse_scope(tree):
        if not isinstance(scope.expression, exp.Select):
            continue
        sources = scope.sources.values()
        if sources and all(isinstance(source, exp.Table) for source in sources):
            continue  # a secure view's body, or a query over tables sqlglot has no schema for
        for column in scope.columns:
            source = scope.sources.get(column.table)
            if (
                isinstance(source, Scope)
                and isinstance(source.expression, exp.Query)
                and not source.expression.is_star
                and column.name.lower() not in _names(source.expression)
            ):
                return _missing(column.name)
        if not resolved:
            continue
        unresolved = list(scope.unqualified_columns)
        if not unresolved and not scope.is_correlated_subquery:
            unresolved = list(scope.external_columns)
        if unresolved:
            name = unresolved[0].name
            having = sorted(
                alias
                for alias, source in scope.sources.items()
                if isinstance(source, Scope)
                and isinstance(source.expression, exp.Query)
                and name.lower() in _names(source.expression)
            )
            if len(having) > 1:
                return f"column '{name}' is ambiguous: {', '.join(having)} all have it; qualify it"
            return _missing(name)
    return None


def _names(query: exp.Query) -> set[str]:
    # Case-insensitively: only claim a column is missing when no spelling of it is there.
    return {name.lower() for name in query.named_selects}


def _missing(name: str) -> str:
    return f"column '{name}' does not exist in the tables and subqueries it can come from"
