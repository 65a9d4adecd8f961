"""Constructs whose meaning differs between the read dialect and the engine's dialect.

sqlglot transpiles syntax, and for a few constructs it keeps the syntax but not the meaning
(PostgreSQL's integer ``/`` becomes DuckDB's float ``/``; Snowflake's NULL-propagating
``GREATEST`` becomes PostgreSQL's NULL-ignoring one…). When the query is read in one dialect and
run on an engine of another, each such construct is either rewritten, as a sqlglot tree, into what
means the same on the engine, or refused (``SqlUnsupportedError``: exit 3 / HTTP 403) with a reason
that names it and the pair. ``translate`` is the one entry point; the rewriter calls it once, on
the resolved tree, before the barrier and column checks see it. Engines are ``duckdb``,
``postgres`` and ``spark`` (Spark 4, ANSI on); other write dialects (``meshgov rewrite --to
trino``) get sqlglot's transpilation alone. docs/enforcement.md carries the same table in words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from meshgov.core.manifest import LogicalType
from meshgov.errors import SqlUnsupportedError

ENGINE_DIALECTS = frozenset({"duckdb", "postgres", "spark"})
_SPARK = frozenset({"spark", "databricks"})
# Dialects whose casts of a double to an integer round half away from zero (the engines: to even).
_ROUND_HALF_AWAY = frozenset({"trino", "presto", "snowflake", "bigquery"})

_T = exp.DataType.Type
_INTEGRAL = frozenset({_T.TINYINT, _T.SMALLINT, _T.INT, _T.BIGINT, _T.UTINYINT, _T.USMALLINT})
_TEXT = frozenset({_T.TEXT, _T.VARCHAR, _T.NVARCHAR, _T.CHAR, _T.NCHAR})
_TIMESTAMPS = frozenset({_T.TIMESTAMP, _T.TIMESTAMPNTZ, _T.TIMESTAMPTZ, _T.DATETIME})
# Casts that cannot fail, by the operand's kind (so TRY_CAST and CAST agree).
_TOTAL_CASTS: dict[str, frozenset[Any]] = {
    "integer": frozenset({_T.BIGINT, _T.DOUBLE, _T.DECIMAL}) | _TEXT,
    "integral": frozenset({_T.DOUBLE}) | _TEXT,
    "number": frozenset({_T.DOUBLE}) | _TEXT,
    "decimal": frozenset({_T.DOUBLE}) | _TEXT,
    "boolean": frozenset({_T.BOOLEAN}) | _TEXT,
    "date": frozenset({_T.DATE}) | _TIMESTAMPS | _TEXT,
    "timestamp": _TIMESTAMPS | _TEXT,
    "string": _TEXT,
}
_CAST_KINDS = {
    _T.DOUBLE: "number",
    _T.FLOAT: "number",
    _T.DECIMAL: "decimal",
    _T.DATE: "date",
    _T.BOOLEAN: "boolean",
}
# Collations that mean byte order on both engines (compared case-insensitively, written "C").
_BYTE_ORDER_COLLATIONS = frozenset({"c", "posix"})
_DAY_OF_WEEK_UNITS = frozenset({"DOW", "DAYOFWEEK", "WEEKDAY"})
_ISO_DAY_OF_WEEK_UNITS = frozenset({"ISODOW", "DAYOFWEEKISO", "DAYOFWEEK_ISO", "DOW_ISO"})


@dataclass(frozen=True)
class PairRule:
    """One row of the table: what happens to ``construct`` read in ``read`` on ``engine``."""

    construct: str
    read: str  # a dialect, or "*" (any read dialect other than the engine's)
    engine: str
    action: str  # "rewritten" or "refused"
    why: str


# The table (docs/enforcement.md repeats it). Rules apply only when read != engine.
RULES: tuple[PairRule, ...] = (
    PairRule("integer `/`", "postgres, trino", "duckdb", "rewritten",
             "`a / b` of two integers truncates; written as DuckDB's `a // b`, which truncates "
             "integers and divides other numbers exactly as `/` does"),
    PairRule("DuckDB `//`", "duckdb", "postgres", "rewritten",
             "`//` truncates integers but divides decimals and doubles (7.5 // 2 = 3.75); "
             "written as PostgreSQL's `/`, not `DIV()`"),
    PairRule("`/` by zero", "snowflake, bigquery, spark, databricks", "duckdb", "rewritten",
             "fails there (Spark read with ANSI semantics), DuckDB's `/` gives Infinity: written "
             "`CAST(a AS DOUBLE) // b`, which divides exactly and fails on zero; on PostgreSQL "
             "Spark's `/` no longer gives NULL for zero"),
    PairRule("`DIV` / `div` (integer division)", "spark, bigquery", "duckdb", "rewritten",
             "truncates decimals too; written as `TRUNC(a // b)`"),
    PairRule("`GREATEST`/`LEAST` with NULL", "trino, snowflake, bigquery", "postgres, spark",
             "rewritten", "NULL when any argument is NULL; PostgreSQL skips NULLs: written "
             "`CASE WHEN a IS NULL OR … THEN NULL ELSE GREATEST(a, …) END` (refused when an "
             "argument is a subquery)"),
    PairRule("`REGEXP_LIKE`/`RLIKE` (full match)", "snowflake", "postgres, spark", "rewritten",
             "the pattern must match the whole string: anchored as `^(?:pattern)$` (Spark: "
             "`RLIKE`, with `(?i)` for the flag 'i')"),
    PairRule("`REGEXP_FULL_MATCH`", "duckdb", "postgres, spark", "rewritten",
             "anchored as `^(?:pattern)$` with `~` (Spark: `RLIKE`)"),
    PairRule("`SUBSTR`/`SUBSTRING` with a start that is not a positive integer literal, or a "
             "negative length literal", "*", "*", "refused",
             "zero and negative starts (and negative lengths) mean different things in every "
             "dialect: from the end, as 1, or before the string"),
    PairRule("`DAYOFWEEK`/`EXTRACT(DOW …)`", "*", "*", "rewritten",
             "numbered as the read dialect numbers days: 0 = Sunday (duckdb, postgres, "
             "snowflake), 1 = Sunday (spark, bigquery), ISO 1 = Monday (trino `DOW`, "
             "`day_of_week`, `ISODOW` everywhere)"),
    PairRule("`DATEDIFF`/`DATE_DIFF` in weeks", "*", "*", "refused",
             "counted as boundaries from Monday or from Sunday, or as whole weeks, depending on "
             "the dialect"),
    PairRule("`date_diff` in months, quarters or years", "trino, presto", "duckdb", "refused",
             "whole units there (2024-01-31 to 2024-03-03 is 1 month), boundaries crossed in "
             "DuckDB (2)"),
    PairRule("`WEEK`/`WEEKOFYEAR`", "*", "postgres", "rewritten",
             "ISO week numbers: written `EXTRACT(WEEK …)`"),
    PairRule("`EXTRACT(WEEK …)`", "bigquery", "*", "refused",
             "BigQuery numbers Sunday-started weeks from 0; the engines number ISO weeks"),
    PairRule("`LEFT`/`RIGHT` with a length that is not a non-negative integer literal",
             "trino, presto, snowflake, bigquery, spark, databricks", "*", "refused",
             "a negative length gives '' (Snowflake, Spark) or fails (BigQuery); the engines "
             "keep all but the last characters"),
    PairRule("`DATE_TRUNC(d, WEEK)` (weeks starting Sunday) and `WEEK(<day>)` other than "
             "MONDAY", "bigquery", "postgres, spark", "refused",
             "PostgreSQL's and Spark's weeks start on Monday"),
    PairRule("`CAST` to an integer type", "spark, databricks", "*", "rewritten / refused",
             "Spark truncates toward zero (CAST(1.7 AS INT) = 1), the engines round: a "
             "non-integer number is written `CAST(TRUNC(x) AS INT)`; text (other than an "
             "integer literal), or an operand of a type meshgov cannot tell, is refused. "
             "Spark's `CAST` is read with ANSI semantics "
             "(Spark 4's default: it fails on bad input)"),
    PairRule("`CAST` of a double to an integer type", "trino, snowflake, bigquery", "*",
             "rewritten", "rounds half away from zero there, half to even on the engines "
             "(CAST(2.5e0 AS INT) = 3 vs 2): written `CAST(ROUND(x) AS INT)` (PostgreSQL: "
             "`ROUND(CAST(x AS DECIMAL))`)"),
    PairRule("`CAST` of a text literal that is not an integer to an integer type",
             "postgres, trino, bigquery", "duckdb", "refused",
             "DuckDB reads '1e3' and '1.7' as numbers where these fail"),
    PairRule("`CAST` of text to an integer type", "duckdb, snowflake", "postgres", "rewritten",
             "'1e3' and '1.7' are numbers there: cast through NUMERIC first"),
    PairRule("`CAST` of a boolean to BIGINT, of an integer to BOOLEAN", "*", "postgres",
             "rewritten", "PostgreSQL casts boolean only to and from INT: `CAST(CAST(b AS INT) "
             "AS BIGINT)` and `(n <> 0)`"),
    PairRule("`TRY_CAST`/`SAFE_CAST` that can fail", "*", "postgres",
             "refused", "PostgreSQL has no non-failing cast: it would raise where the read "
             "dialect gives NULL; casts that cannot fail (to text, integer to bigint…) are kept"),
    PairRule("`ROUND` of a double", "*", "postgres", "rewritten",
             "PostgreSQL rounds a double half to even, the others half away from zero: "
             "written `ROUND(CAST(x AS DECIMAL), n)` (which also gives PostgreSQL the "
             "`ROUND(x, n)` it lacks for doubles)"),
    PairRule("`ROUND` of a double", "postgres", "duckdb", "refused",
             "PostgreSQL rounds it half to even, DuckDB half away from zero"),
    PairRule("`TRY(…)`", "duckdb", "postgres, spark", "refused", "neither has TRY"),
    PairRule("`QUALIFY` with `SELECT *`", "*", "postgres, spark", "refused",
             "PostgreSQL has no QUALIFY (and sqlglot's Spark emulates it too): sqlglot moves the "
             "window into a derived table whose `*` then carries an extra `_w` column"),
    PairRule("`QUALIFY` with `ORDER BY`/`LIMIT`", "*", "postgres, spark", "rewritten",
             "sqlglot's emulation kept ORDER BY and LIMIT in the derived table it makes, so "
             "LIMIT cut the rows before QUALIFY filtered them: written `SELECT <outputs> FROM "
             "(… QUALIFY …) AS _q ORDER BY … LIMIT …` (refused when an output is unnamed)"),
    PairRule("`PERCENTILE_CONT` of a decimal or integer", "postgres", "duckdb", "rewritten",
             "PostgreSQL interpolates in double precision, DuckDB in the column's decimal type "
             "(405.955 vs 405.95): the ordered value is written `CAST(x AS DOUBLE)`"),
    PairRule("`row_to_json`, `json_build_object`", "postgres", "duckdb", "rewritten",
             "DuckDB has neither name: written `to_json(row)` and `json_object(k, v, …)`, which "
             "build the same JSON"),
    PairRule("`INTERVAL (expr) unit`", "*", "*", "rewritten",
             "written as `(expr) * INTERVAL '1' unit` (sqlglot dropped the expression for "
             "PostgreSQL)"),
    PairRule("`COLLATE`", "*", "*", "rewritten / refused",
             "`C`/`POSIX` (byte order) are written `\"C\"`, whatever the case the read dialect "
             "folded them to (on Spark the clause is dropped: its default collation, "
             "UTF8_BINARY, is byte order); any other collation is refused"),
    # Spark 4 (ANSI on) as the engine; measured with pyspark 4.3 (tests/security/
    # test_spark_dialect_parity.py runs each on DuckDB or PostgreSQL and on Spark).
    PairRule("integer `/`", "postgres, trino", "spark", "rewritten / refused",
             "truncates integers there, Spark's `/` divides as floating point: two integers are "
             "written `a DIV b`; operands of a type meshgov cannot tell are refused"),
    PairRule("DuckDB `//`", "duckdb", "spark", "rewritten / refused",
             "truncates integers (kept: Spark's `DIV`) but divides decimals and doubles exactly, "
             "where Spark's `DIV` truncates: written `/`; operands of unknown type are refused"),
    PairRule("`DAYOFWEEK`/`EXTRACT(DOW …)`/`ISODOW`", "*", "spark", "rewritten",
             "Spark's DAYOFWEEK counts Sunday as 1 and has no ISODOW (sqlglot's ISO form made "
             "Sunday 2): ISO days are written `EXTRACT(DOW_ISO FROM d)`, days from Sunday = 0 "
             "`EXTRACT(DOW_ISO FROM d) % 7`"),
    PairRule("`CAST` to an integer type", "duckdb, postgres, trino, snowflake, bigquery",
             "spark", "rewritten / refused",
             "Spark truncates toward zero (CAST(2.7 AS INT) = 2), the others round (3): a "
             "decimal is written `CAST(ROUND(x) AS INT)` (half away from zero), a double "
             "`CAST(BROUND(x) AS INT)` (half to even; trino, snowflake, bigquery: `ROUND`); text "
             "other than an integer literal, or an operand of unknown type, is refused"),
    PairRule("`ROUND` of a double", "postgres", "spark", "rewritten",
             "PostgreSQL rounds it half to even, Spark's ROUND half away from zero: written "
             "Spark's `BROUND(x, n)`"),
    PairRule("`quantile_cont`/`PERCENTILE_CONT`/`median`", "*", "spark", "rewritten / refused",
             "`PERCENTILE_CONT(x, p)` is not Spark's and sqlglot writes the WITHIN GROUP form "
             "as `PERCENTILE_APPROX` (approximate): written Spark's exact `PERCENTILE(x, p)` of "
             "a double (as PostgreSQL interpolates); DuckDB interpolates a decimal in its "
             "decimal type (405.95 vs 405.955): refused for a decimal read as duckdb (cast it "
             "to DOUBLE), as are a list of fractions and a descending order"),
    PairRule("`quantile_disc`/`PERCENTILE_DISC`", "*", "spark", "refused",
             "sqlglot writes a form Spark does not have"),
    PairRule("`ARRAY_AGG`/`LIST`", "*", "spark", "refused",
             "sqlglot writes `COLLECT_LIST`, which drops NULLs and ignores ORDER BY "
             "(`ARRAY_AGG(x ORDER BY x)[1]` is then any value)"),
    PairRule("`list_sort`/`ARRAY_SORT`", "*", "spark", "refused",
             "Spark places NULLs elsewhere in the sorted array"),
    PairRule("`dayname`/`monthname`", "*", "spark", "rewritten",
             "'Monday'/'January' there, 'Mon'/'Jan' from Spark's: written "
             "`DATE_FORMAT(d, 'EEEE')` and `DATE_FORMAT(d, 'MMMM')`"),
    PairRule("`REGEXP_REPLACE`", "*", "spark", "rewritten / refused",
             "DuckDB and PostgreSQL replace the first match unless the flag 'g' is given, "
             "Spark every match: refused without 'g' (read as duckdb or postgres), the flag "
             "dropped with it; back-references (`\\1` vs `$1`) differ: a replacement that is "
             "not a literal free of `\\` and `$` is refused"),
    PairRule("`date - date`", "*", "spark", "rewritten",
             "a number of days there, an interval on Spark: written `DATEDIFF(DAY, b, a)`"),
    PairRule("`date_diff`/`DATEDIFF` other than days between two dates", "*", "spark",
             "refused", "Spark counts whole units (2024-01-31 to 2024-03-03 is 1 month), "
             "DuckDB the boundaries crossed (2); timestamps likewise"),
    PairRule("`LEFT`/`RIGHT` with a length that is not a non-negative integer literal",
             "duckdb, postgres", "spark", "refused",
             "a negative length keeps all but the last characters there, gives '' on Spark"),
)  # fmt: skip


def rules_for(read: str, engine: str) -> list[PairRule]:
    """The rules that apply to one pair (for docs and tests)."""

    def names(field: str) -> set[str]:
        return {part.strip() for part in field.split(",")}

    if read == engine:
        return []
    return [
        rule
        for rule in RULES
        if (rule.read == "*" or read in names(rule.read))
        and (rule.engine == "*" or engine in names(rule.engine))
    ]


ColumnKinds = Mapping[str, set[LogicalType]]


def translate(
    statement: exp.Expr, read: str, write: str, column_types: ColumnKinds | None = None
) -> bool:
    """Rewrite or refuse the constructs whose meaning differs between ``read`` and ``write``.

    ``column_types``: lower-cased column name → the logical types it has in the query's tables
    (used to tell a Spark cast of an integer from one of a decimal). Returns whether the tree
    changed. Raises ``SqlUnsupportedError`` naming the construct and the pair.
    """
    if read == write or write not in ENGINE_DIALECTS or {read, write} <= _SPARK:
        return False
    pair = _Pair(read, write, column_types or {})
    changed = False
    # Post-order over a snapshot: a rewrite replaces a node whose children are already done.
    for node in list(statement.walk(bfs=False))[::-1]:
        handler = _HANDLERS.get(type(node))
        if handler is not None and handler(node, pair):
            changed = True
    return changed


class _Pair:
    def __init__(self, read: str, write: str, column_types: ColumnKinds) -> None:
        self.read = read
        self.write = write
        self.column_types = column_types

    def refuse(self, construct: str, why: str) -> SqlUnsupportedError:
        return SqlUnsupportedError(
            f"{construct} read as {self.read} does not mean the same on the {self.write} engine "
            f"({why}); rewrite the query without it, or read it in the {self.write} dialect"
        )

    def kind(self, node: exp.Expr) -> str | None:
        """What an expression holds, when it can be told without the engine: a logical type
        name, "integral" (a number with no fractional part) or None (unknown)."""
        if isinstance(node, exp.Paren):
            return self.kind(node.this)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return "string"
            text = node.name
            return "integer" if text.lstrip("-").isdigit() else "decimal"
        if isinstance(node, exp.Boolean):
            return "boolean"
        if isinstance(node, exp.Column):
            types = self.column_types.get(node.name.lower(), set())
            return next(iter(types)).value if len(types) == 1 else None
        if isinstance(node, exp.Cast):
            target = node.args.get("to")
            if isinstance(target, exp.DataType):
                if target.this in _INTEGRAL:
                    return "integer"
                if target.this in _TEXT:
                    return "string"
                return _CAST_KINDS.get(target.this)
            return None
        if isinstance(node, exp.Count):
            return "integer"
        if isinstance(node, exp.Window):
            return self.kind(node.this)
        if isinstance(node, exp.Trunc | exp.Floor | exp.Ceil) or (
            isinstance(node, exp.Round) and node.args.get("decimals") is None
        ):
            return "integral"
        if isinstance(node, exp.Sum | exp.Min | exp.Max | exp.Abs | exp.Neg):
            return self.kind(node.this)
        if isinstance(node, exp.Add | exp.Sub | exp.Mul) or (
            isinstance(node, exp.Div) and node.args.get("typed")
        ):
            return _arithmetic({self.kind(node.this), self.kind(node.expression)})
        if isinstance(node, exp.Avg):
            # PostgreSQL averages integers as NUMERIC (DuckDB: DOUBLE, rounded the same way).
            return "number" if self.kind(node.this) == "number" else "decimal"
        if isinstance(node, exp.Div):
            return "number"  # `/` of the dialects that divide as floating point
        return None


def _arithmetic(kinds: set[str | None]) -> str | None:
    if kinds <= {"integer"}:
        return "integer"
    if "number" in kinds and kinds <= {"integer", "integral", "decimal", "number"}:
        return "number"
    if kinds <= {"integer", "integral", "decimal"}:
        return "decimal"
    return None


def _division(node: exp.Expr, pair: _Pair) -> bool:
    """`/` as the read dialect means it. PostgreSQL/Trino (sqlglot marks them ``typed``):
    integers truncate, as DuckDB's `//` does (it divides decimals and doubles exactly). The
    others divide as floating point and fail on a zero divisor (Spark read with ANSI semantics):
    DuckDB's `/` gives Infinity there, its `//` over a double fails as they do."""
    assert isinstance(node, exp.Div)
    if pair.write == "spark":
        return _division_on_spark(node, pair)
    if pair.write == "postgres":
        if node.args.get("safe") and pair.read in _SPARK:
            node.set("safe", False)
            return True
        return False
    if pair.write != "duckdb":
        return False
    if node.args.get("typed"):
        node.replace(exp.IntDiv(this=node.this, expression=node.expression))
        return True
    if pair.read in _SPARK | {"snowflake", "bigquery"}:
        dividend = exp.Cast(this=node.this, to=exp.DataType.build("DOUBLE"))
        node.replace(exp.IntDiv(this=dividend, expression=node.expression))
        return True
    return False


