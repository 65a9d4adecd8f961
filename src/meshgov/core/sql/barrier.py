"""Expressions that can fail on a value, over row-filtered tables.

A subquery is not a security barrier: engines merge the secure view into the user's query and may
evaluate a user predicate on rows the row filter would drop. A predicate that can *fail* on a value
(``CAST(name AS INT)``, ``x / y``, parsing a date…) then turns a hidden row into an error message
(its value in the text, or its existence as one bit). So when a query reads a row-filtered table,
such expressions are allowed only where engines evaluate them after filtering: inside aggregate
arguments, over aggregates only, and in the output list (or ORDER BY) of the outermost query.
Everywhere else (WHERE, JOIN ON, GROUP BY, derived-table projections…) they are denied.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from meshgov.core.manifest import LogicalType
from meshgov.core.sql.validate import classes_named
from meshgov.errors import SqlUnsupportedError

# Patterns: a fixed pattern fails on every row or none; one built from data can fail on a value.
_PATTERNS = tuple(
    classes_named(
        "RegexpLike RegexpILike RegexpExtract RegexpExtractAll RegexpReplace RegexpSplit "
        "RegexpCount RegexpSubstr RegexpInstr RegexpFullMatch SimilarTo Like ILike Glob"
    )
)
# Total date functions unless their unit comes from data (`date_trunc(col, d)`).
_UNIT_FUNCTIONS = tuple(classes_named("DateTrunc TimestampTrunc DatetimeTrunc TimeTrunc"))
# Evaluated for some rows or elements only: a constant inside fails exactly when one exists.
_CONDITIONAL = (exp.Case, exp.If, exp.Coalesce, exp.Nvl2, exp.Lambda)
_TEXT_TYPES = {
    exp.DataType.Type.TEXT,
    exp.DataType.Type.VARCHAR,
    exp.DataType.Type.NVARCHAR,
    exp.DataType.Type.CHAR,
    exp.DataType.Type.NCHAR,
}


_TYPE = exp.DataType.Type
_TIMESTAMPS = frozenset(
    {
        _TYPE.TIMESTAMP,
        _TYPE.TIMESTAMPNTZ,
        _TYPE.TIMESTAMPTZ,
        _TYPE.TIMESTAMPLTZ,
        _TYPE.DATETIME,
    }
)
# Casts that cannot fail whatever the value, by the column's declared logical type.
_SAFE_CASTS: dict[LogicalType, frozenset[Any]] = {
    LogicalType.integer: frozenset({_TYPE.BIGINT, _TYPE.DOUBLE, _TYPE.INT128}),
    LogicalType.number: frozenset({_TYPE.DOUBLE}),
    LogicalType.decimal: frozenset({_TYPE.DOUBLE}),
    LogicalType.boolean: frozenset({_TYPE.BOOLEAN}),
    LogicalType.date: frozenset({_TYPE.DATE}) | _TIMESTAMPS,
    LogicalType.timestamp: frozenset({_TYPE.DATE}) | _TIMESTAMPS,
}

# Column name → the logical types it has in the tables of the query (all must allow the cast).
ColumnTypes = dict[str, set[LogicalType]]


def _safe_cast(node: exp.Cast, column_types: ColumnTypes) -> bool:
    target = node.args.get("to")
    if not isinstance(target, exp.DataType):
        return False
    if target.this in _TEXT_TYPES:
        return True
    operand = node.this
    if not isinstance(operand, exp.Column) or target.expressions:
        return False
    types = column_types.get(operand.name.lower(), set())
    return bool(types) and all(target.this in _SAFE_CASTS.get(t, frozenset()) for t in types)


def _is_fallible(node: exp.Expr, column_types: ColumnTypes) -> bool:
    """A candidate from ``validate`` (a function not known to be total, or a fallible operator)
    that can really fail on a value."""
    if isinstance(node, exp.TryCast | exp.Try):
        return False
    if isinstance(node, exp.Cast):
        return not _safe_cast(node, column_types)
    if isinstance(node, exp.Div | exp.IntDiv | exp.Mod):
        divisor = node.expression
        # A positive constant: never zero, and no INT_MIN / -1 overflow.
        return not (
            isinstance(divisor, exp.Literal)
            and not divisor.is_string
            and float(divisor.to_py()) > 0
        )
    if isinstance(node, _PATTERNS):
        pattern = node.args.get("expression")
        return not isinstance(pattern, exp.Literal)
    if isinstance(node, _UNIT_FUNCTIONS):
        unit = node.args.get("unit")
        return unit is not None and any(True for _ in unit.find_all(exp.Column))
    return True


def _depends_on_data(node: exp.Expr) -> bool:
    """It reads a column, or runs only for some rows or elements (a CASE/IF/COALESCE branch, a
    lambda body, whose variables are not columns): ``CASE WHEN region = 'US' THEN 1/0 END`` or
    ``list_filter([id], x -> CAST(x AS INT) = 1)`` fails exactly when such a value exists."""
    if any(True for _ in node.find_all(exp.Column)):
        return True
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Query):
        if isinstance(parent, _CONDITIONAL):
            return True
        parent = parent.parent
    return False


def _only_aggregates(node: exp.Expr) -> bool:
    """Every column it reads is inside an aggregate: it is computed after grouping, so no
    engine can push it below the row filter (``sum(a) / count(*)``)."""
    columns = list(node.find_all(exp.Column))
    for column in columns:
        parent = column.parent
        while parent is not None and parent is not node and not isinstance(parent, exp.AggFunc):
            parent = parent.parent
        if not isinstance(parent, exp.AggFunc):
            return False
    return bool(columns)


def _owning_select(node: exp.Expr) -> exp.Expr | None:
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Query):
        parent = parent.parent
    return parent


def _reads_own_aggregate(node: exp.Expr) -> bool:
    """It contains an aggregate or window function of its own SELECT (``amount / sum(amount)
    OVER (…)``, ``total - lag(total) OVER (…)``): it is computed from that SELECT's grouped or
    windowed rows, which exist only for rows past the row filter, and no engine can push a
    predicate on it below the aggregation or the window. One in a nested query does not count."""
    owner = _owning_select(node)
    found = node.find_all(exp.AggFunc, exp.Window)
    return any(_owning_select(f) is owner for f in found)


def _outermost_selects(root: exp.Expr) -> list[exp.Expr]:
    """The SELECTs whose output is the result: the statement, a parenthesised statement, or the
    branches of a top-level UNION [ALL] (nothing outside them can push a predicate in)."""
    found: list[exp.Expr] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, exp.Subquery) and not node.args.get("alias"):
            pending.append(node.this)
        elif isinstance(node, exp.Union):
            pending.extend((node.this, node.expression))
        elif isinstance(node, exp.Select):
            found.append(node)
    return found


def _evaluated_after_filtering(node: exp.Expr, roots: list[exp.Expr]) -> bool:
    """Inside an aggregate's arguments, over aggregates only, over an aggregate or window of its
    own SELECT, or in the output list / ORDER BY of an outermost SELECT. Not in a derived
    table's output: an outer predicate on it can be pushed down next to the row filter
    (PostgreSQL does so even through GROUP BY keys)."""
    if _only_aggregates(node) or _reads_own_aggregate(node):
        return True
    child: exp.Expr = node
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.AggFunc):
            return True
        if isinstance(parent, exp.Select):
            return any(parent is r for r in roots) and child.arg_key in ("expressions", "order")
        if isinstance(parent, exp.Query | exp.Subquery):
            return False
        child, parent = parent, parent.parent
    return False


def check_fallible(
    statement: exp.Expr,
    candidates: list[exp.Expr],
    filtered_tables: list[str],
    column_types: ColumnTypes,
) -> None:
    """Deny fallible expressions over columns outside the positions described above."""
    roots: list[exp.Expr] | None = None
    for node in candidates:
        if not _is_fallible(node, column_types) or not _depends_on_data(node):
            continue
        if roots is None:
            roots = _outermost_selects(statement)
        if _evaluated_after_filtering(node, roots):
            continue
        tables = ", ".join(sorted(set(filtered_tables)))
        raise SqlUnsupportedError(
            f"'{node.sql()[:80]}' can fail on a value and would run before the row filter of "
            f"{tables}; such expressions are only allowed in the output list or in aggregates"
        )
