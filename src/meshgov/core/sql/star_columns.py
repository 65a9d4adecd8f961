"""DuckDB's ``COLUMNS(...)`` star expression, expanded into the columns it names before any check.

``SELECT max(COLUMNS(*)) FROM t`` is ``SELECT max(a), max(b), … FROM t`` over the columns the
principal may see (hidden ones are not there to match). Expanding it in the tree, rather than
passing it on, lets every later pass (hidden columns, masks, the barrier, the projection of the
secure views) see plain column references, and gives PostgreSQL, which has no COLUMNS, the same
query. Supported: in the output list of a SELECT whose FROM and joins are product tables;
``COLUMNS(*)``, ``COLUMNS('regex')`` (a partial match, case-sensitive, as DuckDB matches; the
pattern is checked by ``patterns.py``) and ``COLUMNS(['a', 'b'])``. Anything else is refused
naming the form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from sqlglot import exp

from meshgov.core.sql.patterns import check_regex
from meshgov.errors import SqlUnsupportedError, UnknownNameError

# The visible column names of the product table a Table node was resolved to (None: not one).
VisibleColumns = Callable[[exp.Table], Sequence[str] | None]


def has_columns(statement: exp.Expr) -> bool:
    return statement.find(exp.Columns) is not None


def expand_columns(statement: exp.Expr, visible: VisibleColumns) -> None:
    for node in list(statement.find_all(exp.Columns)):
        if node.parent is not None:
            _expand(node, visible)


def _refuse(why: str) -> SqlUnsupportedError:
    return SqlUnsupportedError(f"COLUMNS(...) {why}; name the columns instead")


def _expand(node: exp.Columns, visible: VisibleColumns) -> None:
    item: exp.Expr = node
    while item.parent is not None and not isinstance(item.parent, exp.Select):
        if isinstance(item.parent, exp.Query | exp.Subquery):
            raise _refuse("is only supported in the output list of a SELECT")
        item = item.parent
    select = item.parent
    if not isinstance(select, exp.Select) or item.arg_key != "expressions":
        raise _refuse("is only supported in the output list of a SELECT")
    if isinstance(item, exp.Alias) or len(list(item.find_all(exp.Columns))) > 1:
        raise _refuse("with an alias or twice in one output column is not supported")
    sources = _sources(select, visible)
    names = _selected(node, [name for _, name in sources])
    expanded: list[exp.Expr] = []
    for qualifier, name in sources:
        if name not in names:
            continue
        column = exp.column(name, table=qualifier, quoted=True)
        if item is node:
            expanded.append(column)
            continue
        copy = item.copy()
        target = copy.find(exp.Columns)
        assert target is not None
        target.replace(column)
        expanded.append(copy)
    position = select.expressions.index(item)
    select.set(
        "expressions",
        [*select.expressions[:position], *expanded, *select.expressions[position + 1 :]],
    )


def _sources(select: exp.Select, visible: VisibleColumns) -> list[tuple[str, str]]:
    """(qualifier, column name) of every column the FROM and joins of ``select`` provide."""
    from_ = select.args.get("from_")
    tables = [from_.this] if isinstance(from_, exp.From) else []
    for join in select.args.get("joins") or []:
        if join.args.get("using") or str(join.args.get("method") or "").upper() == "NATURAL":
            raise _refuse("over a USING or NATURAL join is not supported")
        tables.append(join.this)
    if not tables:
        raise _refuse("needs a FROM clause")
    sources: list[tuple[str, str]] = []
    for table in tables:
        names = visible(table) if isinstance(table, exp.Table) else None
        if names is None:
            raise _refuse("is only supported over product tables (not a CTE or subquery)")
        qualifier = table.alias_or_name
        sources.extend((qualifier, name) for name in names)
    return sources


def _selected(node: exp.Columns, names: list[str]) -> set[str]:
    selector = node.this
    if isinstance(selector, exp.Star) and not selector.args.get("except"):
        chosen = set(names)
    elif isinstance(selector, exp.Literal) and selector.is_string:
        check_regex(selector.name)
        pattern = re.compile(selector.name)
        chosen = {n for n in names if pattern.search(n)}
    elif isinstance(selector, exp.Array) and all(
        isinstance(e, exp.Literal) and e.is_string for e in selector.expressions
    ):
        chosen = {e.name for e in selector.expressions}
        unknown = sorted(chosen - set(names))
        if unknown:
            raise UnknownNameError(
                f"unknown column '{unknown[0]}' in COLUMNS(...)", unknown[0], "column"
            )
    else:
        raise _refuse(f"of {selector.sql()[:60]} is not supported (only *, a regex or a list)")
    if not chosen:
        raise UnknownNameError("no column matches COLUMNS(...)", node.sql()[:60], "column")
    return chosen