def _division_on_spark(node: exp.Div, pair: _Pair) -> bool:
    """PostgreSQL's/Trino's `/` truncates integers (sqlglot marks it ``typed``); Spark's `/`
    divides them as floating point and its `DIV` truncates: integers are written `a DIV b`."""
    if not node.args.get("typed"):
        return False
    kinds = {pair.kind(node.this), pair.kind(node.expression)}
    if kinds <= {"integer"}:
        node.replace(exp.IntDiv(this=node.this, expression=node.expression))
        return True
    if None in kinds or not kinds <= {"integer", "integral", "decimal", "number"}:
        raise pair.refuse(
            "`/` of operands of a type meshgov cannot tell",
            "it truncates integers there and divides them as floating point on Spark; cast "
            "the operands to NUMERIC or DOUBLE",
        )
    return False


def _int_division(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.IntDiv)
    if pair.write == "spark" and pair.read == "duckdb":
        # DuckDB's `//` truncates integers (as Spark's DIV) but divides decimals and doubles
        # exactly (as Spark's `/`).
        kinds = {pair.kind(node.this), pair.kind(node.expression)}
        if kinds <= {"integer"}:
            return False
        if None in kinds or not kinds <= {"integer", "integral", "decimal", "number"}:
            raise pair.refuse(
                "`//` of operands of a type meshgov cannot tell",
                "it truncates integers but divides decimals and doubles exactly",
            )
        node.replace(exp.Div(this=node.this, expression=node.expression))
        return True
    if pair.read == "duckdb" and pair.write == "postgres":
        node.replace(exp.Div(this=node.this, expression=node.expression, typed=True, safe=False))
        return True
    if pair.write == "duckdb" and pair.read != "duckdb":
        # Spark `div` and BigQuery DIV truncate decimals too; DuckDB `//` divides them exactly.
        quotient = exp.IntDiv(this=node.this, expression=node.expression)
        node.replace(exp.Trunc(this=quotient))
        return True
    return False


