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

_ALWAYS_FALLIBLE = tuple(
    classes_named(
        "StrToDate StrToTime TsOrDsToDate TsOrDsToTimestamp TimeStrToTime TimeStrToDate "
        "DateStrToDate ToNumber ParseJSON JSONExtract JSONExtractScalar JSONBExtract "
        "JSONBExtractScalar Ln Log Sqrt Pow Exp Asin Acos MakeInterval UnixToTime "
        "DateFromParts TimestampFromParts Date Timestamp Time ToChar TimeToStr"
    )
)
_REGEX = tuple(
    classes_named(
        "RegexpLike RegexpILike RegexpExtract RegexpExtractAll RegexpReplace RegexpSplit "
        "RegexpCount RegexpSubstr RegexpInstr RegexpFullMatch SimilarTo"
    )
)
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
    if isinstance(node, exp.TryCast | exp.Try):
        return False
    if isinstance(node, exp.Cast):
        return not _safe_cast(node, column_types)
    if isinstance(node, exp.Div | exp.IntDiv | exp.Mod):
        divisor = node.expression
        return not (
            isinstance(divisor, exp.Literal) and not divisor.is_string and divisor.to_py() != 0
        )
    if isinstance(node, _REGEX):
        pattern = node.args.get("expression")
        return not isinstance(pattern, exp.Literal)
    return isinstance(node, _ALWAYS_FALLIBLE)


def _depends_on_data(node: exp.Expr) -> bool:
    """It reads a column, or runs only for some rows (a branch of CASE/IF): ``CASE WHEN
    region = 'US' THEN 1/0 END`` fails exactly when such a row exists."""
    if any(True for _ in node.find_all(exp.Column)):
        return True
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Query):
        if isinstance(parent, exp.Case | exp.If):
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


def _evaluated_after_filtering(node: exp.Expr, root: exp.Expr) -> bool:
    """Inside an aggregate's arguments, over aggregates only, or in the output list / ORDER BY
    of the outermost SELECT. Not in a derived table's output: an outer predicate on it can be
    pushed down next to the row filter (PostgreSQL does so even through GROUP BY keys)."""
    if _only_aggregates(node):
        return True
    child: exp.Expr = node
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.AggFunc):
            return True
        if isinstance(parent, exp.Select):
            return parent is root and child.arg_key in ("expressions", "order")
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
    for node in candidates:
        if not _is_fallible(node, column_types) or not _depends_on_data(node):
            continue
        if _evaluated_after_filtering(node, statement):
            continue
        tables = ", ".join(sorted(set(filtered_tables)))
        raise SqlUnsupportedError(
            f"'{node.sql()[:80]}' can fail on a value and would run before the row filter of "
            f"{tables}; such expressions are only allowed in the output list or in aggregates"
        )
