"""Expressions that can fail on a value, over row-filtered tables.

A subquery is not a security barrier: engines merge the secure view into the user's query and may
evaluate a user predicate on rows the row filter would drop. A predicate that can *fail* on a value
(``CAST(name AS INT)``, ``x / y``, parsing a date…) then turns a hidden row into an error message
(its value in the text, or its existence as one bit). So when a query reads a row-filtered table,
such expressions are allowed only where engines evaluate them after filtering: inside aggregate
arguments, over aggregates only, and in the output list (or ORDER BY) of the outermost query.
Everywhere else (WHERE, JOIN ON, GROUP BY, derived-table projections…) they are denied.

Casts the engine adds count too: DuckDB (and Spark with ANSI on) compare a text value with a
number, a boolean or a date by casting the text, which fails on a value that is not one
(``CASE WHEN region = 'US' THEN gender ELSE '1' END = 1`` fails only if a US row reaches it). So a
comparison whose one side may be text read from data and whose other side is not text is fallible
too; what each side may be is inferred from the catalogue's column types and, for names the query
defines (CTE, derived-table and window aliases), from their defining expressions (``kinds.py``).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from meshgov.core.manifest import LogicalType
from meshgov.core.sql.kinds import COMPARED, QueryColumns, ValueKinds, compared_operands
from meshgov.core.sql.validate import Inventory, classes_named, is_aggregate
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


def _is_fallible(
    node: exp.Expr, column_types: ColumnTypes, kinds: ValueKinds, dialect: str | None
) -> bool:
    """A candidate from ``validate`` (a function not known to be total, a fallible operator, or
    a comparison the engine may implement with a cast) that can really fail on a value."""
    if isinstance(node, COMPARED):
        return kinds.casts_text_from_data(compared_operands(node))
    if isinstance(node, exp.Join):
        return kinds.join_casts(node)
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
    if isinstance(node, exp.Bracket):
        return not _total_subscript(node, dialect)
    if isinstance(node, exp.TimeToStr):
        # A date or timestamp formatted with a constant pattern (`dayname` on Spark is written
        # `DATE_FORMAT(d, 'EEEE')`): no value makes it fail.
        pattern = node.args.get("format")
        literal = isinstance(pattern, exp.Literal) and pattern.is_string
        return not (literal and _temporal(node.this, column_types))
    if isinstance(node, exp.TimeStrToTime):
        return not _temporal(node.this, column_types)
    if isinstance(node, exp.Escape):
        escape = node.expression
        return not (isinstance(escape, exp.Literal) and escape.is_string and len(escape.name) <= 1)
    # Everything else, intervals included: `INTERVAL (x) DAY` casts x to a number (fails on
    # text, overflows), and even a constant `INTERVAL 'garbage'` fails only when a branch that
    # holds it is reached.
    return True


def _temporal(node: exp.Expr, column_types: ColumnTypes) -> bool:
    """A column declared date or timestamp in every table of the query that has it (or Spark's
    read-back `TimeStrToTime` of one, which converts nothing)."""
    if isinstance(node, exp.TimeStrToTime):
        node = node.this
    if not isinstance(node, exp.Column):
        return False
    types = column_types.get(node.name.lower(), set())
    return bool(types) and types <= {LogicalType.date, LogicalType.timestamp}


# Engines whose subscript of a list or string by an index out of range gives NULL (Spark with ANSI
# on raises instead, whatever the index).
_NULL_OUT_OF_RANGE = frozenset({"duckdb", "postgres"})


def _total_subscript(node: exp.Bracket, dialect: str | None) -> bool:
    """``list[1]``, ``list[2:3]``: constant integer indices (a slice with a step other than
    zero), on an engine that gives NULL out of range. A key of another kind (a map's missing
    key, a struct field), an index computed from data (cast to BIGINT: fails on text or out of
    its range) or a zero step can fail on a value."""
    if dialect not in _NULL_OUT_OF_RANGE:
        return False
    for index in node.expressions:
        if isinstance(index, exp.Slice):
            step = index.args.get("step")
            parts = [index.this, index.expression, step]
            if not all(p is None or _integer_constant(p) is not None for p in parts):
                return False
            if step is not None and _integer_constant(step) == 0:
                return False
        elif _integer_constant(index) is None:
            return False
    return True


def _integer_constant(node: exp.Expr) -> int | None:
    negative = isinstance(node, exp.Neg)
    value = node.this if negative else node
    if not isinstance(value, exp.Literal) or value.is_string or not value.name.isdigit():
        return None
    number = int(value.name)
    if number >= 2**63:
        return None  # cast to BIGINT: fails
    return -number if negative else number


class _TreeFacts:
    """What the checks need to know about every node, computed in two linear passes over the
    statement (a pre-order pass for what comes from above, a post-order one for what comes from
    below), so that deciding about any number of candidates is linear in the tree: asking each
    candidate by walking its subtree or its ancestors is quadratic (a 2,000-term sum).

    From above: ``conditional`` — inside a CASE/IF/COALESCE branch or a lambda body, within its
    own query; ``position`` — where it is evaluated relative to the row filter (``_AGGREGATE``:
    inside an aggregate's arguments; ``_OUTPUT``: the output list or ORDER BY of an outermost
    SELECT; ``_OTHER``). From below: ``reads_column`` — some column in its subtree;
    ``free_column`` — a column not inside an aggregate within its subtree; ``own_aggregate`` — an
    aggregate or window function of its own SELECT in its subtree (one in a nested query does not
    count).
    """

    def __init__(self, statement: exp.Expr, dialect: str | None) -> None:
        roots = _outermost_selects(statement)
        self._roots = {id(r) for r in roots}
        self._dialect = dialect
        self.conditional: set[int] = set()
        self.position: dict[int, int] = {}
        self.reads_column: set[int] = set()
        self.free_column: set[int] = set()
        self.own_aggregate: set[int] = set()
        # Output items of an outermost SELECT that a clause evaluated before the row filter
        # names (by alias or ordinal), with the name it uses there (see ``_named_before``).
        self.named_before: dict[int, str] = {}
        # Node → the output item of an outermost SELECT it is part of.
        item_of: dict[int, exp.Expr] = {}
        order = list(statement.walk(bfs=False))  # pre-order: parents before children
        for node in order:
            parent = node.parent
            if parent is None or node is statement:
                self.position[id(node)] = _OTHER
                continue
            if id(parent) in self._roots and node.arg_key == "expressions":
                item_of[id(node)] = node
            elif id(parent) in item_of:
                item_of[id(node)] = item_of[id(parent)]
            if isinstance(parent, _CONDITIONAL) or (
                not isinstance(parent, exp.Query) and id(parent) in self.conditional
            ):
                self.conditional.add(id(node))
            self.position[id(node)] = self._place(node, parent)
        for select in roots:
            for item, name in _named_before(select, self.position, item_of).items():
                self.named_before[id(item)] = name
                # The item is evaluated where the clause names it: place it (and what is not
                # inside one of its aggregates) again, as that clause's expression.
                for node in item.walk(bfs=False):
                    parent = node.parent
                    if parent is not None:
                        self.position[id(node)] = self._place(node, parent)
        for node in reversed(order):  # children before parents
            key = id(node)
            if isinstance(node, exp.Column):
                self.reads_column.add(key)
                self.free_column.add(key)
            if isinstance(node, exp.Window) or is_aggregate(node, dialect):
                self.own_aggregate.add(key)
            parent = node.parent
            if parent is None or node is statement:
                continue
            if key in self.reads_column:
                self.reads_column.add(id(parent))
            if key in self.free_column and not is_aggregate(parent, dialect):
                self.free_column.add(id(parent))
            if key in self.own_aggregate and not isinstance(node, exp.Query):
                self.own_aggregate.add(id(parent))

    def _place(self, node: exp.Expr, parent: exp.Expr) -> int:
        """Where ``node`` is evaluated, from where its parent is (already placed)."""
        if is_aggregate(parent, self._dialect):
            return _AGGREGATE
        if isinstance(parent, exp.Select):
            # The output list, ORDER BY and GROUP BY keys of an outermost SELECT are computed
            # on the rows the filter passed (by the projection, the sort, the aggregation above
            # it); an item some other clause names is evaluated there instead.
            in_output = (
                id(parent) in self._roots
                and node.arg_key in ("expressions", "order", "group")
                and id(node) not in self.named_before
            )
            return _OUTPUT if in_output else _OTHER
        if isinstance(parent, exp.Query):
            return _OTHER
        return self.position[id(parent)]

    def named_where(self, node: exp.Expr) -> str:
        """Why ``node`` of an output item counts as evaluated before the row filter, if that is
        the reason (an error message's words; walks up once)."""
        current: exp.Expr | None = node
        while current is not None:
            name = self.named_before.get(id(current))
            if name is not None:
                return f" (the output item is named by {name!r} outside the output list)"
            current = current.parent
        return ""

    def depends_on_data(self, node: exp.Expr) -> bool:
        """It reads a column, or runs only for some rows or elements (a CASE/IF/COALESCE branch,
        a lambda body, whose variables are not columns): ``CASE WHEN region = 'US' THEN 1/0 END``
        or ``list_filter([id], x -> CAST(x AS INT) = 1)`` fails exactly when such a value
        exists."""
        return id(node) in self.reads_column or id(node) in self.conditional

    def evaluated_after_filtering(self, node: exp.Expr) -> bool:
        """Inside an aggregate's arguments; over aggregates only (every column it reads is inside
        an aggregate: ``sum(a) / count(*)``, computed after grouping); over an aggregate or window
        of its own SELECT (``amount / sum(amount) OVER (…)``: computed from that SELECT's grouped
        or windowed rows, which exist only past the row filter); or in the output list / ORDER BY
        of an outermost SELECT. Not in a derived table's output: an outer predicate on it can be
        pushed down next to the row filter (PostgreSQL does so even through GROUP BY keys)."""
        key = id(node)
        if key in self.reads_column and key not in self.free_column:
            return True
        if key in self.own_aggregate:
            return True
        return self.position.get(key, _OTHER) in (_AGGREGATE, _OUTPUT)


_OTHER, _AGGREGATE, _OUTPUT = 0, 1, 2


def _named_before(
    select: exp.Select, position: dict[int, int], item_of: dict[int, exp.Expr]
) -> dict[exp.Expr, str]:
    """The output items of ``select`` (an outermost SELECT) evaluated before its row filter
    because a clause names them, with the name used.

    DuckDB lets WHERE, HAVING, QUALIFY (and JOIN ON) name an output alias:
    ``SELECT CAST(x AS INT) AS n … WHERE n > 3`` runs the cast in the WHERE
    clause, and ``SELECT CAST(x AS INT) AS n, n + 1 AS m … WHERE m > 3`` too, through the alias
    ``m``. So an item is named before filtering when an unqualified column of its alias's name
    is anywhere in the SELECT outside the output list, ORDER BY and aggregates (in a nested
    query too: names are not resolved by scope), or in an item that is itself named so. GROUP BY
    keys (by alias, position or ALL) are computed by the aggregation on the filtered rows, like
    the output list. A column of the same name as the alias counts too
    (which of the two the engine binds is not decided here). Linear: every column of the SELECT
    is looked at once, and the closure over items follows each reference once."""
    items = list(select.expressions)
    by_name: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if isinstance(item, exp.Alias):
            by_name.setdefault(item.alias.lower(), []).append(index)
    owner = {id(item): index for index, item in enumerate(items)}
    named: dict[int, str] = {}
    # item index → the items its expression names (evaluated wherever it is).
    names_in: dict[int, set[int]] = {}
    if by_name:
        for column in select.find_all(exp.Column):
            if column.table or column.name.lower() not in by_name:
                continue
            targets = by_name[column.name.lower()]
            where = position.get(id(column), _OTHER)
            if where == _AGGREGATE:
                continue  # inside an aggregate's arguments: after the row filter
            if where == _OUTPUT:
                holder = item_of.get(id(column))
                if holder is not None:
                    names_in.setdefault(owner[id(holder)], set()).update(targets)
                continue  # ORDER BY: evaluated on the result
            for target in targets:
                named.setdefault(target, column.name)
    pending = list(named)
    while pending:
        index = pending.pop()
        for target in names_in.get(index, ()):
            if target not in named:
                named[target] = named[index]
                pending.append(target)
    return {items[index]: name for index, name in named.items()}


def _outermost_selects(root: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose output is the result: the statement, a parenthesised statement, or the
    branches of a top-level UNION [ALL] (nothing outside them can push a predicate in)."""
    found: list[exp.Select] = []
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


def check_fallible(
    statement: exp.Expr,
    inventory: Inventory,
    filtered_tables: list[str],
    columns: QueryColumns,
    dialect: str | None = None,
) -> None:
    """Deny fallible expressions over columns outside the positions described above.

    ``inventory``: what ``validate`` collected from ``statement`` (its fallible candidates, the
    names it defines); ``columns``: the query's tables' columns by name.

    Linear in the statement: the per-node facts are computed once, when a candidate first needs
    them, and each candidate is then decided in constant time.
    """
    # A name the query redefines (an alias) may hold anything: no type is known for a cast of it.
    cast_types = dict(columns.types)
    for alias in inventory.aliases:
        cast_types.pop(alias.alias.lower(), None)
    for table_alias in inventory.table_aliases:
        for defined in table_alias.columns:
            cast_types.pop(defined.name.lower(), None)
    kinds = ValueKinds(inventory, columns)
    facts: _TreeFacts | None = None
    for node in inventory.fallible:
        if not _is_fallible(node, cast_types, kinds, dialect):
            continue
        if facts is None:
            facts = _TreeFacts(statement, dialect)
        # A join condition always compares rows of the joined tables.
        joins_rows = isinstance(node, exp.Join)
        if not joins_rows and (
            not facts.depends_on_data(node) or facts.evaluated_after_filtering(node)
        ):
            continue
        tables = ", ".join(sorted(set(filtered_tables)))
        shown = node.sql().strip()[:80]
        raise SqlUnsupportedError(
            f"'{shown}' can fail on a value and would run before the row filter of "
            f"{tables}{facts.named_where(node)}; such expressions are only allowed in the "
            "output list or in aggregates"
        )