def _null_propagating_extreme(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.Greatest | exp.Least)
    if pair.write not in ("postgres", "spark") or node.args.get("ignore_nulls") is not False:
        return False
    arguments = [node.this, *node.expressions]
    if any(argument.find(exp.Query) for argument in arguments):
        # Each argument is repeated in the NULL test: a subquery (its tables) would be copied.
        raise pair.refuse(
            f"{node.sql_name()} of a subquery", "NULL in any argument makes it NULL there"
        )
    any_null = exp.or_(*(exp.Is(this=a.copy(), expression=exp.Null()) for a in arguments))
    kept = node.copy()
    kept.set("ignore_nulls", True)
    node.replace(exp.Case(ifs=[exp.If(this=any_null, true=exp.Null())], default=kept))
    return True


def _anchored(pattern: exp.Expr) -> exp.Expr:
    # Parenthesised: PostgreSQL's `~` and `||` have the same precedence.
    return exp.Paren(
        this=exp.DPipe(
            this=exp.DPipe(this=exp.Literal.string("^(?:"), expression=pattern),
            expression=exp.Literal.string(")$"),
        )
    )


def _full_match(node: exp.Expr, pair: _Pair) -> bool:
    if pair.write not in ("postgres", "spark"):
        return False
    if isinstance(node, exp.RegexpLike) and not node.args.get("full_match"):
        return False
    flag = node.args.get("flag")
    replacement_kind: type[exp.RegexpLike | exp.RegexpILike] = exp.RegexpLike
    if flag is not None:
        if not (isinstance(flag, exp.Literal) and flag.is_string and flag.name in ("", "c", "i")):
            raise pair.refuse("a regular expression with flags", "flags differ per dialect")
        if flag.name == "i":
            replacement_kind = exp.RegexpILike
    if pair.write == "spark":
        # Spark's RLIKE finds the pattern anywhere (Java regular expressions; `(?i)` ignores
        # case); it has no regular-expression ILIKE.
        pattern = node.expression
        if replacement_kind is exp.RegexpILike:
            pattern = exp.DPipe(this=exp.Literal.string("(?i)"), expression=pattern)
        node.replace(exp.RegexpLike(this=node.this, expression=_anchored(pattern)))
        return True
    node.replace(replacement_kind(this=node.this, expression=_anchored(node.expression)))
    return True


