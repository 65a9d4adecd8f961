"""Secure view substitution: each port table becomes ``(SELECT <visible, masked> FROM t WHERE f)``.

Masks and filters therefore apply before any predicate, join, group or order of the user's query,
as Trino, Ranger and Databricks apply them (filter on raw values, then mask).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from meshgov.core.principal import Principal
from meshgov.core.sql.filters import bind_filter, combine_filters
from meshgov.core.sql.masks import mask_expression
from meshgov.core.sql.model import AccessDecision, PortRef
from meshgov.errors import AccessDenied

SECURE_MARK = "meshgov_secure_view"


def physical_table(port: PortRef) -> exp.Table:
    """The port's physical table, every part quoted as declared in the catalogue."""
    *qualifiers, name = port.table
    db = qualifiers[-1] if qualifiers else None
    catalog = qualifiers[-2] if len(qualifiers) > 1 else None
    table = exp.table_(name, db=db, catalog=catalog, quoted=True)
    table.meta[SECURE_MARK] = True
    return table


@lru_cache(maxsize=64)
def _fold_for(write: str) -> bool:
    """Whether ``write`` folds unquoted names to upper case (Snowflake): quote them that way."""
    probe = exp.Identifier(this="a", quoted=False)
    return Dialect.get_or_raise(write).normalize_identifier(probe).name == "A"


class _SecureViewCache:
    """Built secure views per (port, decision, principal, dialect) and projected columns (None:
    all): callers get a copy."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], tuple[exp.Select, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tuple[exp.Select, str | None] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: tuple[exp.Select, str | None]) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


SECURE_VIEWS = _SecureViewCache(4096)


def secure_select(
    port: PortRef, decision: AccessDecision, principal: Principal, write: str
) -> exp.Select:
    """``SELECT <visible columns, masked> FROM <table> WHERE <row filters>`` for one port.

    Returns a fresh tree the caller may attach anywhere (the cached one is never handed out).
    """
    return secure_view(port, decision, principal, write)[0]


def secure_view(
    port: PortRef,
    decision: AccessDecision,
    principal: Principal,
    write: str,
    projected: frozenset[str] | None = None,
) -> tuple[exp.Select, str | None]:
    """The secure select (a fresh copy) and its row filter as SQL in ``write`` (None: none).

    ``projected``: the lower-cased column names the query can read from this table (None: all);
    the copy projects only those (at least one, so that the view stays valid SQL). Masks and
    filters are untouched: pruning only removes columns the query never reads.
    """
    key = (port, decision.fingerprint, principal.cache_key(), write)
    # The pruned views are cached too (a query shape reads the same columns every time): one
    # copy of a cached tree costs half as much as pruning a copy.
    found = SECURE_VIEWS.get((key, projected))
    if found is None:
        cached = SECURE_VIEWS.get((key, None))
        if cached is None:
            select = _build_secure_select(port, decision, principal, write)
            where = select.args.get("where")
            cached = (select, where.this.sql(dialect=write) if where else None)
            SECURE_VIEWS.put((key, None), cached)
        found = cached if projected is None else (_pruned(cached[0], projected), cached[1])
        if projected is not None:
            SECURE_VIEWS.put((key, projected), found)
    return found[0].copy(), found[1]


def _pruned(select: exp.Select, projected: frozenset[str]) -> exp.Select:
    """``select`` projecting only ``projected`` (at least one column: the view stays valid SQL)."""
    chosen = [p for p in select.expressions if p.alias_or_name.lower() in projected]
    # Every other part of the view (FROM, WHERE, whatever sqlglot names them) is copied as is.
    pruned = exp.Select(
        **{
            arg: value.copy() if isinstance(value, exp.Expr) else value
            for arg, value in select.args.items()
            if arg != "expressions" and value is not None
        }
    )
    pruned.set("expressions", [p.copy() for p in chosen or select.expressions[:1]])
    return pruned


def _build_secure_select(
    port: PortRef, decision: AccessDecision, principal: Principal, write: str
) -> exp.Select:
    projections: list[exp.Expr] = []
    for column in port.columns:
        key = column.name.lower()
        if key in decision.hidden_columns:
            continue
        mask = decision.masks.get(key)
        ref: exp.Expr = exp.column(column.name, quoted=True)
        if mask is not None:
            ref = exp.alias_(mask_expression(column, mask), column.name, quoted=True)
        projections.append(ref)
    if not projections:
        raise AccessDenied(f"table {port.table_name}: every column is hidden from this principal")
    select = exp.Select(expressions=projections).from_(physical_table(port), copy=False)
    if decision.row_filters:
        predicates = [bind_filter(f, principal, port) for f in decision.row_filters]
        select = select.where(combine_filters(predicates), copy=False)
    if _fold_for(write):
        # Catalogue names are unquoted names; quoted, they must be spelled as the engine folds them.
        for identifier in select.find_all(exp.Identifier):
            identifier.set("this", identifier.name.upper())
    return select


def substitute(table: exp.Table, secure: exp.Select, default_alias: exp.Identifier) -> exp.Subquery:
    """Replace ``table`` in its tree by ``(secure) AS <its alias, or its own name>``."""
    alias = table.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.this is not None:
        table_alias = alias.copy()
    else:
        table_alias = exp.TableAlias(this=default_alias.copy())
        if isinstance(alias, exp.TableAlias) and alias.columns:
            table_alias.set("columns", [c.copy() for c in alias.columns])
    subquery = exp.Subquery(this=secure, alias=table_alias)
    joins = table.args.get("joins")
    if joins:
        # `FROM (a JOIN b ON …)`: sqlglot hangs the joins on the first table; keep them.
        table.set("joins", None)
        subquery.set("joins", joins)
    table.replace(subquery)
    return subquery
