"""Allow-list of statement and expression kinds; everything not listed is denied by name.

The tree is walked once. Function calls must be on a fixed list of sqlglot function classes (no
``Anonymous`` function, no table function, nothing that reads files, settings, session or
catalogue state); other nodes must be on a fixed list of query, operator and literal kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from meshgov.core.sql.patterns import check_pattern_node
from meshgov.errors import SqlUnsupportedError

ROOT_KINDS: tuple[type[exp.Expr], ...] = (exp.Select, exp.SetOperation, exp.Subquery)

_NODE_NAMES = """
Select Union Intersect Except Subquery From Join Where Group Having Qualify Order Ordered Limit
Offset Fetch With CTE TableAlias Alias Aliases Column Identifier Star Literal Boolean Null Tuple
Paren Neg Not And Or Xor EQ NEQ GT GTE LT LTE NullSafeEQ NullSafeNEQ Is In Between Like ILike
SimilarTo Glob Escape Add Sub Mul Div Mod IntDiv DPipe BitwiseAnd BitwiseOr BitwiseXor BitwiseNot
BitwiseLeftShift BitwiseRightShift Case If Cast TryCast DataType DataTypeParam Window WindowSpec
Interval IntervalSpan Var Distinct Exists Any All Lateral Unnest Values Array Bracket Dot Filter
WithinGroup IgnoreNulls RespectNulls Lambda Kwarg PropertyEQ Slice Table Cube Rollup
GroupingSets Tuple Struct Coalesce Nullif Greatest Least Collate ColumnDef LimitOptions RawString
WeekStart JSONKeyValue
"""

_FUNCTION_NAMES = """
Abs Ceil Floor Round Trunc Sign Sqrt Cbrt Exp Ln Log Pow Pi Degrees Radians Sin Cos Tan Asin Acos
Atan Atan2 Cot Sinh Cosh Tanh IsNan IsInf SafeDivide
Ascii Chr Concat ConcatWs Contains EndsWith StartsWith Initcap Left Right Length BitLength
ByteLength Levenshtein Lower Upper Pad Repeat Replace Reverse Split SplitPart StrPosition
Substring Trim Translate Overlay Space RegexpLike RegexpILike RegexpExtract RegexpExtractAll
RegexpReplace RegexpSplit RegexpCount RegexpSubstr RegexpInstr RegexpFullMatch MD5 SHA SHA2
Soundex Hex LowerHex Unhex
AddMonths CurrentDate CurrentTime CurrentTimestamp Localtime Localtimestamp Rand Date DateAdd
DateDiff DateSub DateTrunc
DateFromParts Datetime DatetimeAdd DatetimeDiff DatetimeSub DatetimeTrunc Day DayOfMonth DayOfWeek
DayOfWeekIso DayOfYear Dayname Extract Hour LastDay Minute Month Monthname MonthsBetween Quarter
Second StrToDate StrToTime Time TimeAdd TimeDiff TimeSub TimeToStr TimeTrunc Timestamp
TimestampAdd TimestampDiff TimestampSub TimestampTrunc TimestampFromParts TsOrDsAdd TsOrDsDiff
TsOrDsToDate TsOrDsToTimestamp TimeStrToTime TimeStrToDate DateStrToDate UnixToTime TimeToUnix
UnixSeconds Week WeekOfYear Year YearOfWeek ToChar ToNumber MakeInterval GenerateDateArray
AnyValue ApproxDistinct ApproxQuantile ArgMax ArgMin ArrayAgg Avg Corr Count CountIf CovarPop
CovarSamp CumeDist DenseRank First FirstValue GroupConcat Grouping Kurtosis Lag Last LastValue
Lead LogicalAnd LogicalOr Max Median Min Mode NthValue Ntile PercentRank PercentileCont
PercentileDisc Quantile Rank RowNumber Skewness Stddev StddevPop StddevSamp Sum Variance
VariancePop
Array ArrayContains ArrayConcat ArrayDistinct ArrayFilter ArraySize ArraySort ArrayToString
ArraySlice ArrayPosition Explode GenerateSeries Struct StructExtract Transform Unnest Map
ArrayMin ArrayMax Flatten ArrayOverlaps List JSONArrayAgg
Case Cast TryCast Coalesce Greatest Least Nullif If Nvl2 EqualNull Try
Columns
JSONExtract JSONExtractScalar JSONBExtract JSONBExtractScalar ParseJSON JSONObject JSONArray
"""


# Data types a query may name (casts, typed literals, struct and array element types): an
# allow-list, like functions. Anything else — PostgreSQL's object-identifier types (`regclass`,
# `regrole`, `regnamespace`, `regprocedure`, `oid`…, which turn a number or a name into catalogue
# metadata), user-defined or schema-qualified types (`pg_catalog.regclass` parses as one),
# ranges, geometry, `xml`… — is denied by name.
_TYPE_NAMES = """
BOOLEAN TINYINT UTINYINT SMALLINT USMALLINT INT UINT BIGINT UBIGINT INT128 UINT128 FLOAT DOUBLE
DECIMAL DECIMAL32 DECIMAL64 DECIMAL128 DECIMAL256 BIGDECIMAL CHAR NCHAR VARCHAR NVARCHAR TEXT
BPCHAR DATE DATE32 TIME TIMETZ TIMESTAMP TIMESTAMPTZ TIMESTAMPLTZ TIMESTAMPNTZ TIMESTAMP_S
TIMESTAMP_MS TIMESTAMP_NS DATETIME INTERVAL BINARY VARBINARY BLOB UUID JSON JSONB ARRAY LIST
STRUCT MAP
"""
ALLOWED_TYPES = frozenset(
    t for t in (getattr(exp.DataType.Type, n, None) for n in _TYPE_NAMES.split()) if t is not None
)


def check_data_type(node: exp.DataType) -> None:
    """Deny a data type that is not on the allow-list (its subclasses included: sqlglot reads
    PostgreSQL's `regclass` as an ``ObjectIdentifier``)."""
    if type(node) is not exp.DataType or node.this not in ALLOWED_TYPES:
        shown = node.sql()[:60] or str(node.this)
        raise SqlUnsupportedError(
            f"data type {shown} is not allowed in a query (only ordinary scalar, date/time, "
            "binary, JSON and nested types are)"
        )


# Functions sqlglot does not model (it reads them as ``Anonymous``), accepted by name only in the
# dialects that define them with these semantics — and only when the SQL is written for such a
# dialect too: the generated tree is checked against the target dialect's list, so a DuckDB-only
# function read for a PostgreSQL target is denied there. Each is classed as the allow-list of
# fallible expressions needs: an aggregate (runs after the row filter of its query, wherever it
# is), total (cannot fail on any value of a well-typed argument), or fallible.
# PATTERN: a regular expression function whose pattern is its second argument: total when that
# is a literal ``patterns.py`` accepts (checked when the tree is validated), fallible otherwise.
AGGREGATE, TOTAL, FALLIBLE, PATTERN = "aggregate", "total", "fallible", "pattern"
DIALECT_FUNCTIONS: dict[str, dict[str, str]] = {
    "duckdb": {
        "reservoir_quantile": AGGREGATE,
        "histogram": AGGREGATE,
        "to_json": TOTAL,
        "octet_length": TOTAL,
        "list_extract": TOTAL,
        "list_element": TOTAL,
        "list_reverse": TOTAL,
        "list_slice": FALLIBLE,  # a zero step, bounds out of BIGINT range
        "list_position": TOTAL,
        "list_has_all": TOTAL,
        "list_sum": FALLIBLE,  # overflow
        "list_aggregate": FALLIBLE,  # runs an aggregate named by a string
        "json_object": FALLIBLE,  # an odd number of arguments, a NULL key fail
        "make_date": FALLIBLE,  # an invalid date fails
        "make_timestamp": FALLIBLE,
        "regexp_split_to_array": PATTERN,
        "string_split_regex": PATTERN,
    },
    "postgres": {
        "to_json": TOTAL,
        "to_jsonb": TOTAL,
        "row_to_json": TOTAL,
        "octet_length": TOTAL,
        "cardinality": TOTAL,
        "jsonb_agg": AGGREGATE,
        "json_object_agg": AGGREGATE,
        "jsonb_object_agg": AGGREGATE,
        "age": FALLIBLE,  # what sqlglot writes for date differences in months; infinity fails
        "json_build_object": FALLIBLE,  # an odd number of arguments fails
        "jsonb_build_object": FALLIBLE,
        "make_date": FALLIBLE,  # an invalid date fails
        "make_timestamp": FALLIBLE,
        "regexp_split_to_array": PATTERN,
        "regexp_split_to_table": PATTERN,
        "regexp_matches": PATTERN,
    },
    "spark": {
        "bround": TOTAL,  # written for a PostgreSQL ROUND of a double (dialect_pairs)
    },
}


def dialect_function(node: exp.Expr, dialect: str | None) -> str | None:
    """The class of an ``Anonymous`` function the dialect defines (see above), or None."""
    if not isinstance(node, exp.Anonymous) or dialect is None:
        return None
    return DIALECT_FUNCTIONS.get(dialect, {}).get(str(node.name).lower())


def is_aggregate(node: exp.Expr, dialect: str | None = None) -> bool:
    """An aggregate function, a sqlglot one or a dialect's own (``reservoir_quantile``)."""
    return isinstance(node, exp.AggFunc) or dialect_function(node, dialect) == AGGREGATE


def classes_named(names: str) -> frozenset[type[exp.Expr]]:
    # Only names this sqlglot version defines, so an upgrade cannot make an import fail.
    found = (getattr(exp, name, None) for name in names.split())
    return frozenset(c for c in found if isinstance(c, type) and issubclass(c, exp.Expr))


ALLOWED_NODES = classes_named(_NODE_NAMES)
ALLOWED_FUNCTIONS = classes_named(_FUNCTION_NAMES)

# Table arguments that change what is read (time travel, sampling, partitions, hints…).
_TABLE_MODIFIERS = (
    "pivots",
    "hints",
    "system_time",
    "version",
    "format",
    "pattern",
    "when",
    "partition",
    "changes",
    "rows_from",
    "sample",
    "indexed",
    "laterals",
)


def _kind_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return f"function {node.name}()"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name()}()"
    return f"'{node.key.upper()}'"


