"""What a value may be — text, or something else — for the casts an engine adds by itself.

DuckDB compares a text value with a number, a boolean or a date by casting the text to the other
type (``gender = 1`` fails on ``'F'``); Spark with ANSI on does the same, and also when it unifies
the branches of a CASE or the arguments of a COALESCE. Such a cast fails on a value, so
``barrier.py`` treats a comparison that mixes the two, with the text side read from data, as
fallible. Whether a side may be text is inferred here, conservatively:

- a column of the catalogue by its logical type (``string`` is text);
- a name the query defines (a CTE, derived-table or window alias, a column list) by every
  expression that defines it, together with the catalogue's column of that name if there is one
  (names are not resolved by scope, so every meaning a name has counts);
- casts by their target type, functions by what they return, CASE and friends by their results;
- anything not known (a name defined by ``*`` only, a function not listed) may be either.

JSON counts as text: casting it to another type fails on a value that is not one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sqlglot import exp

from meshgov.core.manifest import LogicalType
from meshgov.core.sql.model import Mask, PortColumn
from meshgov.core.sql.validate import IMPLICIT_CASTS, Inventory, classes_named, is_natural

COMPARED = tuple(IMPLICIT_CASTS)
TEXT, OTHER = 1, 2
UNKNOWN = TEXT | OTHER
NONE = 0  # NULL: compares with anything without a cast

_TEXT_TYPES = frozenset(
    {
        exp.DataType.Type.TEXT,
        exp.DataType.Type.VARCHAR,
        exp.DataType.Type.NVARCHAR,
        exp.DataType.Type.CHAR,
        exp.DataType.Type.NCHAR,
        exp.DataType.Type.BPCHAR,
        exp.DataType.Type.JSON,
        exp.DataType.Type.JSONB,
    }
)
_TEXT_FUNCTIONS = tuple(
    classes_named(
        "Lower Upper Initcap Trim Substring Left Right Pad Repeat Replace Reverse Translate "
        "Overlay Space Concat ConcatWs DPipe MD5 SHA SHA2 Hex LowerHex Chr Soundex SplitPart "
        "RegexpExtract RegexpReplace RegexpSubstr ToChar TimeToStr Dayname Monthname GroupConcat "
        "ArrayToString JSONExtract JSONExtractScalar JSONBExtract JSONBExtractScalar ParseJSON "
        "JSONObject JSONArray JSONArrayAgg"
    )
)
# Functions whose value is never text: numbers, booleans, dates, times, intervals, arrays.
_OTHER_FUNCTIONS = tuple(
    classes_named(
        "Abs Ceil Floor Round Trunc Sign Sqrt Cbrt Exp Ln Log Pow Pi Degrees Radians Sin Cos Tan "
        "Asin Acos Atan Atan2 Cot Sinh Cosh Tanh IsNan IsInf SafeDivide Length BitLength "
        "ByteLength Levenshtein StrPosition Ascii Contains EndsWith StartsWith RegexpLike "
        "RegexpILike RegexpCount RegexpInstr RegexpFullMatch CurrentDate CurrentTime "
        "CurrentTimestamp Localtime Localtimestamp Rand Date DateAdd DateDiff DateSub DateTrunc "
        "DateFromParts Datetime DatetimeAdd DatetimeDiff DatetimeSub DatetimeTrunc Day "
        "DayOfMonth DayOfWeek DayOfWeekIso DayOfYear Extract Hour LastDay Minute Month "
        "MonthsBetween Quarter Second StrToDate StrToTime Time TimeAdd TimeDiff TimeSub "
        "TimeTrunc Timestamp TimestampAdd TimestampDiff TimestampSub TimestampTrunc "
        "TimestampFromParts TsOrDsAdd TsOrDsDiff TsOrDsToDate TsOrDsToTimestamp TimeStrToTime "
        "TimeStrToDate DateStrToDate UnixToTime TimeToUnix UnixSeconds Week WeekOfYear Year "
        "YearOfWeek ToNumber MakeInterval AddMonths Count CountIf Sum Avg ApproxDistinct Corr "
        "CovarPop CovarSamp Stddev StddevPop StddevSamp Variance VariancePop Kurtosis Skewness "
        "RowNumber Rank DenseRank Ntile PercentRank CumeDist Grouping LogicalAnd LogicalOr "
        "ArraySize ArrayContains ArrayOverlaps ArrayPosition Array ArrayAgg ArrayConcat "
        "ArrayDistinct ArraySort ArrayFilter ArraySlice Struct Map List Transform Flatten "
        "GenerateSeries GenerateDateArray PercentileCont Interval"
    )
)
# Functions whose value is one of their first argument's.
_ARGUMENT_FUNCTIONS = tuple(
    classes_named(
        "Max Min AnyValue First Last FirstValue LastValue NthValue Lag Lead Mode ArgMax ArgMin "
        "Median Quantile PercentileDisc ApproxQuantile Nullif"
    )
)
# Expressions that are true, false or null.
_PREDICATES = (exp.Predicate, exp.Connector, exp.Not, exp.Exists, exp.Boolean)
_ARITHMETIC = tuple(
    classes_named(
        "Add Sub Mul Div Mod IntDiv Neg BitwiseAnd BitwiseOr BitwiseXor BitwiseNot "
        "BitwiseLeftShift BitwiseRightShift"
    )
)


_NEVER_TEXT: tuple[type[exp.Expr], ...] = (*_PREDICATES, *_ARITHMETIC, *_OTHER_FUNCTIONS)


def compared_operands(node: exp.Expr) -> list[list[exp.Expr]]:
    """The groups of values ``node`` compares or unifies (each group cast to one type)."""
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            return []  # a subquery's type is decided when binding: fails always or never
        return [[node.this, *node.expressions]]
    if isinstance(node, exp.Between):
        return [[node.this, node.args["low"], node.args["high"]]]
    if isinstance(node, exp.Case):
        results = [branch.args["true"] for branch in node.args.get("ifs") or []]
        groups = [[*results, *_present(node.args.get("default"))]]
        if node.this is not None:  # CASE x WHEN v THEN …: x is compared with each v
            groups.append([node.this, *(b.this for b in node.args.get("ifs") or [])])
        return groups
    if isinstance(node, exp.If):
        return [[node.args["true"], *_present(node.args.get("false"))]]
    if isinstance(node, exp.Coalesce | exp.Greatest | exp.Least):
        return [[node.this, *node.expressions]]
    return [[node.this, node.expression]]


def _present(node: exp.Expr | None) -> list[exp.Expr]:
    return [] if node is None else [node]


def _logical_kind(logical: LogicalType) -> int:
    return TEXT if logical is LogicalType.string else OTHER


def _masked_kind(column: PortColumn, mask: Mask) -> int:
    """What a secure view shows in place of the column: a hash or a partial value is text
    whatever the column's type; a template may be anything."""
    if mask.kind in ("hash", "partial"):
        return TEXT
    if mask.kind == "expr":
        return UNKNOWN
    if mask.kind == "year":
        return OTHER
    if mask.kind == "redact" and column.type is LogicalType.string:
        return TEXT  # '[REDACTED]'
    return _logical_kind(column.type)  # a NULL of the column's type


