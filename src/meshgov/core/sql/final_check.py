"""The generated SQL, checked again as the engine will run it.

Safety decided on the source tree misses what transpilation does: sqlglot writes ``TRY_CAST`` as a
plain ``CAST`` for PostgreSQL (and BigQuery's ``SAFE_CAST``, Spark's or Trino's ``TRY_CAST`` for
engines without one), may spell a function or a type differently, and the source tree never shows
where the secure views ended up. So the SQL that will actually run is parsed again in the target
dialect and every check that matters is repeated on that tree:

- the node, function and data-type allow-lists (``validate.py``), on everything but the secure
  views themselves (their masks and filters are the gateway's own);
- every protected table sits in one of the secure views this rewrite built, unchanged — wherever
  it is in the tree — and every other table is a CTE;
- fallible expressions over row-filtered tables (``barrier.py``).

Called once, from ``rewrite.py``, after generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from sqlglot import exp
from sqlglot.errors import SqlglotError

from meshgov.core.sql.barrier import check_fallible
from meshgov.core.sql.kinds import QueryColumns
from meshgov.core.sql.parse import MAX_NODES, _dialect
from meshgov.core.sql.validate import validate
from meshgov.errors import SqlUnsupportedError


def secure_view_text(select: exp.Select, write: str) -> exp.Expr:
    """A secure view as the final tree will show it: generated and parsed again (cached by its
    text: the same views recur in every query of a principal)."""
    return _read_back(select.sql(dialect=write, comments=False), write)


@lru_cache(maxsize=4096)
def _read_back(text: str, write: str) -> exp.Expr:
    return _parse_one(text, write)


def check_generated(
    sql: str,
    write: str,
    secure_views: Iterable[exp.Expr],
    protected: Iterable[tuple[str, ...]],
    filtered: list[str],
    columns: QueryColumns,
) -> None:
    """Deny unless the generated ``sql`` (dialect ``write``) passes the checks above.

    ``secure_views``: the secure selects this rewrite built, as ``secure_view_text`` gives them
    (compared by structure, as sqlglot compares trees);
    ``protected``: the physical name parts of every port table (lower case); ``filtered``: the
    names of the row-filtered tables in the query (empty: no fallible-expression check);
    ``columns``: as for ``check_fallible``.
    """
    statement = _parse_one(sql, write)
    expected = set(secure_views)
    physical = {tuple(parts) for parts in protected}
    secure: set[int] = set()
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if table.args.get("db") is None and table.name.lower() in ctes:
            continue  # a CTE reference (the rewriter resolved names by scope)
        if not _is_protected(table, physical):
            continue
        select = table.parent.parent if isinstance(table.parent, exp.From) else None
        holder = select.parent if isinstance(select, exp.Select) else None
        if (
            not isinstance(select, exp.Select)
            or not isinstance(holder, exp.Subquery)
            or select not in expected
        ):
            raise SqlUnsupportedError(
                f"the generated {write} SQL reads table '{table.sql(dialect=write)}' outside "
                "its secure view; denied"
            )
        secure.add(id(select))
    inventory = validate(statement, write, opaque=frozenset(secure))
    for table in inventory.tables:
        if table.args.get("db") is not None or table.name.lower() not in ctes:
            raise SqlUnsupportedError(
                f"the generated {write} SQL reads '{table.sql(dialect=write)}', which is neither "
                "a CTE nor a secure view; denied"
            )
    if filtered and inventory.fallible:
        try:
            check_fallible(statement, inventory, filtered, columns, write)
        except SqlUnsupportedError as exc:
            raise SqlUnsupportedError(
                f"{exc.message} (as the query is written for {write})"
            ) from None


def _is_protected(table: exp.Table, physical: set[tuple[str, ...]]) -> bool:
    parts = tuple(p.name.lower() for p in table.parts)
    # A reference may be qualified less or more than the catalogue's name: match on suffixes.
    return any(parts[-len(known) :] == known or known[-len(parts) :] == parts for known in physical)


def _parse_one(sql: str, dialect: str) -> exp.Expr:
    try:
        # Generated from a tree capped at MAX_NODES; secure views add a bounded number of nodes.
        parsed = [s for s in _dialect(dialect).parse(sql, max_nodes=4 * MAX_NODES) if s is not None]
    except (SqlglotError, RecursionError):
        parsed = []
    if len(parsed) != 1:
        raise SqlUnsupportedError(
            f"the generated {dialect} SQL cannot be read back as one {dialect} query; denied"
        )
    return parsed[0]