@dataclass
class Inventory:
    """The nodes later passes need, collected by the one walk that validates the tree."""

    tables: list[exp.Table] = field(default_factory=list)
    columns: list[exp.Column] = field(default_factory=list)
    aliases: list[exp.Alias] = field(default_factory=list)
    table_aliases: list[exp.TableAlias] = field(default_factory=list)
    ctes: list[exp.CTE] = field(default_factory=list)
    fallible: list[exp.Expr] = field(default_factory=list)
    stars: list[exp.Star] = field(default_factory=list)
    joins: list[exp.Join] = field(default_factory=list)


# Expressions that can fail on some value (an error that reveals it), checked by ``barrier.py``.
# (Not ``hex``: total on text and integers, it fails on a DOUBLE that is infinite or NaN —
# `hex(CASE WHEN region = 'US' THEN 1e400 ELSE 1 END)` on DuckDB.)
# An allow-list: every function is a candidate unless it is known not to fail on any value of a
# well-typed argument (its arguments are checked on their own); aggregates and window functions
# run after the row filter of their query, wherever they are.
TOTAL_FUNCTIONS = classes_named(
    "And Or Xor Not Exists Collate Case If Coalesce Nullif Greatest Least Nvl2 EqualNull Try "
    "TryCast SafeDivide Atan Atan2 Cbrt Array Struct "
    "ArrayContains ArrayConcat ArrayDistinct ArraySize ArraySort ArrayToString ArrayFilter "
    "Transform ArrayPosition StructExtract Unnest Explode ArrayMin ArrayMax Flatten ArrayOverlaps "
    "Lower Upper Length BitLength ByteLength Concat ConcatWs Trim Replace Reverse Contains "
    "StartsWith EndsWith StrPosition Initcap Translate MD5 SHA Ascii "
    "Ceil Floor Sign IsNan IsInf Pi CurrentDate CurrentTime CurrentTimestamp Localtime "
    "Localtimestamp Rand "
    "Year Month Day DayOfMonth DayOfWeek DayOfWeekIso DayOfYear Dayname Monthname Quarter Week "
    "WeekOfYear YearOfWeek Extract Hour Minute Second LastDay"
)
# Operators that can fail on a value: casts, division and modulo (by zero), integer, decimal and
# date overflow (+, -, *, unary minus, shifts; `d + INTERVAL n DAY`), patterns (LIKE/regex)
# built from data, an ESCAPE of more than one character, subscripts and slices (a map key that is
# missing, an index out of range on engines that raise then, a zero step, bounds out of range),
# intervals (`INTERVAL (x) DAY` casts x, which fails on text or overflows). ``barrier.py``
# decides which of them really can fail. (``MAP(keys, values)`` fails on a duplicate or NULL key:
# it is not on the list of total functions.)
FALLIBLE_OPERATORS = classes_named(
    "Cast Div IntDiv Mod Add Sub Mul Neg BitwiseLeftShift BitwiseRightShift Like ILike Glob "
    "SimilarTo Escape Bracket Interval"
)
# Comparisons, and expressions that unify their arguments' types: the engine may cast a text
# value to the other side's type (``kinds.py`` decides when that can fail).
IMPLICIT_CASTS = frozenset(
    classes_named(
        "EQ NEQ GT GTE LT LTE NullSafeEQ NullSafeNEQ In Between Nullif Case If Coalesce "
        "Greatest Least"
    )
)


