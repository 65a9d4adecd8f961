"""The rewriter: parse → validate → resolve → decide → check columns → substitute → generate.

Every failure in any pass is a denial (``AccessDenied`` or ``InputError``); the caller never gets
the unrewritten query, and only SQL generated from the rewritten tree leaves this module.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from meshgov.core.manifest import LogicalType
from meshgov.core.principal import Principal
from meshgov.core.sql.barrier import check_fallible
from meshgov.core.sql.dialect_pairs import translate
from meshgov.core.sql.final_check import check_generated, secure_view_text
from meshgov.core.sql.kinds import QueryColumns
from meshgov.core.sql.model import (
    AccessDecision,
    Decide,
    PortRef,
    ResolvePort,
    RewrittenQuery,
    TableAccess,
)
from meshgov.core.sql.names import check_column_names, nearest_name
from meshgov.core.sql.parse import check_dialect, parse_statement
from meshgov.core.sql.pivot import rewrite_pivots
from meshgov.core.sql.resolve import (
    ResolvedTable,
    catalogue_key,
    dialect_named,
    normalized_name,
    resolve_tables,
)
from meshgov.core.sql.secure_views import secure_view, substitute
from meshgov.core.sql.star_columns import VisibleColumns, expand_columns, has_columns
from meshgov.core.sql.validate import Inventory, validate
from meshgov.errors import (
    AccessDenied,
    Location,
    MeshgovError,
    SqlUnsupportedError,
    UnknownNameError,
)


def rewrite(
    sql: str,
    *,
    read: str,
    write: str | None = None,
    resolve_port: ResolvePort,
    decide: Decide,
    principal: Principal,
    engine_barrier: bool = False,
) -> RewrittenQuery:
    """Rewrite ``sql`` (dialect ``read``) into secure SQL in dialect ``write`` (default ``read``).

    ``engine_barrier``: the SQL goes to an engine that runs every row-filtered secure view behind
    a barrier that orders the filter before anything of the query (PostgreSQL's
    ``security_barrier`` views, see ``engines/base.prepare_query``). Then no expression of the
    query can see a filtered-out row, and expressions that can fail on a value are served
    wherever they are; without it (SQL handed to a caller, DuckDB) they are denied outside the
    positions ``barrier.py`` describes. Every other check is the same.

    Raises:
        AccessDenied: the query, or a table or column in it, is not allowed; the message says
            what and why.
        InputError: the query cannot be parsed.
    """
    try:
        return _rewrite(sql, read, write or read, resolve_port, decide, principal, engine_barrier)
    except MeshgovError:
        raise
    except RecursionError:
        raise SqlUnsupportedError("query is nested too deeply") from None
    except Exception as exc:  # any fault in any pass denies
        raise AccessDenied(
            f"the query could not be rewritten safely ({type(exc).__name__}); denied"
        ) from None


def _rewrite(
    sql: str,
    read: str,
    write: str,
    resolve_port: ResolvePort,
    decide: Decide,
    principal: Principal,
    engine_barrier: bool,
) -> RewrittenQuery:
    read = check_dialect(read)
    write = check_dialect(write)
    dialect = dialect_named(read)
    statement = parse_statement(sql, read)
    if read == "duckdb":
        statement = rewrite_pivots(statement)
    inventory = validate(statement, read)
    if read != write:
        # Quoted names folded as the read dialect resolves them (DuckDB "EMAIL" is email), so
        # that a case-sensitive target (PostgreSQL) resolves them the same way.
        normalize_identifiers(statement, dialect=read)
    tables = resolve_tables(inventory.tables, read, resolve_port)
    _check_no_column_lists(tables)

    decisions: dict[tuple[str, str], AccessDecision] = {}
    for table in tables:
        key = (table.port.product, table.port.port)
        if key not in decisions:
            decision = decide(table.port)
            if not decision.allow:
                why = "; ".join(decision.reasons) or "no grant allows it"
                raise AccessDenied(
                    f"access to table '{table.port.table_name}' "
                    f"({table.port.product}:{table.port.port}) denied: {why}",
                    Location(product=table.port.product, port=table.port.port),
                )
            decisions[key] = decision

    if has_columns(statement):
        expand_columns(statement, _visible_columns(tables, decisions))
        inventory = validate(statement, read)
    tree_dialect = read  # the dialect the tree's own function names are in
    if read != write and translate(statement, read, write, _column_types(tables, inventory)):
        inventory = validate(statement, write)  # the translated tree is the one checks see
        tree_dialect = write
    _check_hidden_columns(inventory, tables, decisions, dialect)
    try:
        check_column_names(inventory.columns, inventory.ctes, {id(t.node): t.port for t in tables})
    except UnknownNameError as exc:
        # Only columns the principal may see (not hidden) of the query's tables are suggested.
        visible = [
            column.name
            for table in tables
            for column in table.port.columns
            if column.name.lower() not in {h.lower() for h in decisions[_key(table)].hidden_columns}
        ]
        raise with_suggestion(exc, visible) from None
    filtered = [t.port.table_name for t in tables if decisions[_key(t)].row_filters]
    columns = QueryColumns.of((t.port.columns, decisions[_key(t)].masks) for t in tables)
    if filtered and inventory.fallible and not engine_barrier:
        check_fallible(statement, inventory, filtered, columns, tree_dialect)
    _unqualify_schema_columns(inventory.columns, tables, dialect)

    projected = _projected_names(inventory, tables)
    bound_filters: dict[tuple[str, str], str | None] = {}
    secure_views: list[exp.Expr] = []
    for table in tables:
        secure, filter_sql = secure_view(
            table.port, decisions[_key(table)], principal, write, projected
        )
        bound_filters[_key(table)] = filter_sql
        secure_views.append(secure_view_text(secure, write))
        substitute(table.node, secure, table.node.this)

    _audit(statement, inventory, tables)
    generated = dialect_named(write).generate(
        statement, copy=False, unsupported_level=ErrorLevel.RAISE, comments=False
    )
    # Decided again on the tree that will run: transpilation may have changed what can fail.
    check_generated(
        generated,
        write,
        secure_views,
        {t.port.table for t in tables},
        [] if engine_barrier else filtered,
        columns,
    )
    accesses = tuple(
        _access(t.port, decisions[_key(t)], bound_filters[_key(t)]) for t in _unique(tables)
    )
    return RewrittenQuery(sql=generated, read=read, write=write, tables=accesses)


def _column_types(tables: list[ResolvedTable], inventory: Inventory) -> dict[str, set[LogicalType]]:
    """Column name → its logical types in the query's tables; a name the query redefines (an
    alias) may hold anything, so it has none."""
    types: dict[str, set[LogicalType]] = {}
    for table in tables:
        for column in table.port.columns:
            types.setdefault(column.name.lower(), set()).add(column.type)
    for alias in inventory.aliases:
        types.pop(alias.alias.lower(), None)
    for table_alias in inventory.table_aliases:
        for defined in table_alias.columns:
            types.pop(defined.name.lower(), None)
    return types


def _visible_columns(
    tables: list[ResolvedTable], decisions: dict[tuple[str, str], AccessDecision]
) -> VisibleColumns:
    """The names ``COLUMNS(...)`` may expand to: a product table's columns that are not hidden."""
    by_node = {id(t.node): t for t in tables}

    def visible(node: exp.Table) -> list[str] | None:
        table = by_node.get(id(node))
        if table is None:
            return None
        hidden = {h.lower() for h in decisions[_key(table)].hidden_columns}
        return [c.name for c in table.port.columns if c.name.lower() not in hidden]

    return visible