@dataclass(frozen=True)
class QueryColumns:
    """The columns of a query's tables by name, as the fallible-expression checks see them:
    ``types``, their logical types in the catalogue; ``kinds``, what the secure views show
    (masks included), as ``TEXT``/``OTHER`` bits."""

    types: dict[str, set[LogicalType]]
    kinds: dict[str, int]
    shared: frozenset[str] = frozenset()  # names in two or more of the query's table references

    @classmethod
    def of(cls, tables: Iterable[tuple[Iterable[PortColumn], Mapping[str, Mask]]]) -> QueryColumns:
        """From each table's columns and the masks its decision applies (keyed by column)."""
        types: dict[str, set[LogicalType]] = {}
        kinds: dict[str, int] = {}
        seen: set[str] = set()
        shared: set[str] = set()
        for columns, masks in tables:
            masked = {name.lower(): mask for name, mask in masks.items()}
            for column in columns:
                name = column.name.lower()
                types.setdefault(name, set()).add(column.type)
                # The secure view shows the mask's value in place of the column's.
                if name in masked:
                    kind = _masked_kind(column, masked[name])
                else:
                    kind = _logical_kind(column.type)
                kinds[name] = kinds.get(name, NONE) | kind
                if name in seen:
                    shared.add(name)
            seen.update(column.name.lower() for column in columns)
        return cls(types, kinds, frozenset(shared))