def is_natural(join: exp.Expr) -> bool:
    return str(join.args.get("method") or "").upper() == "NATURAL"


# Pattern functions: a literal pattern is checked by ``patterns.py`` (refused unless valid on
# every engine), and the function is then no candidate.
REGEX_NODES = classes_named(
    "RegexpLike RegexpILike RegexpExtract RegexpExtractAll RegexpReplace RegexpSplit RegexpCount "
    "RegexpSubstr RegexpInstr RegexpFullMatch Like ILike"
)


def _fallible_candidate(node: exp.Expr, kind: type[exp.Expr], dialect: str | None) -> bool:
    if kind in REGEX_NODES:
        return not check_pattern_node(node, node.args.get("expression"))
    if kind in FALLIBLE_OPERATORS or isinstance(node, exp.Cast) or kind in IMPLICIT_CASTS:
        return True
    if kind is exp.Join:  # USING and NATURAL compare same-named columns, casting if they differ
        return bool(node.args.get("using")) or is_natural(node)
    own = dialect_function(node, dialect)
    if own == PATTERN:
        arguments = node.expressions
        return not check_pattern_node(node, arguments[1] if len(arguments) > 1 else None)
    if own is not None:
        return own == FALLIBLE and not isinstance(node.parent, exp.Window)
    return (
        isinstance(node, exp.Func)
        and kind not in TOTAL_FUNCTIONS
        and not isinstance(node, exp.AggFunc)
        and not isinstance(node.parent, exp.Window)
    )


