"""Column masks as sqlglot expressions, generated per target dialect.

``hash`` calls ``meshgov_hash(<value as text>)``: every engine installs that function with the
mesh-wide secret key (keyed SHA-256, hex), so the same value hashes the same on every engine and
pseudonymous identifiers still join. The key never appears in generated SQL.
"""

from __future__ import annotations

from functools import lru_cache

from sqlglot import exp

from meshgov.core.manifest import LogicalType
from meshgov.core.sql.model import Mask, PortColumn
from meshgov.core.sql.validate import parse_fragment
from meshgov.errors import AccessDenied, SqlUnsupportedError

HASH_FUNCTION = "meshgov_hash"
# meshgov_hash returns hex SHA-256: always this many characters.
HASH_HEX_LENGTH = 64
REDACTED = "[REDACTED]"
PARTIAL_KEEP = 4
_TEMPLATE_COLUMN_NAMES = frozenset({"col", "column"})

_SQL_TYPES: dict[LogicalType, str] = {
    LogicalType.string: "VARCHAR",
    LogicalType.integer: "BIGINT",
    LogicalType.number: "DOUBLE",
    LogicalType.decimal: "DECIMAL",
    LogicalType.boolean: "BOOLEAN",
    LogicalType.date: "DATE",
    LogicalType.timestamp: "TIMESTAMP",
    LogicalType.binary: "VARBINARY",
}


def sql_type(logical: LogicalType) -> exp.DataType | None:
    """The SQL type of a logical type; ``None`` for nested types (untyped NULL masks)."""
    name = _SQL_TYPES.get(logical)
    return exp.DataType.build(name) if name else None


def _typed_null(column: PortColumn) -> exp.Expr:
    data_type = sql_type(column.type)
    return exp.cast(exp.null(), data_type) if data_type is not None else exp.null()


def _as_text(ref: exp.Expr, column: PortColumn) -> exp.Expr:
    if column.type is LogicalType.string:
        return ref
    return exp.cast(ref, exp.DataType.build("VARCHAR"))


def mask_expression(column: PortColumn, mask: Mask) -> exp.Expr:
    """The expression that replaces ``column`` in a secure view."""
    ref = exp.column(column.name, quoted=True)
    kind = mask.kind
    if kind == "hash":
        return exp.Anonymous(this=HASH_FUNCTION, expressions=[_as_text(ref, column)])
    if kind == "null":
        return _typed_null(column)
    if kind == "redact":
        if column.type is LogicalType.string:
            return exp.Literal.string(REDACTED)
        return _typed_null(column)
    if kind == "partial":
        text = _as_text(ref, column)
        return exp.Pad(
            this=exp.Right(this=text, expression=exp.Literal.number(PARTIAL_KEEP)),
            # DuckDB's lpad takes an INTEGER count; LENGTH returns BIGINT there.
            expression=exp.cast(exp.Length(this=text.copy()), exp.DataType.build("INT")),
            fill_pattern=exp.Literal.string("*"),
            is_left=True,
        )
    if kind == "year":
        if column.type is LogicalType.date:
            return exp.cast(
                exp.DateTrunc(this=ref, unit=exp.Literal.string("YEAR")),  # type: ignore[no-untyped-call]
                exp.DataType.build("DATE"),
            )
        if column.type is LogicalType.timestamp:
            return exp.TimestampTrunc(this=ref, unit=exp.Literal.string("YEAR"))
        return _typed_null(column)
    if kind == "expr":
        template = mask.expr or column.mask_expr
        if not template:
            raise AccessDenied(f"column {column.name}: mask 'expr' has no expression")
        return _bind_template(_parse_template(template), ref)
    raise AccessDenied(f"column {column.name}: unknown mask kind '{kind}'")


@lru_cache(maxsize=1024)
def _parse_template(template: str) -> exp.Expr:
    """A mask template such as ``concat('***', right({col}, 2))``, parsed once."""
    return parse_fragment(template, "mask expression")


def _bind_template(template: exp.Expr, ref: exp.Expr) -> exp.Expr:
    def substitute(node: exp.Expr) -> exp.Expr:
        if (
            isinstance(node, exp.Struct)
            and len(node.expressions) == 1
            and isinstance(node.expressions[0], exp.Column)
            and not node.expressions[0].table
            and node.expressions[0].name.lower() in _TEMPLATE_COLUMN_NAMES
        ):
            return ref.copy()
        if isinstance(node, exp.Column):
            raise SqlUnsupportedError(
                f"mask expression may only refer to its column as {{col}}, found {node.sql()}"
            )
        return node

    return template.transform(substitute)