def _key(table: ResolvedTable) -> tuple[str, str]:
    return (table.port.product, table.port.port)


def _unique(tables: list[ResolvedTable]) -> list[ResolvedTable]:
    seen: set[tuple[str, str]] = set()
    out: list[ResolvedTable] = []
    for table in tables:
        if _key(table) not in seen:
            seen.add(_key(table))
            out.append(table)
    return out


def _access(port: PortRef, decision: AccessDecision, row_filter_sql: str | None) -> TableAccess:
    return TableAccess(
        table=port.table_name,
        product=port.product,
        port=port.port,
        revision=decision.revision,
        version=port.version,
        row_filters=decision.row_filters,
        row_filter_sql=row_filter_sql,
        masks=decision.masks,
        hidden_columns=decision.hidden_columns,
        reasons=decision.reasons,
    )


def _norm(identifier: exp.Expr, dialect: Dialect) -> str:
    return normalized_name(identifier, dialect)


def _check_no_column_lists(tables: list[ResolvedTable]) -> None:
    """``FROM t AS a(x, y)`` renames a product table's columns by position: which column a name
    then means would depend on the secure view's column order (and its pruning), and masks and
    barrier decisions are keyed by name. Denied; rename in a derived table instead. (Spark,
    BigQuery and Trino also parse ``t SAMPLE (10)`` as such a list.)"""
    for table in tables:
        alias = table.node.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            raise SqlUnsupportedError(
                f"table '{table.port.table_name}' ({table.port.product}:{table.port.port}): a "
                f"column list on its alias ({alias.sql()}) renames columns by position and is "
                "not allowed; name columns in a subquery instead"
            )