def validate(
    statement: exp.Expr, dialect: str | None = None, opaque: frozenset[int] = frozenset()
) -> Inventory:
    """Raise ``SqlUnsupportedError`` unless every node of ``statement`` is allow-listed.

    ``dialect``: the dialect the tree is written in (its own functions are allowed by name);
    ``opaque``: ids of nodes whose insides are not the user's (the gateway's own secure views,
    when the generated tree is checked again): the node is seen, its subtree is not.
    """
    if not isinstance(statement, ROOT_KINDS):
        raise SqlUnsupportedError(
            f"only a read-only query (SELECT, WITH, set operations) is allowed; "
            f"got a {statement.key.upper()} statement"
        )
    inventory = Inventory()
    prune = (lambda node: id(node) in opaque) if opaque else None
    for node in statement.walk(prune=prune):
        comments = node.comments
        if comments and any("sqlglot" in c.lower() for c in comments):
            raise SqlUnsupportedError("comments carrying sqlglot directives are not allowed")
        kind = type(node)
        if kind is exp.Anonymous:
            known = _known_spelling(node)  # type: ignore[arg-type]
            if known is not None:
                node.replace(known)
                node, kind = known, type(known)
        if isinstance(node, exp.DataType):
            check_data_type(node)
        elif kind is exp.Anonymous and dialect_function(node, dialect) is not None:
            pass
        elif kind not in ALLOWED_NODES and kind not in ALLOWED_FUNCTIONS:
            raise SqlUnsupportedError(f"{_kind_name(node)} is not allowed in a query")
        if kind is exp.Column:
            inventory.columns.append(node)  # type: ignore[arg-type]
        elif kind is exp.Table:
            _check_table(node)
            inventory.tables.append(node)  # type: ignore[arg-type]
        elif kind is exp.Alias:
            inventory.aliases.append(node)  # type: ignore[arg-type]
        elif kind is exp.TableAlias:
            inventory.table_aliases.append(node)  # type: ignore[arg-type]
        elif kind is exp.CTE:
            inventory.ctes.append(node)  # type: ignore[arg-type]
        elif kind is exp.Star:
            inventory.stars.append(node)  # type: ignore[arg-type]
        elif kind is exp.Join:
            inventory.joins.append(node)  # type: ignore[arg-type]
        if _fallible_candidate(node, kind, dialect):
            inventory.fallible.append(node)
    return inventory