def _substring(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.Substring)
    start = node.args.get("start")
    length = node.args.get("length")
    if start is not None and not _positive_integer(start):
        raise pair.refuse(
            "SUBSTR/SUBSTRING with a start position that is not a positive integer literal",
            "a zero or negative start counts from the end, counts as 1 or falls before the "
            "string depending on the dialect",
        )
    if isinstance(length, exp.Neg) or (
        isinstance(length, exp.Literal) and length.name.startswith("-")
    ):
        raise pair.refuse("SUBSTR/SUBSTRING with a negative length", "dialects differ")
    return False


def _positive_integer(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and node.name.isdigit() and int(node.name) > 0


def _day_of_week(node: exp.Expr, pair: _Pair) -> bool:
    """Every day-of-week form as `EXTRACT(DOW|ISODOW …)`, numbered as the read dialect does."""
    if isinstance(node, exp.Extract):
        unit = node.this.name.upper() if isinstance(node.this, exp.Var) else ""
        if unit in _ISO_DAY_OF_WEEK_UNITS or (
            unit in _DAY_OF_WEEK_UNITS and pair.read in ("trino", "presto")
        ):
            iso, base = True, 0
        elif unit in _DAY_OF_WEEK_UNITS:
            iso, base = False, 1 if pair.read in _SPARK | {"bigquery"} else 0
        else:
            return False
        value = node.expression
    elif isinstance(node, exp.DayOfWeekIso):
        iso, base, value = True, 0, node.this
    else:
        assert isinstance(node, exp.DayOfWeek)
        iso, base, value = False, 1 if pair.read in _SPARK else 0, node.this
    if pair.write == "spark":
        node.replace(_spark_day_of_week(value, iso, base))
        return True
    extracted: exp.Expr = exp.Cast(
        this=exp.Extract(this=exp.var("ISODOW" if iso else "DOW"), expression=value),
        to=exp.DataType.build("INT"),
    )
    if base:
        extracted = exp.Paren(this=exp.Add(this=extracted, expression=exp.Literal.number(base)))
    node.replace(extracted)
    return True


def _spark_day_of_week(value: exp.Expr, iso: bool, base: int) -> exp.Expr:
    """Spark's DAYOFWEEK numbers Sunday 1 … Saturday 7 (it has no ISODOW, and sqlglot writes
    ISO days as `(DAYOFWEEK(d) % 7) + 1`, which makes Sunday 2): ISO days are written
    `EXTRACT(DOW_ISO FROM d)` (Monday 1 … Sunday 7), days from Sunday = 0 as
    `EXTRACT(DOW_ISO FROM d) % 7` (no addition, which could overflow to the no-barrier rule)."""
    if base == 1 and not iso:
        return exp.DayOfWeek(this=value)
    iso_day = exp.Extract(this=exp.var("DOW_ISO"), expression=value)
    if iso:
        return iso_day
    return exp.Paren(this=exp.Mod(this=iso_day, expression=exp.Literal.number(7)))


def _week_start(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.DateTrunc | exp.TimestampTrunc | exp.DatetimeTrunc)
    unit = node.args.get("unit")
    if (
        pair.write in ("postgres", "spark")
        and isinstance(unit, exp.WeekStart)
        and unit.name.upper() != "MONDAY"
    ):
        raise pair.refuse(
            f"DATE_TRUNC to WEEK({unit.name.upper()})", "the engine's weeks start on Monday"
        )
    return False


def _cast(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.Cast)
    target = node.args.get("to")
    if not isinstance(target, exp.DataType):
        return False
    changed = False
    if isinstance(node, exp.TryCast) and pair.read in _SPARK and not node.args.get("safe"):
        # Spark's own CAST, read with ANSI semantics (Spark 4's default): it fails on bad
        # input, as the engines' CAST does (sqlglot reads it as Spark 3's NULL-on-failure).
        plain = exp.Cast(this=node.this, to=target)
        node.replace(plain)
        node, changed = plain, True
    operand = node.this
    kind = pair.kind(operand)
    if pair.read in _SPARK and target.this in _INTEGRAL and kind not in ("integer", "integral"):
        if kind == "string" and isinstance(operand, exp.Literal) and operand.name.isdigit():
            pass  # an integer in text: every dialect reads it the same
        elif kind in ("number", "decimal"):
            operand = exp.Trunc(this=operand)
            node.set("this", operand)
            kind, changed = "integral", True
        elif kind != "boolean":
            raise pair.refuse(
                "CAST to an integer type of "
                + ("text" if kind == "string" else "an expression of unknown type"),
                "Spark truncates toward zero where the engine rounds or fails; write "
                "CAST(TRUNC(x) AS INT) over a number",
            )
    if pair.write == "spark" and pair.read not in _SPARK and target.this in _INTEGRAL:
        operand, kind, rounded_here = _integer_cast_on_spark(operand, kind, pair)
        if rounded_here:
            node.set("this", operand)
            changed = True
    if pair.read in _ROUND_HALF_AWAY and target.this in _INTEGRAL and kind == "number":
        rounded: exp.Expr = operand
        if pair.write == "postgres":
            rounded = exp.Cast(this=operand, to=exp.DataType.build("DECIMAL"))
        operand = exp.Round(this=rounded)
        node.set("this", operand)
        kind, changed = "integral", True
    if (
        pair.write == "duckdb"
        and pair.read in ("postgres", "trino", "bigquery")
        and target.this in _INTEGRAL
        and isinstance(operand, exp.Literal)
        and operand.is_string
        and not operand.name.strip().lstrip("+-").isdigit()
    ):
        raise pair.refuse(
            f"CAST of the text {operand.sql()} to an integer type",
            "DuckDB reads it as a number where the read dialect fails",
        )
    if (
        pair.write == "postgres"
        and pair.read in ("duckdb", "snowflake")
        and target.this in _INTEGRAL
        and kind == "string"
        and not isinstance(node, exp.TryCast)
    ):
        node.set("this", exp.Cast(this=operand, to=exp.DataType.build("DECIMAL")))
        changed = True
    if (
        pair.write == "postgres"
        and kind == "boolean"
        and target.this in _INTEGRAL
        and target.this != _T.INT
    ):
        # PostgreSQL casts boolean to integer only (BigQuery's CAST(b AS INT64) is BIGINT).
        node.set("this", exp.Cast(this=operand, to=exp.DataType.build("INT")))
        changed = True
    if (
        pair.write == "postgres"
        and kind == "integer"
        and target.this == _T.BOOLEAN
        and not isinstance(node, exp.TryCast)
    ):
        # Every dialect reads CAST(n AS BOOLEAN) as n <> 0; PostgreSQL casts only INT (not
        # BIGINT, which product integers are) to boolean.
        node.replace(exp.Paren(this=exp.NEQ(this=operand, expression=exp.Literal.number(0))))
        return True
    if pair.write == "postgres" and isinstance(node, exp.TryCast):
        total = _TOTAL_CASTS.get(kind or "", frozenset())
        if target.this not in total or target.expressions:
            spelled = "SAFE_CAST" if pair.read == "bigquery" else "TRY_CAST"
            raise pair.refuse(
                f"{spelled} to {target.sql(dialect='postgres')}",
                "PostgreSQL has no cast that gives NULL instead of an error",
            )
        node.replace(exp.Cast(this=node.this, to=target))
        changed = True
    return changed


def _integer_cast_on_spark(
    operand: exp.Expr, kind: str | None, pair: _Pair
) -> tuple[exp.Expr, str | None, bool]:
    """Spark's CAST to an integer type truncates toward zero (CAST(2.7 AS INT) = 2); DuckDB and
    PostgreSQL round: a decimal half away from zero (Spark's ROUND), a double half to even
    (Spark's BROUND). Returns the operand, its kind, and whether it was rewritten."""
    if kind in ("integer", "integral", "boolean"):
        return operand, kind, False
    if kind == "string" and isinstance(operand, exp.Literal) and operand.name.isdigit():
        return operand, kind, False  # an integer in text: every dialect reads it the same
    if kind == "decimal":
        return exp.Round(this=operand), "integral", True
    if kind == "number":
        if pair.read in _ROUND_HALF_AWAY:
            return operand, kind, False  # rounded half away from zero below, as there
        return exp.Anonymous(this="BROUND", expressions=[operand]), "integral", True
    raise pair.refuse(
        "CAST to an integer type of "
        + ("text" if kind == "string" else "an expression of unknown type"),
        "Spark truncates toward zero where the read dialect rounds, and reads text such as "
        "'2.7' differently; cast a number (ROUND it first to say how)",
    )


def _round(node: exp.Expr, pair: _Pair) -> bool:
    """ROUND of a double: PostgreSQL rounds half to even, every other dialect half away from
    zero (ROUND(2.5e0) = 2 vs 3)."""
    assert isinstance(node, exp.Round)
    if pair.kind(node.this) != "number":
        return False
    if pair.write == "postgres":
        node.set("this", exp.Cast(this=node.this, to=exp.DataType.build("DECIMAL")))
        return True
    if pair.read == "postgres" and pair.write == "spark":
        # Spark's ROUND rounds half away from zero, its BROUND half to even (as PostgreSQL).
        arguments = [node.this, *([node.args["decimals"]] if node.args.get("decimals") else [])]
        node.replace(exp.Anonymous(this="BROUND", expressions=arguments))
        return True
    if pair.read == "postgres":
        raise pair.refuse(
            "ROUND of a double precision value",
            "PostgreSQL rounds it half to even, DuckDB half away from zero; round a NUMERIC",
        )
    return False


def _date_diff(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.DateDiff)
    unit = node.args.get("unit")
    name = (unit.name if isinstance(unit, exp.Expr) else str(unit or "")).upper()
    if "WEEK" in name or isinstance(unit, exp.WeekStart):
        raise pair.refuse(
            "DATEDIFF/DATE_DIFF in weeks",
            "weeks are counted as boundaries from Monday or Sunday, or as whole weeks, "
            "depending on the dialect; count days and divide",
        )
    if pair.write == "spark" and pair.read not in _SPARK:
        dates = pair.kind(node.this) == pair.kind(node.expression) == "date"
        if name != "DAY" or not dates:
            raise pair.refuse(
                f"date_diff/DATEDIFF in {name.lower() or 'an unnamed unit'}s"
                + ("" if dates else " of operands that are not both dates"),
                "Spark counts whole units (2024-01-31 to 2024-03-03 is 1 month), the read "
                "dialect the unit boundaries crossed (2); only days between two dates agree",
            )
        return False
    if (
        pair.write == "duckdb"
        and name in ("MONTH", "QUARTER", "YEAR")
        and not node.args.get("date_part_boundary")
    ):
        raise pair.refuse(
            f"date_diff in {name.lower()}s",
            "whole units there (2024-01-31 to 2024-03-03 is 1 month), unit boundaries crossed "
            "in DuckDB (2)",
        )
    return False


def _week_number(node: exp.Expr, pair: _Pair) -> bool:
    """ISO week numbers (Snowflake's default WEEK_OF_YEAR_POLICY, Trino, Spark, DuckDB) as
    PostgreSQL's `EXTRACT(WEEK …)`; BigQuery's `EXTRACT(WEEK …)` counts Sunday weeks from 0."""
    if isinstance(node, exp.Extract):
        unit = node.this.name.upper() if isinstance(node.this, exp.Var) else ""
        if unit == "WEEK" and pair.read == "bigquery":
            raise pair.refuse(
                "EXTRACT(WEEK …)", "BigQuery numbers Sunday-started weeks from 0; use ISOWEEK"
            )
        return False
    if pair.write != "postgres":
        return False
    if node.args.get("mode") is not None:
        raise pair.refuse("WEEK with a mode", "the engine has one (ISO) week numbering")
    week = exp.Extract(this=exp.var("WEEK"), expression=node.this)
    node.replace(exp.Cast(this=week, to=exp.DataType.build("INT")))
    return True


def _left_right(node: exp.Expr, pair: _Pair) -> bool:
    """DuckDB and PostgreSQL keep all but the last |n| characters for a negative n; Snowflake and
    Spark give '', BigQuery fails."""
    assert isinstance(node, exp.Left | exp.Right)
    length = node.expression
    if {pair.read, pair.write} <= {"duckdb", "postgres"}:
        return False
    if not (isinstance(length, exp.Literal) and length.name.isdigit()):
        raise pair.refuse(
            f"{node.sql_name()} with a length that is not a non-negative integer literal",
            "a negative length keeps all but the last characters (DuckDB, PostgreSQL), gives "
            "'' (Snowflake, Spark) or fails (BigQuery)",
        )
    return False


def _extract(node: exp.Expr, pair: _Pair) -> bool:
    return _day_of_week(node, pair) or _week_number(node, pair)


def _try(_node: exp.Expr, pair: _Pair) -> bool:
    if pair.write in ("postgres", "spark"):
        raise pair.refuse("TRY(...)", "the engine has no TRY")
    return False


def _qualify(node: exp.Expr, pair: _Pair) -> bool:
    select = node.parent
    if pair.write not in ("postgres", "spark") or not isinstance(select, exp.Select):
        return False
    if any(
        isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
        for e in select.expressions
    ):
        raise pair.refuse(
            "QUALIFY with SELECT *",
            "sqlglot emulates QUALIFY in a derived table, which adds a column to `*`; list the "
            "columns",
        )
    if any(select.args.get(k) for k in _AFTER_QUALIFY):
        _order_after_qualify(select, pair)
        return True
    return False


# Applied after QUALIFY; sqlglot's emulation would keep them in the derived table it makes, where
# LIMIT would cut the rows before QUALIFY filters them (a wrong answer).
_AFTER_QUALIFY = ("order", "limit", "offset")


def _output_identifier(expression: exp.Expr) -> exp.Identifier | None:
    """The identifier naming an output column (quoted as written), or None."""
    if isinstance(expression, exp.Alias):
        alias = expression.args.get("alias")
        return alias if isinstance(alias, exp.Identifier) else None
    if isinstance(expression, exp.Column) and isinstance(expression.this, exp.Identifier):
        return expression.this
    return None


def _order_after_qualify(select: exp.Select, pair: _Pair) -> None:
    """``SELECT a … QUALIFY w ORDER BY a LIMIT n`` → ``SELECT a FROM (SELECT a … QUALIFY w) AS
    _q ORDER BY a LIMIT n``, moving the original nodes (the tables in them are the ones the
    rewriter substitutes later)."""
    identifiers = [_output_identifier(e) for e in select.expressions]
    names = [i.name if i is not None else "" for i in identifiers]
    if not all(names) or len(set(names)) != len(names):
        raise pair.refuse(
            "QUALIFY with ORDER BY/LIMIT and unnamed or repeated output columns",
            "the emulation orders the filtered rows by name; alias every output column",
        )
    order = select.args.get("order")
    for column in list(order.find_all(exp.Column)) if order is not None else []:
        if column.name not in names:
            raise pair.refuse(
                "QUALIFY with ORDER BY of a column not in the output",
                "the emulation orders the filtered rows, which hold only the output columns",
            )
        column.set("table", None)
    inner = exp.Select()
    for key in [k for k, v in select.args.items() if v and k not in (*_AFTER_QUALIFY, "with_")]:
        inner.set(key, select.args[key])
        select.set(key, None)
    select.set("expressions", [exp.Column(this=i.copy()) for i in identifiers if i is not None])
    alias = exp.TableAlias(this=exp.to_identifier("_q"))
    select.set("from_", exp.From(this=exp.Subquery(this=inner, alias=alias)))


def _percentile_on_spark(node: exp.Expr, pair: _Pair) -> bool:
    """Spark reads `PERCENTILE_CONT(x, p)` (DuckDB's `quantile_cont`) not at all, and sqlglot
    writes the ordered-set form as `PERCENTILE_APPROX` (an approximation): both (and `median`)
    are written as Spark's exact, interpolating `PERCENTILE(x, p)`, of a double as PostgreSQL
    interpolates; DuckDB interpolates a decimal in its decimal type (refused)."""
    if isinstance(node, exp.WithinGroup):
        function, order = node.this, node.expression
        if not isinstance(function, exp.PercentileCont | exp.PercentileDisc):
            return False
        orders = order.expressions if isinstance(order, exp.Order) else []
        if isinstance(function, exp.PercentileDisc):
            raise pair.refuse("PERCENTILE_DISC", "Spark's differs; use PERCENTILE_CONT")
        if len(orders) != 1 or orders[0].args.get("desc"):
            raise pair.refuse(
                "PERCENTILE_CONT ordered by other than one ascending value",
                "written as Spark's PERCENTILE(x, p), which orders ascending",
            )
        value, fraction = orders[0].this, function.this
    elif isinstance(node, exp.Median):
        value, fraction = node.this, exp.Literal.number("0.5")
    elif isinstance(node, exp.PercentileCont):
        if isinstance(node.parent, exp.WithinGroup):
            return False  # done with its WITHIN GROUP
        value, fraction = node.this, node.expression
    else:
        assert isinstance(node, exp.PercentileDisc)
        if isinstance(node.parent, exp.WithinGroup):
            return False
        raise pair.refuse("quantile_disc/PERCENTILE_DISC", "Spark has no such aggregate")
    if not (isinstance(fraction, exp.Literal) and not fraction.is_string):
        raise pair.refuse(
            "a quantile that is not one number literal",
            "Spark's PERCENTILE takes one fraction here; ask for each quantile separately",
        )
    kind = pair.kind(value)
    if pair.read == "duckdb" and kind not in ("number", "integer"):
        raise pair.refuse(
            "quantile_cont/PERCENTILE_CONT/median of "
            + ("a decimal" if kind == "decimal" else "a value of a type meshgov cannot tell"),
            "DuckDB interpolates in the column's decimal type (405.95), Spark in double "
            "precision (405.955); write quantile_cont(CAST(x AS DOUBLE), p)",
        )
    if kind != "number":
        value = exp.Cast(this=value, to=exp.DataType.build("DOUBLE"))
    node.replace(exp.Quantile(this=value, quantile=fraction))
    return True


def _percentile_cont(node: exp.Expr, pair: _Pair) -> bool:
    if pair.write == "spark":
        return _percentile_on_spark(node, pair)
    if pair.read != "postgres" or pair.write != "duckdb":
        return False
    if not isinstance(node, exp.WithinGroup) or not isinstance(node.this, exp.PercentileCont):
        return False
    order = node.expression
    changed = False
    for ordered in order.expressions if isinstance(order, exp.Order) else []:
        value = ordered.this
        if not (isinstance(value, exp.Cast) and value.to.this == exp.DataType.Type.DOUBLE):
            value.replace(exp.Cast(this=value.copy(), to=exp.DataType.build("DOUBLE")))
            changed = True
    return changed


_POSTGRES_JSON_ON_DUCKDB = {"row_to_json": "to_json", "json_build_object": "json_object"}


def _postgres_json(node: exp.Expr, pair: _Pair) -> bool:
    if pair.read != "postgres" or pair.write != "duckdb" or not isinstance(node, exp.Anonymous):
        return False
    name = _POSTGRES_JSON_ON_DUCKDB.get(node.name.lower())
    if name is None or (name == "to_json" and len(node.expressions) != 1):
        return False
    node.set("this", name)
    return True


def _interval(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.Interval)
    value = node.this
    unit = node.args.get("unit")
    if (
        value is None
        or isinstance(value, exp.Literal)
        or (isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal))
    ):
        return False
    if not isinstance(unit, exp.Var):
        raise pair.refuse("INTERVAL of an expression without a unit", "no unit to scale")
    one = exp.Interval(this=exp.Literal.string("1"), unit=exp.var(unit.name.upper()))
    inner = value if isinstance(value, exp.Paren) else exp.Paren(this=value)
    node.replace(exp.Paren(this=exp.Mul(this=inner, expression=one)))
    return True