def _check_hidden_columns(
    inventory: Inventory,
    tables: list[ResolvedTable],
    decisions: dict[tuple[str, str], AccessDecision],
    dialect: Dialect,
) -> None:
    """Deny references to hidden columns by name (the secure views do not project them anyway)."""
    hidden_by_table = [(t, decisions[_key(t)].hidden_columns) for t in tables]
    if not any(hidden for _, hidden in hidden_by_table):
        return
    by_alias: dict[str, list[tuple[ResolvedTable, frozenset[str]]]] = {}
    for table, hidden in hidden_by_table:
        alias_node = table.node.args.get("alias")
        name_node = alias_node.this if isinstance(alias_node, exp.TableAlias) else None
        alias = _norm(name_node if name_node is not None else table.node.this, dialect)
        by_alias.setdefault(alias, []).append((table, hidden))
    # Names the query itself defines (output aliases, CTE and derived-table column lists).
    defined = {
        _norm(node.args["alias"], dialect)
        for node in inventory.aliases
        if isinstance(node.args.get("alias"), exp.Identifier)
    }
    for table_alias in inventory.table_aliases:
        defined.update(_norm(c, dialect) for c in table_alias.columns)
    for column in inventory.columns:
        if not isinstance(column.this, exp.Identifier):
            continue
        name = _norm(column.this, dialect)
        qualifier = column.args.get("table")
        if qualifier is not None:
            candidates = by_alias.get(_norm(qualifier, dialect), [])
        elif name in defined:
            continue
        else:
            candidates = hidden_by_table
        for table, hidden in candidates:
            if name in hidden:
                decision = decisions[_key(table)]
                why = next((r for r in decision.reasons if name in r.lower()), "hidden by policy")
                raise AccessDenied(
                    f"column '{column.name}' of table '{table.port.table_name}' "
                    f"({table.port.product}:{table.port.port}) is hidden: {why}",
                    Location(product=table.port.product, port=table.port.port, column=column.name),
                )


def _projected_names(inventory: Inventory, tables: list[ResolvedTable]) -> frozenset[str] | None:
    """Lower-cased names the query may read from its tables; None: every column.

    Secure views project only these, so the generated SQL (and what the engine scans) is no wider
    than the query. Deliberately generous: every part of every column reference and every USING
    name counts, whatever table it belongs to. Every column is kept when the query can read whole
    rows: a star other than ``count(*)``, a NATURAL join, or a table referenced as a row value
    (``SELECT c FROM t AS c``).
    """
    if any(not isinstance(star.parent, exp.Count) for star in inventory.stars):
        return None
    names: set[str] = set()
    for join in inventory.joins:
        if str(join.args.get("method") or "").upper() == "NATURAL":
            return None
        for using in join.args.get("using") or []:
            names.add(using.name.lower())
    for column in inventory.columns:
        for part in ("this", "table", "db", "catalog"):
            identifier = column.args.get(part)
            if isinstance(identifier, exp.Identifier):
                names.add(identifier.name.lower())
    row_names: set[str] = set()
    for table in tables:
        row_names.add(table.node.name.lower())
        alias = table.node.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.this is not None:
            row_names.add(alias.name.lower())
    if any(column.name.lower() in row_names for column in inventory.columns):
        return None
    return frozenset(names)


def _unqualify_schema_columns(
    columns: list[exp.Column], tables: list[ResolvedTable], dialect: Dialect
) -> None:
    """``schema.table.col`` → ``table.col`` for a substituted table: only its alias remains.

    Other three-part references (``alias.struct_field.x``) are left alone.
    """
    physical = {t.parts for t in tables}
    for column in columns:
        if column.args.get("db") is None:
            continue
        parts = tuple(table_parts_of_column(column, dialect))
        if any(p[-len(parts) :] == parts for p in physical if len(p) >= len(parts)):
            column.set("db", None)
            column.set("catalog", None)


def table_parts_of_column(column: exp.Column, dialect: Dialect) -> list[str]:
    """The ``[catalog.]db.table`` qualifier of a column, as catalogue keys."""
    parts: list[str] = []
    for key in ("catalog", "db", "table"):
        value = column.args.get(key)
        if isinstance(value, exp.Identifier):
            parts.append(catalogue_key(value, dialect))
    return parts


def _audit(statement: exp.Expr, inventory: Inventory, resolved: list[ResolvedTable]) -> None:
    """Invariant after substitution: every table the user wrote is a CTE or was replaced.

    Checked on the inventory (not by re-walking the grown tree): each table node of the original
    statement is either detached from the tree (substituted) or a CTE reference.
    """
    substituted = {id(t.node) for t in resolved}
    cte_names = {cte.alias_or_name.lower() for cte in inventory.ctes}
    for table in inventory.tables:
        if id(table) in substituted:
            if table.parent is not None and table.root() is statement:
                raise SqlUnsupportedError(f"table '{table.sql()}' was not secured; denied")
            continue
        if table.args.get("db") is None and table.name.lower() in cte_names:
            continue
        raise SqlUnsupportedError(f"table '{table.sql()}' was not secured; denied")


def with_suggestion(error: UnknownNameError, visible: Iterable[str]) -> UnknownNameError:
    """``error`` with "did you mean …?" naming the nearest of ``visible`` (if one is close)."""
    nearest = nearest_name(error.name, visible)
    if nearest is None:
        return error
    return UnknownNameError(f"{error.message}; did you mean '{nearest}'?", error.name, error.what)
