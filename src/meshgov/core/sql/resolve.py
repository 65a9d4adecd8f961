"""Account for every table reference: a CTE in scope, or a catalogue port; anything else denies.

Names are normalised the way the read dialect does (DuckDB folds even quoted names, PostgreSQL
keeps quoted case) and compared as tuples of parts, never as dotted strings. CTE visibility is
computed from the tree itself (a CTE sees the CTEs defined before it, itself only when RECURSIVE),
because sqlglot's scope traversal misses tables inside UNNEST(...) and similar places.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from meshgov.core.sql.model import PortRef, ResolvePort
from meshgov.core.sql.parse import _dialect
from meshgov.errors import SqlUnsupportedError, UnknownNameError


@dataclass(frozen=True)
class ResolvedTable:
    node: exp.Table
    parts: tuple[str, ...]
    port: PortRef


@lru_cache(maxsize=64)
def dialect_named(name: str) -> Dialect:
    """One shared Dialect instance per name (``get_or_raise`` builds a new one each call)."""
    return _dialect(name)


@lru_cache(maxsize=65_536)
def fold(dialect_name: str, name: str, quoted: bool) -> str:
    """An identifier as the dialect resolves it (case folding), memoised."""
    dialect = dialect_named(dialect_name)
    return dialect.normalize_identifier(exp.Identifier(this=name, quoted=quoted)).name


def normalized_name(identifier: exp.Expr, dialect: Dialect) -> str:
    if isinstance(identifier, exp.Identifier):
        return fold(_dialect_name(dialect), identifier.name, bool(identifier.quoted))
    return identifier.name.lower()


def _dialect_name(dialect: Dialect) -> str:
    return type(dialect).__name__.lower()


def _normalized(identifier: exp.Expr | None, dialect: Dialect) -> str | None:
    if identifier is None:
        return None
    if isinstance(identifier, exp.Identifier):
        return normalized_name(identifier, dialect)
    raise SqlUnsupportedError(f"unsupported table name part '{identifier.sql()}'")


def catalogue_key(identifier: exp.Identifier, dialect: Dialect) -> str:
    """The part as the catalogue spells it (lower case) when it names the same object.

    Catalogue names are unquoted lower-case names. A part matches one when the dialect resolves
    both to the same object: e.g. ``CUSTOMERS`` in Snowflake (folded to upper case, like the
    catalogue's unquoted name) matches, ``"Customers"`` in PostgreSQL (kept as written) does not.
    """
    name = _dialect_name(dialect)
    normalized = fold(name, identifier.name, bool(identifier.quoted))
    as_catalogue = fold(name, normalized.lower(), False)
    if normalized == as_catalogue:
        return normalized.lower()
    # Not the catalogue's object: a key that no port has.
    return '"' + normalized + '"'


def table_parts(table: exp.Table, dialect: Dialect) -> tuple[str, ...]:
    """``(catalog, db, name)`` as present, as catalogue keys for the dialect."""
    parts: list[str] = []
    for key in ("catalog", "db", "this"):
        value = table.args.get(key)
        if value is None:
            continue
        if isinstance(value, exp.Dot):
            raise SqlUnsupportedError(f"table name '{table.sql()}' has too many parts")
        if not isinstance(value, exp.Identifier):
            raise SqlUnsupportedError(f"unsupported table name part '{value.sql()}'")
        name = catalogue_key(value, dialect)
        if name == "" or name != name.strip():
            raise SqlUnsupportedError(f"invalid table name '{table.sql()}'")
        parts.append(name)
    return tuple(parts)


def _cte_name(cte: exp.CTE, dialect: Dialect) -> str:
    return _normalized(cte.args["alias"].this, dialect) or ""


def _is_cte_reference(table: exp.Table, dialect: Dialect) -> bool:
    """True when ``table`` is a single-part name bound to a CTE visible at its position."""
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        return False
    name = _normalized(table.this, dialect)
    child: exp.Expr = table
    parent = table.parent
    while parent is not None:
        with_clause = parent.args.get("with_") or parent.args.get("with")
        if isinstance(parent, exp.With):
            # We came up from inside one CTE's body: earlier siblings (and itself if recursive).
            assert isinstance(child, exp.CTE)
            ctes = parent.expressions
            index = next(i for i, c in enumerate(ctes) if c is child)
            visible = ctes[: index + 1] if parent.args.get("recursive") else ctes[:index]
            if any(_cte_name(c, dialect) == name for c in visible):
                return True
        elif (
            isinstance(with_clause, exp.With)
            and child is not with_clause
            and any(_cte_name(c, dialect) == name for c in with_clause.expressions)
        ):
            return True
        child, parent = parent, parent.parent
    return False


def resolve_tables(
    tables: list[exp.Table], dialect_name: str, resolve_port: ResolvePort
) -> list[ResolvedTable]:
    """Every non-CTE table among ``tables`` (all of a statement's) resolved to its port.

    Raises:
        SqlUnsupportedError: a table is neither a CTE in scope nor a known port.
    """
    dialect = dialect_named(dialect_name)
    resolved: list[ResolvedTable] = []
    for table in tables:
        if _is_cte_reference(table, dialect):
            continue
        parts = table_parts(table, dialect)
        port = resolve_port(parts)
        if port is None:
            shown = ".".join(parts)
            raise UnknownNameError(
                f"unknown table '{shown}': it is not an output port of any product in the "
                "catalogue (system catalogues, files and other tables cannot be read)",
                shown,
                "table",
            )
        resolved.append(ResolvedTable(table, parts, port))
    return resolved