def _collate(node: exp.Expr, pair: _Pair) -> bool:
    assert isinstance(node, exp.Collate)
    collation = node.expression
    name = collation.name if isinstance(collation, exp.Expr) else ""
    if name.lower() not in _BYTE_ORDER_COLLATIONS:
        raise pair.refuse(f"COLLATE {name or '?'}", "only C / POSIX (byte order) mean the same")
    if pair.write == "spark":
        node.replace(node.this)  # Spark's default collation, UTF8_BINARY, is byte order
        return True
    node.set("expression", exp.to_identifier("C", quoted=True))
    return True


def _array_agg(_node: exp.Expr, pair: _Pair) -> bool:
    if pair.write == "spark" and pair.read not in _SPARK:
        raise pair.refuse(
            "ARRAY_AGG/LIST",
            "sqlglot writes Spark's COLLECT_LIST, which drops NULLs and ignores ORDER BY (so "
            "`ARRAY_AGG(x ORDER BY x)[1]` is not the least value); use min/max or string_agg",
        )
    return False


def _array_sort(_node: exp.Expr, pair: _Pair) -> bool:
    if pair.write == "spark" and pair.read not in _SPARK:
        raise pair.refuse(
            "list_sort/ARRAY_SORT", "Spark places NULLs differently in a sorted array"
        )
    return False