class ValueKinds:
    """Kinds (a bit set of ``TEXT`` and ``OTHER``) of the expressions of one statement, computed
    on demand and remembered, each node once (iteratively: expressions thousands of terms deep
    must not recurse)."""

    def __init__(self, inventory: Inventory, columns: QueryColumns) -> None:
        self._inventory = inventory
        self._catalogue: Mapping[str, int] = columns.kinds
        self._shared = columns.shared
        self._definitions: dict[str, list[exp.Expr | None]] | None = None
        self._kinds: dict[int, int] = {}
        self._reads_data: dict[int, bool] = {}
        self._resolving: set[str] = set()

    def casts_text_from_data(self, groups: list[list[exp.Expr]]) -> bool:
        """A group in which a value that may be text and is read from data meets a value that
        may be something else: the engine may cast that text."""
        for group in groups:
            kinds = [(self.kind(value), self.reads_data(value)) for value in group]
            for i, (kind, data) in enumerate(kinds):
                if not (kind & TEXT and data):
                    continue
                if any(other & OTHER for j, (other, _) in enumerate(kinds) if j != i):
                    return True
        return False

    def join_casts(self, join: exp.Join) -> bool:
        """A USING or NATURAL join compares the same-named columns of its two sides: one that
        may be text on one side and something else on the other is cast. Names are not
        resolved by side, so a name whose meanings in the query mix text with something else
        counts (for NATURAL: any name in two of the query's tables, or defined by the query)."""
        if is_natural(join):
            names: Iterable[str] = {*self._shared, *self._defined()}
        else:
            names = (identifier.name.lower() for identifier in join.args.get("using") or [])
        return any(self._name_kind(name) == UNKNOWN for name in names)

    def reads_data(self, node: exp.Expr) -> bool:
        self.kind(node)
        return self._reads_data[id(node)]

    def kind(self, node: exp.Expr) -> int:
        known = self._kinds.get(id(node))
        if known is not None:
            return known
        # Post-order over the part of the subtree not yet known: children before parents.
        order = list(node.walk(bfs=False, prune=lambda n: id(n) in self._kinds and n is not node))
        for item in reversed(order):
            if id(item) not in self._kinds:
                self._kinds[id(item)] = self._own_kind(item)
                self._reads_data[id(item)] = isinstance(item, exp.Column) or any(
                    self._reads_data.get(id(child), False) for child in item.iter_expressions()
                )
        return self._kinds[id(node)]

    def _child(self, node: exp.Expr | None) -> int:
        return NONE if node is None else self._kinds.get(id(node), UNKNOWN)

    def _own_kind(self, node: exp.Expr) -> int:
        if isinstance(node, exp.Null):
            return NONE
        if isinstance(node, exp.Literal):
            return TEXT if node.is_string else OTHER
        if isinstance(node, exp.Column):
            return self._name_kind(node.name.lower())
        if isinstance(node, exp.Cast):  # TryCast included
            target = node.args.get("to")
            return (
                TEXT if isinstance(target, exp.DataType) and target.this in _TEXT_TYPES else OTHER
            )
        if isinstance(node, exp.Paren | exp.Alias | exp.Window | exp.Ordered):
            return self._child(node.this)
        if isinstance(node, COMPARED) and not isinstance(node, exp.Predicate | exp.Nullif):
            return _union(self._child(v) for group in compared_operands(node)[:1] for v in group)
        if isinstance(node, _ARGUMENT_FUNCTIONS):
            return self._child(node.this)
        if isinstance(node, _TEXT_FUNCTIONS):
            return TEXT
        if isinstance(node, _NEVER_TEXT):
            return OTHER
        if isinstance(node, exp.Subquery):
            return self._child(node.this)
        if isinstance(node, exp.Query):
            return _union(self._child(s) for s in _first_projections(node))
        return UNKNOWN

    def _name_kind(self, name: str) -> int:
        definitions = self._defined().get(name)
        if definitions is None:
            return self._catalogue.get(name, UNKNOWN)
        if name in self._resolving:  # a name defined through itself: nothing is known
            return UNKNOWN
        self._resolving.add(name)
        try:
            kinds = [UNKNOWN if d is None else self.kind(d) for d in definitions]
        finally:
            self._resolving.discard(name)
        return _union(kinds) | self._catalogue.get(name, NONE)

    def _defined(self) -> dict[str, list[exp.Expr | None]]:
        """Name → the expressions that define it in the statement (None: not known)."""
        if self._definitions is None:
            found: dict[str, list[exp.Expr | None]] = {}
            for alias in self._inventory.aliases:
                found.setdefault(alias.alias.lower(), []).append(alias.this)
            for table_alias in self._inventory.table_aliases:
                for position, column in enumerate(table_alias.columns):
                    defining = list(_defining_values(table_alias.parent, position))
                    found.setdefault(column.name.lower(), []).extend(defining or [None])
            self._definitions = found
        return self._definitions


def _union(kinds: Iterator[int] | list[int]) -> int:
    result = NONE
    for kind in kinds:
        result |= kind
    return result


def _first_projections(query: exp.Expr) -> Iterator[exp.Expr]:
    """The single output value of a scalar subquery, in each branch of a set operation."""
    for select in _branches(query):
        values = select.expressions
        if len(values) == 1 and not isinstance(values[0], exp.Star):
            yield values[0]
        else:
            yield exp.Star()  # not one known value: UNKNOWN


def _branches(query: exp.Expr) -> Iterator[exp.Expr]:
    pending = [query]
    while pending:
        node = pending.pop()
        if isinstance(node, exp.SetOperation):
            pending.extend((node.this, node.expression))
        elif isinstance(node, exp.Subquery):
            pending.append(node.this)
        else:
            yield node


def _defining_values(holder: exp.Expr | None, position: int) -> Iterator[exp.Expr | None]:
    """The values at ``position`` of what a column list names: a CTE's or derived table's query
    (each branch of a set operation), or the rows of VALUES."""
    if holder is None:
        yield None
        return
    source = holder.this if isinstance(holder, exp.CTE | exp.Subquery) else holder
    if isinstance(source, exp.Values):
        for row in source.expressions:
            values = row.expressions if isinstance(row, exp.Tuple) else [row]
            yield values[position] if position < len(values) else None
        return
    if not isinstance(source, exp.Query):
        yield None
        return
    for select in _branches(source):
        values = select.expressions if isinstance(select, exp.Select) else []
        if position < len(values) and not any(isinstance(v, exp.Star) for v in values):
            yield values[position]
        else:
            yield None