# Units `date_part('unit', x)` may name: EXTRACT's, as sqlglot's PostgreSQL reader maps them.
_DATE_PART_UNITS = frozenset(
    {
        "century", "day", "decade", "dow", "doy", "epoch", "hour", "isodow", "isoyear",
        "microsecond", "microseconds", "millennium", "millisecond", "milliseconds", "minute",
        "month", "quarter", "second", "week", "year",
    }
)  # fmt: skip


def _known_spelling(node: exp.Anonymous) -> exp.Expr | None:
    """Another dialect's spelling of an allow-listed function, which sqlglot reads as an unknown
    function in some dialects (DuckDB's ``date_part('dow', d)`` and ``now()``): the same
    allow-listed expression, as sqlglot reads it for PostgreSQL. Anything else stays unknown."""
    name = node.name.lower()
    args = node.expressions
    if name == "now" and not args:
        return exp.CurrentTimestamp()
    if name in ("date_part", "datepart") and len(args) == 2:
        unit, value = args
        if (
            isinstance(unit, exp.Literal)
            and unit.is_string
            and unit.name.lower() in _DATE_PART_UNITS
        ):
            return exp.Extract(this=exp.var(unit.name.upper()), expression=value)
    return None


def _check_table(table: exp.Expr) -> None:
    # `FROM ONLY t` (PostgreSQL: without inheritance children): a port has none, and the secure
    # view that replaces it is no parent table, so ONLY t is t.
    if table.args.get("only"):
        table.set("only", None)
    if isinstance(table.this, exp.Func) or not isinstance(table.this, exp.Identifier):
        what = table.this.sql_name() if isinstance(table.this, exp.Func) else "expression"
        if isinstance(table.this, exp.Anonymous):
            what = table.this.name
        raise SqlUnsupportedError(f"table function {what}() is not allowed in FROM")
    for modifier in _TABLE_MODIFIERS:
        if table.args.get(modifier):
            raise SqlUnsupportedError(
                f"table '{table.name}': {modifier.replace('_', ' ')} clauses are not allowed"
            )


_NOT_IN_FRAGMENTS = (exp.Query, exp.Table, exp.Star, exp.Subquery)


def parse_fragment(template: str, what: str) -> exp.Expr:
    """Parse a catalogue template (a row filter, a mask expression; generic SQL) and check it
    against the allow-list; ``what`` names it in errors."""
    try:
        parsed = sqlglot.parse_one(template)
    except sqlglot.errors.SqlglotError:
        raise SqlUnsupportedError(f"{what} cannot be parsed: {template!r}") from None
    validate_fragment(parsed, f"{what} {template!r}")
    return parsed


def validate_fragment(fragment: exp.Expr, what: str) -> None:
    """A row filter or mask template: allow-listed scalar expressions, no tables or subqueries."""
    for node in fragment.walk():
        if isinstance(node, _NOT_IN_FRAGMENTS):
            raise SqlUnsupportedError(f"{what}: subqueries and table references are not allowed")
        kind = type(node)
        if isinstance(node, exp.DataType):
            try:
                check_data_type(node)
            except SqlUnsupportedError as exc:
                raise SqlUnsupportedError(f"{what}: {exc.message}") from None
        elif kind not in ALLOWED_NODES and kind not in ALLOWED_FUNCTIONS:
            raise SqlUnsupportedError(f"{what}: {_kind_name(node)} is not allowed")