_NAME_FORMATS: dict[type[exp.Expr], str] = {exp.Dayname: "%A", exp.Monthname: "%B"}


def _day_or_month_name(node: exp.Expr, pair: _Pair) -> bool:
    """DuckDB's `dayname`/`monthname` give 'Monday'/'January'; Spark's 'Mon'/'Jan': written as
    Spark's `DATE_FORMAT(d, 'EEEE'|'MMMM')` (English names: the parity test checks them)."""
    if pair.write != "spark" or pair.read in _SPARK:
        return False
    if node.args.get("abbreviated"):
        raise pair.refuse(f"abbreviated {node.key.upper()}", "not rewritten for Spark")
    fmt = _NAME_FORMATS[type(node)]
    node.replace(exp.TimeToStr(this=node.this, format=exp.Literal.string(fmt)))
    return True


def _regexp_replace(node: exp.Expr, pair: _Pair) -> bool:
    """DuckDB and PostgreSQL replace the first match unless the flag 'g' is given, Spark every
    match; replacement back-references are `\\1` there and `$1` in Spark."""
    if pair.write != "spark" or pair.read in _SPARK:
        return False
    modifiers = node.args.get("modifiers")
    flags = modifiers.name if isinstance(modifiers, exp.Literal) else None
    if pair.read in ("duckdb", "postgres") and flags != "g":
        raise pair.refuse(
            "REGEXP_REPLACE without the flag 'g'",
            "it replaces the first match there, every match on Spark; pass 'g' to replace all",
        )
    replacement = node.args.get("replacement")
    if not (
        isinstance(replacement, exp.Literal)
        and replacement.is_string
        and "\\" not in replacement.name
        and "$" not in replacement.name
    ):
        raise pair.refuse(
            "REGEXP_REPLACE with a replacement that is not a literal without `\\` or `$`",
            "back-references are written differently on Spark",
        )
    node.set("modifiers", None)
    node.set("single_replace", None)
    return True


def _date_minus_date(node: exp.Expr, pair: _Pair) -> bool:
    """`date - date` is a number of days in DuckDB and PostgreSQL, a day interval on Spark:
    written as Spark's day count `DATEDIFF(DAY, b, a)`."""
    assert isinstance(node, exp.Sub)
    if pair.write != "spark" or pair.read in _SPARK:
        return False
    if pair.kind(node.this) == pair.kind(node.expression) == "date":
        node.replace(exp.DateDiff(this=node.this, expression=node.expression, unit=exp.var("DAY")))
        return True
    return False


Handler = Callable[[exp.Expr, _Pair], bool]


def _handlers(entries: Iterable[tuple[str, Handler]]) -> dict[type[exp.Expr], Handler]:
    table: dict[type[exp.Expr], Handler] = {}
    for names, handler in entries:
        for name in names.split():
            kind = getattr(exp, name, None)
            if isinstance(kind, type) and issubclass(kind, exp.Expr):
                table[kind] = handler
    return table


_HANDLERS = _handlers(
    [
        ("Div", _division),
        ("IntDiv", _int_division),
        ("Greatest Least", _null_propagating_extreme),
        ("RegexpLike RegexpFullMatch", _full_match),
        ("Substring", _substring),
        ("DayOfWeek DayOfWeekIso", _day_of_week),
        ("Extract", _extract),
        ("DateDiff", _date_diff),
        ("Week WeekOfYear", _week_number),
        ("Left Right", _left_right),
        ("DateTrunc TimestampTrunc DatetimeTrunc", _week_start),
        ("Cast TryCast", _cast),
        ("Try", _try),
        ("Round", _round),
        ("Qualify", _qualify),
        ("Interval", _interval),
        ("WithinGroup PercentileCont PercentileDisc Median", _percentile_cont),
        ("ArrayAgg", _array_agg),
        ("ArraySort SortArray", _array_sort),
        ("Dayname Monthname", _day_or_month_name),
        ("RegexpReplace", _regexp_replace),
        ("Sub", _date_minus_date),
        ("Anonymous", _postgres_json),
        ("Collate", _collate),
    ]
)


__all__ = ["ENGINE_DIALECTS", "RULES", "PairRule", "rules_for", "translate"]
