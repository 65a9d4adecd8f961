"""What every query engine offers, and what every engine shares.

An engine only ever receives SQL that the gateway generated from a rewritten tree. It still checks
that the text is one read-only query (defence in depth), runs it locked down, and returns Arrow.
Engine error text is never shown to a user: it can carry data values (``invalid input syntax for
type integer: "alice@example.com"``). Errors become a generic message naming only their class.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from meshgov.errors import (
    AccessDenied,
    BackendUnavailable,
    InputError,
    Location,
    ManifestError,
    MeshgovError,
    SnapshotUnavailable,
    SqlUnsupportedError,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp

    from meshgov.catalog import Catalog
    from meshgov.core.manifest import Manifest, OutputPort

log = logging.getLogger("meshgov.engines")

DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
# Names of the temporary barrier views an engine creates around each secure subquery.
BARRIER_VIEW_PREFIX = "meshgov_barrier_"


class QueryFailed(InputError):
    """The engine rejected or failed the query; the message names only the error class."""

    code = "query_failed"

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind  # the error class ("unknown name", "type error", "timeout"…)


@runtime_checkable
class QueryEngine(Protocol):
    """One query engine: runs one generated read-only SQL statement and returns Arrow."""

    name: str
    dialect: str

    def execute(self, sql: str) -> pa.Table: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PhysicalTable:
    """Where a port's rows live in an engine: ``[catalog.][schema.]table``, lower-cased."""

    product: str
    port: str
    catalog: str | None
    schema: str | None
    table: str

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in (self.catalog, self.schema, self.table) if p)


@dataclass(frozen=True)
class PortSource:
    """A table port with the physical name it is exposed under and its snapshot, if any.

    ``data_problem`` is set (and ``data_path`` is None) when the port declares a snapshot whose
    path is refused (it leaves the allowed directory, or there is none): such a port is never
    loaded, and queries on it fail naming it.
    """

    manifest: Manifest
    port: OutputPort
    physical: PhysicalTable
    data_path: Path | None
    data_problem: MeshgovError | None = None


@dataclass(frozen=True)
class RejectedPort:
    """A table port that cannot be served at all (its table name is refused or taken twice)."""

    product: str
    port: str
    physical: PhysicalTable | None
    error: MeshgovError


def physical_table(manifest: Manifest, port: OutputPort) -> PhysicalTable:
    """Parse a port's ``table:`` with sqlglot into its parts (identifiers lower-cased)."""
    from sqlglot import exp
    from sqlglot.errors import ParseError

    where = Location(file=manifest.source, product=manifest.id, port=port.name)
    name = port.table or port.name
    try:
        table = exp.to_table(name)
    except (ParseError, ValueError):
        raise ManifestError(f"port table name {name!r} is not a table name", where) from None
    if not isinstance(table, exp.Table) or not table.name:
        raise ManifestError(f"port table name {name!r} is not a table name", where)
    return PhysicalTable(
        product=manifest.id,
        port=port.name,
        catalog=table.catalog.lower() or None,
        schema=table.db.lower() or None,
        table=table.name.lower(),
    )


def port_sources(catalog: Catalog) -> list[PortSource]:
    """Every table port of the catalogue, in a stable order; the first problem raises.

    For a local catalogue (the CLI, ``meshgov load``): a refused snapshot path, a reserved table
    name or two ports on one table is an error of the whole catalogue.
    """
    sources, rejected = collect_port_sources(catalog)
    if rejected:
        raise rejected[0].error
    for source in sources:
        if source.data_problem is not None:
            raise source.data_problem
    return sources


def collect_port_sources(catalog: Catalog) -> tuple[list[PortSource], list[RejectedPort]]:
    """Every table port, and the ports that cannot be served, without raising (the service: one
    product's problem must not stop the others). Both ports of a table taken twice are rejected.
    """
    from meshgov.core.manifest import PortKind

    found: list[PortSource] = []
    rejected: list[RejectedPort] = []
    owners: dict[tuple[str | None, ...], list[str]] = {}
    for key in sorted(catalog.manifests):
        manifest = catalog.manifests[key]
        for port in manifest.spec.output_ports:
            if port.kind is not PortKind.table:
                continue
            try:
                physical = physical_table(manifest, port)
                _check_not_reserved(physical, manifest, port)
            except ManifestError as exc:
                rejected.append(RejectedPort(manifest.id, port.name, None, exc))
                continue
            ident = (physical.catalog, physical.schema or None, physical.table)
            owners.setdefault(ident, []).append(f"{manifest.id}:{port.name}")
            data: Path | None = None
            problem: MeshgovError | None = None
            if port.data:
                try:
                    data = catalog.resolve_data_path(manifest, port.data, port.name)
                except ManifestError as exc:
                    problem = exc
            found.append(PortSource(manifest, port, physical, data, problem))
    served: list[PortSource] = []
    for source in found:
        physical = source.physical
        names = owners[(physical.catalog, physical.schema or None, physical.table)]
        if len(names) > 1:
            other = next(n for n in names if n != f"{physical.product}:{physical.port}")
            rejected.append(
                RejectedPort(
                    physical.product,
                    physical.port,
                    physical,
                    ManifestError(
                        f"table {'.'.join(physical.parts)} is already the table of {other}",
                        Location(
                            file=source.manifest.source,
                            product=source.manifest.id,
                            port=source.port.name,
                        ),
                    ),
                )
            )
        else:
            served.append(source)
    return served, rejected


def unavailable_port(
    product: str, port: str, data: str | None, exc: MeshgovError
) -> SnapshotUnavailable:
    """The error of a query on a port that could not be loaded: names the product and port and
    the reason, never a server path."""
    reason = exc.message
    shown = f" (data: {data})" if data else ""
    return SnapshotUnavailable(
        f"{product}:{port} cannot be queried: its data is not available{shown}: {reason}",
        Location(product=product, port=port),
    )


def check_available(
    sql: str, dialect: str, unavailable: dict[tuple[str, ...], SnapshotUnavailable]
) -> None:
    """Raise the port's ``SnapshotUnavailable`` when ``sql`` reads a table that is not served."""
    if not unavailable:
        return
    from sqlglot import exp

    statement = require_single_query(sql, dialect)
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            continue
        parts = tuple(p.name.lower() for p in table.parts)
        if len(parts) == 1 and parts[0] in ctes:
            continue
        for known, error in unavailable.items():
            if _matches_physical(parts, frozenset({known})):
                raise error


def unavailable_ports(
    sources: list[PortSource], rejected: list[RejectedPort]
) -> dict[tuple[str, ...], SnapshotUnavailable]:
    """The tables that will not be served, by physical parts, with the error a query gets."""
    out: dict[tuple[str, ...], SnapshotUnavailable] = {}
    for source in sources:
        if source.data_problem is not None:
            out[source.physical.parts] = unavailable_port(
                source.manifest.id, source.port.name, source.port.data, source.data_problem
            )
    for reject in rejected:
        if reject.physical is not None:
            out[reject.physical.parts] = unavailable_port(
                reject.product, reject.port, None, reject.error
            )
    for reject in rejected:
        log.error("port %s:%s is not served: %s", reject.product, reject.port, reject.error)
    return out


def snapshot_problem(path: Path, port: OutputPort) -> str | None:
    """Why the snapshot at ``path`` cannot serve ``port`` (reads only its schema), or None."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    try:
        if not path.is_file():
            return "snapshot file not found"
        if suffix in {".parquet", ".pq"}:
            names = list(pq.read_schema(path).names)
        elif suffix in {".csv", ".tsv"}:
            parse = pa_csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            with pa_csv.open_csv(path, parse_options=parse) as reader:
                names = list(reader.schema.names)
        else:
            return "snapshot must be .parquet or .csv"
    except (OSError, pa.ArrowException) as exc:
        return f"cannot read snapshot: {type(exc).__name__}"
    present = {name.lower() for name in names}
    missing = [c.name for c in port.columns if c.name.lower() not in present]
    if missing:
        return f"snapshot has no column {missing[0]!r}"
    return None


# Schemas the engines keep for themselves (the hash key) or that belong to the database.
RESERVED_SCHEMAS = frozenset({"meshgov_internal", "information_schema", "pg_catalog", "temp"})


def _check_not_reserved(physical: PhysicalTable, manifest: Manifest, port: OutputPort) -> None:
    schema = physical.schema or ""
    if (
        schema in RESERVED_SCHEMAS
        or schema.startswith("pg_")
        or physical.table.startswith(("meshgov_", "pg_"))
    ):
        raise ManifestError(
            f"table {'.'.join(physical.parts)} is in a reserved schema or uses a reserved name "
            "(meshgov_*, pg_*, information_schema, pg_catalog)",
            Location(file=manifest.source, product=manifest.id, port=port.name),
        )


def read_snapshot(source: PortSource) -> pa.Table:
    """Read a port's snapshot (Parquet or CSV) with pyarrow, projected onto the declared columns.

    Only declared columns are loaded, in manifest order: an undeclared snapshot column can never be
    reached through the engine, even by a query the gateway failed to rewrite.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    assert source.data_path is not None
    path = source.data_path
    where = Location(file=str(path), product=source.manifest.id, port=source.port.name)
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            table = pq.read_table(path)
        elif path.suffix.lower() in {".csv", ".tsv"}:
            parse = pa_csv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            table = pa_csv.read_csv(path, parse_options=parse)
        else:
            raise ManifestError("snapshot must be .parquet or .csv", where)
    except FileNotFoundError:
        raise ManifestError("snapshot file not found", where) from None
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read snapshot: {type(exc).__name__}", where) from None
    by_lower = {name.lower(): name for name in table.column_names}
    arrays: list[pa.ChunkedArray] = []
    names: list[str] = []
    for column in source.port.columns:
        actual = by_lower.get(column.name.lower())
        if actual is None:
            raise ManifestError(
                f"snapshot has no column {column.name!r}",
                Location(
                    file=str(path),
                    product=source.manifest.id,
                    port=source.port.name,
                    column=column.name,
                ),
            )
        arrays.append(table.column(actual))
        names.append(column.name.lower())
    return pa.Table.from_arrays(arrays, names=names)


def require_single_query(sql: str, dialect: str) -> exp.Query:
    """Parse generated SQL again and accept exactly one read-only query (defence in depth)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError:
        raise SqlUnsupportedError("the engine accepts only generated SQL it can parse") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise SqlUnsupportedError("the engine accepts exactly one read-only query")
    statement = statements[0]
    for node in statement.walk():
        if isinstance(node, exp.Command | exp.DDL | exp.DML | exp.Set | exp.Pragma):
            raise SqlUnsupportedError("the engine accepts exactly one read-only query")
    return statement


# Table functions a generated query may use (row generators; they read no data).
SAFE_TABLE_FUNCTIONS = frozenset(
    {"generate_series", "exploding_generate_series", "range", "unnest", "generate_subscripts"}
)
# Functions that read files, run dynamic SQL, expose settings or statistics, or raise on demand.
_DENIED_FUNCTION_PREFIXES = ("read_", "pg_", "lo_", "dblink", "query", "duckdb_", "parquet_")
_DENIED_FUNCTIONS = frozenset(
    {
        "set_config", "current_setting", "getenv", "stats", "error", "raise_error", "sniff_csv",
        "glob", "table_to_xml", "schema_to_xml", "database_to_xml", "cursor_to_xml",
        "table_to_xmlschema", "table_to_xml_and_xmlschema", "which_secret", "load_extension",
    }
)  # fmt: skip


def audit_sources(statement: exp.Query, physical: frozenset[tuple[str, ...]]) -> None:
    """Every table is a port table or a CTE, and no function reaches outside the data.

    The gateway already allows only these; the engine checks again so that SQL reaching it by
    any other path still cannot read a system catalogue, a file or another table.
    """
    from sqlglot import exp

    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            name = _function_name(table.this)
            if name not in SAFE_TABLE_FUNCTIONS:
                raise SqlUnsupportedError(f"the engine does not run table function {name}()")
            continue
        parts = tuple(p.name.lower() for p in table.parts)
        if len(parts) == 1 and parts[0] in ctes:
            continue
        if not _matches_physical(parts, physical):
            # The name is the caller's own text (maybe a file path); it is not echoed.
            raise SqlUnsupportedError("the engine serves only product tables and CTEs")
    for function in statement.find_all(exp.Func):
        name = _function_name(function)
        if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_FUNCTION_PREFIXES):
            raise SqlUnsupportedError(f"the engine does not run function {name}()")


def _function_name(function: exp.Func) -> str:
    from sqlglot import exp

    if isinstance(function, exp.Anonymous):
        return str(function.name).lower()
    return function.sql_name().lower()


def secure_subqueries(
    statement: exp.Query, physical: frozenset[tuple[str, ...]]
) -> list[exp.Subquery]:
    """The gateway's ``(SELECT <masked> FROM <port table> [WHERE <filters>]) AS a`` nodes."""
    from sqlglot import exp

    found: list[exp.Subquery] = []
    for subquery in statement.find_all(exp.Subquery):
        inner = subquery.this
        if not isinstance(subquery.parent, exp.From | exp.Join) or not isinstance(
            inner, exp.Select
        ):
            continue
        if any(
            inner.args.get(k)
            for k in ("joins", "group", "having", "order", "limit", "offset", "with", "laterals")
        ):
            continue
        tables = list(inner.find_all(exp.Table))
        source = inner.args.get("from_") or inner.args.get("from")
        if len(tables) != 1 or source is None or source.this is not tables[0]:
            continue
        parts = tuple(p.name.lower() for p in tables[0].parts)
        if _matches_physical(parts, physical):
            found.append(subquery)
    return found


def needs_barrier(
    statement: exp.Query,
    secure: list[exp.Subquery],
    column_kinds: frozenset[tuple[str, str]] = frozenset(),
) -> bool:
    """Whether a predicate of the query could fail on a value (and so reveal a filtered row).

    Engines evaluate projections, aggregates and windows after the scan's filters; only predicates
    (WHERE, JOIN ON, HAVING, QUALIFY, FILTER) are pushed down beside a row filter, where the
    optimiser may run them first. A predicate is judged safe only when it is built from columns,
    literals, comparisons and boolean logic, **and** every column in it resolves (through the
    query's scopes, following plain column aliases of derived tables and CTEs) to a column of a
    secure view whose kind the catalogue establishes (``column_kinds``: name → kind, from types
    and masks), **and** every comparison (``=``, ``<>``, ``<``, ``>``, ``IN``, ``BETWEEN``,
    ``IS``…) and every bare boolean operand has operands of one kind: DuckDB compares text with a
    number, a date or a boolean by casting the text (``Could not convert string 'alice@…' to
    INT32``). A column computed in a derived table (``CASE … END AS v``, then ``WHERE v > 0``) is
    inlined into the predicate by the optimiser, so its kind is unknown: barrier. Anything whose
    kind cannot be established needs the barrier.
    """
    from sqlglot import exp

    inside = {id(node) for sub in secure for node in sub.walk()}
    try:
        kinds = _ColumnKinds(statement, secure, dict(column_kinds))
    except Exception:  # scopes that sqlglot cannot build: assume the worst
        return True
    for clause in statement.find_all(exp.Where, exp.Having, exp.Qualify, exp.Join):
        if id(clause) in inside:
            continue
        condition = clause.args.get("on") if isinstance(clause, exp.Join) else clause.this
        if condition is None:
            continue
        if _boolean_operand_can_fail(condition, kinds):
            return True
        for node in condition.walk():
            if isinstance(node, exp.Subquery | exp.Query):
                continue  # its own clauses are visited on their own
            if not isinstance(node, _SAFE_PREDICATE_NODES):
                return True
            if isinstance(node, exp.Column) and kinds.kind(node) is None:
                return True
            if isinstance(node, exp.And | exp.Or | exp.Not) and any(
                _boolean_operand_can_fail(operand, kinds)
                for operand in (node.args.get("this"), node.args.get("expression"))
                if operand is not None
            ):
                return True
            if isinstance(node, _COMPARISONS) and not _same_kind(node, kinds):
                return True
    return False


def _boolean_operand_can_fail(operand: exp.Expr, kinds: _ColumnKinds) -> bool:
    """A bare column used as a condition is cast to boolean: only a boolean column is safe."""
    from sqlglot import exp

    while isinstance(operand, exp.Paren):
        operand = operand.this
    return isinstance(operand, exp.Column) and kinds.kind(operand) != "boolean"


class _ColumnKinds:
    """The kind of a column reference, when it is (through plain aliases) a secure view column."""

    def __init__(
        self, statement: exp.Query, secure: list[exp.Subquery], kinds: dict[str, str]
    ) -> None:
        from sqlglot.optimizer.scope import build_scope

        self.kinds = kinds
        self.secure = {id(sub.this) for sub in secure}
        self.scope_of: dict[int, Any] = {}
        root = build_scope(statement)
        if root is None:
            raise ValueError("no scope")
        for scope in root.traverse():
            for column in scope.columns:
                self.scope_of[id(column)] = scope

    def kind(self, column: exp.Column, depth: int = 0) -> str | None:

        scope = self.scope_of.get(id(column))
        if scope is None or depth > 32:
            return None
        name = column.name.lower()
        qualifier = column.table.lower()
        while scope is not None:
            sources = {key.lower(): source for key, source in scope.sources.items()}
            if qualifier:
                found = sources.get(qualifier)
                if found is not None:
                    return self._kind_in(found, name, depth)
            else:
                having = [s for s in sources.values() if self._provides(s, name)]
                if len(having) == 1:
                    return self._kind_in(having[0], name, depth)
                if having or any(self._opaque(s) for s in sources.values()):
                    return None  # ambiguous, or a source whose columns are not listed
            scope = scope.parent
        return None

    def _select_of(self, source: Any) -> exp.Select | None:
        from sqlglot import exp

        expression = getattr(source, "expression", None)
        return expression if isinstance(expression, exp.Select) else None

    def _opaque(self, source: Any) -> bool:
        select = self._select_of(source)
        return select is None or select.is_star

    def _provides(self, source: Any, name: str) -> bool:
        select = self._select_of(source)
        return select is not None and any(
            p.alias_or_name.lower() == name for p in select.expressions
        )

    def _kind_in(self, source: Any, name: str, depth: int) -> str | None:
        from sqlglot import exp

        select = self._select_of(source)
        if select is None:
            return None  # a table function, VALUES, a set operation…
        projection = next((p for p in select.expressions if p.alias_or_name.lower() == name), None)
        if projection is None:
            return None
        if id(select) in self.secure:
            return self.kinds.get(name)
        inner = projection.unalias()
        if isinstance(inner, exp.Column) and not isinstance(inner.this, exp.Star):
            return self.kind(inner, depth + 1)
        if _counts_rows(inner):
            # A rank or a count is a number that cannot fail, and a predicate on it cannot run
            # before the window or the grouping that computes it, so after the row filter.
            return "number"
        return None  # a computed column: its expression runs wherever the predicate runs


def _counts_rows(node: exp.Expr) -> bool:
    """``row_number()``/``rank()``/… ``OVER (…)``, or ``count(…)`` (windowed or grouped)."""
    from sqlglot import exp

    if isinstance(node, exp.Window):
        node = node.this
    return isinstance(node, exp.RowNumber | exp.Rank | exp.DenseRank | exp.Ntile | exp.Count)


def _same_kind(comparison: exp.Expr, kinds: _ColumnKinds) -> bool:
    from sqlglot import exp

    operands = [
        comparison.args.get("this"),
        comparison.args.get("expression"),
        comparison.args.get("query"),
        comparison.args.get("low"),
        comparison.args.get("high"),
        *comparison.expressions,
    ]
    # String constants are cast to the other side's type: if that fails, it fails on every row.
    typed = [
        operand
        for operand in operands
        if operand is not None
        and not isinstance(operand, exp.Null)
        and not (isinstance(operand, exp.Literal) and operand.is_string)
    ]
    if len(typed) <= 1 and not isinstance(comparison, exp.Is):
        return True
    seen: set[str] = set()
    for operand in typed:
        while isinstance(operand, exp.Paren):
            operand = operand.this
        kind: str | None = None
        if isinstance(operand, exp.Literal):
            kind = "number"
        elif isinstance(operand, exp.Boolean):
            kind = "boolean"
        elif isinstance(operand, exp.Column):
            kind = kinds.kind(operand)
        if kind is None:
            return False  # a subquery, an expression or a column of unknown kind
        seen.add(kind)
    return len(seen) <= 1


_KIND_OF_TYPE = {
    "string": "text",
    "integer": "number",
    "number": "number",
    "decimal": "number",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "binary": "binary",
}
# Masks that turn a column into text, whatever it held.
_TEXT_MASKS = frozenset({"hash", "partial"})


def column_kinds(sources: list[PortSource]) -> frozenset[tuple[str, str]]:
    """Column name → kind for names that have one kind in every port, masked or not."""
    kinds: dict[str, set[str]] = {}
    for source in sources:
        for column in source.port.columns:
            found = kinds.setdefault(column.name.lower(), set())
            base = _KIND_OF_TYPE.get(column.type.value, "other")
            found.add(base)
            mask = column.mask.value if column.mask is not None else None
            if mask in _TEXT_MASKS or (mask == "redact" and base == "text"):
                found.add("text")
            elif mask in {"redact", "null", "year"}:
                found.add(base)
            elif mask is not None:
                found.add("other")
    return frozenset((name, next(iter(k))) for name, k in kinds.items() if len(k) == 1)


def _safe_predicate_nodes() -> tuple[type[exp.Expr], ...]:
    from sqlglot import exp

    return (
        exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Star,
        exp.And, exp.Or, exp.Not, exp.Is, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
        exp.NullSafeEQ, exp.NullSafeNEQ, exp.In, exp.Between, exp.Exists, exp.Subquery,
        exp.Query, exp.Tuple, exp.TableAlias, exp.Count, exp.Min, exp.Max,
    )  # fmt: skip


_SAFE_PREDICATE_NODES = _safe_predicate_nodes()


def _comparisons() -> tuple[type[exp.Expr], ...]:
    from sqlglot import exp

    return (
        exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
        exp.In, exp.Between, exp.Is,
    )  # fmt: skip


_COMPARISONS = _comparisons()


@dataclass(frozen=True)
class PreparedQuery:
    """What an engine runs: barrier view statements first (in order), then the query."""

    views: tuple[str, ...]
    sql: str


@functools.lru_cache(maxsize=2048)
def prepare_query(
    sql: str,
    dialect: str,
    physical: frozenset[tuple[str, ...]],
    barriers: bool,
    kinds: frozenset[tuple[str, str]] = frozenset(),
) -> PreparedQuery:
    """Check ``sql`` is one read-only query, put its secure subqueries behind barrier views when
    a predicate could fail on a value, and generate what runs (cached: the gateway's SQL repeats).

    Barrier views replace the secure subqueries (a DuckDB ``SECURE VIEW``, a PostgreSQL
    ``security_barrier`` view): behind them the row filters run before any user predicate. Only SQL
    generated from the parsed tree is ever run.
    """
    from sqlglot import exp

    statement = require_single_query(sql, dialect)
    audit_sources(statement, physical)
    views: list[str] = []
    secure = secure_subqueries(statement, physical)
    if barriers and secure and needs_barrier(statement, secure, kinds):
        for subquery in secure:
            name = f"{BARRIER_VIEW_PREFIX}{len(views) + 1}"
            views.append(_barrier_view_sql(name, subquery.this.copy(), dialect))
            replacement = exp.Table(this=exp.to_identifier(name))
            alias = subquery.args.get("alias")
            if alias is not None:
                replacement.set("alias", alias.copy())
            subquery.replace(replacement)
    return PreparedQuery(tuple(views), statement.sql(dialect=dialect))


def _barrier_view_sql(name: str, body: exp.Select, dialect: str) -> str:
    """``CREATE TEMPORARY SECURE VIEW`` (DuckDB) or ``… WITH (security_barrier)`` (PostgreSQL)."""
    import sqlglot
    from sqlglot import exp

    barrier: exp.Expression = (
        exp.SecureProperty()
        if dialect == "duckdb"
        else exp.Property(this=exp.var("security_barrier"), value=exp.true())
    )
    create = exp.Create(
        kind="VIEW",
        this=exp.to_table(name),
        expression=body,
        properties=exp.Properties(expressions=[exp.TemporaryProperty(), barrier]),
    )
    target: Any = _barrier_duckdb_dialect() if dialect == "duckdb" else dialect
    return create.sql(dialect=target, unsupported_level=sqlglot.ErrorLevel.RAISE)


@functools.cache
def _barrier_duckdb_dialect() -> Any:
    """DuckDB as sqlglot knows it, plus ``CREATE SECURE VIEW`` (DuckDB's optimiser barrier)."""
    from sqlglot import exp
    from sqlglot.dialects.duckdb import DuckDB

    class BarrierDuckDB(DuckDB):
        class Generator(DuckDB.Generator):  # type: ignore[misc,valid-type]
            PROPERTIES_LOCATION: ClassVar[dict[type[exp.Expression], Any]] = {
                **DuckDB.Generator.PROPERTIES_LOCATION,
                exp.SecureProperty: exp.Properties.Location.POST_CREATE,
            }

    return BarrierDuckDB


def _matches_physical(parts: tuple[str, ...], physical: frozenset[tuple[str, ...]]) -> bool:
    # The rewriter may qualify names with the engine's default catalog/schema; match on suffixes.
    return any(parts[-len(known) :] == known or known[-len(parts) :] == parts for known in physical)


# Engine error classes by the words in their type or SQLSTATE class; the text itself is dropped.
_ERROR_CLASSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Conversion", "22P02", "22003", "22007", "22008", "InvalidTextRepresentation"), "conversion"),
    (("DivisionByZero", "22012"), "division by zero"),
    (("OutOfRange", "NumericValueOutOfRange"), "value out of range"),
    (("Permission", "42501", "InsufficientPrivilege"), "permission denied"),
    (("QueryCanceled", "57014", "Interrupt"), "timeout"),
    (
        ("Catalog", "42P01", "42883", "42703", "42702", "UndefinedTable", "UndefinedColumn"),
        "unknown name",
    ),
    (("Binder", "42804", "DatatypeMismatch", "42725"), "type error"),
    (("Parser", "42601", "Syntax"), "syntax error"),
    (("ReadOnly", "25006"), "read-only violation"),
)


def generic_engine_error(exc: BaseException, engine: str) -> MeshgovError:
    """Map an engine exception to a message that carries no engine text (it may hold values)."""
    marker = f"{type(exc).__module__}.{type(exc).__name__} {getattr(exc, 'sqlstate', '') or ''}"
    # Details are for operators' logs only; the user sees the class.
    log.debug("engine %s error %s", engine, marker)
    if _is_connection_error(exc):
        return BackendUnavailable(f"{engine} engine is unavailable ({type(exc).__name__})")
    kind = next(
        (label for words, label in _ERROR_CLASSES if any(w in marker for w in words)), "error"
    )
    if kind == "permission denied":
        return AccessDenied(f"the {engine} engine refused the query ({kind})")
    return QueryFailed(
        f"the query failed in the {engine} engine ({kind}); engine messages are withheld "
        "because they can contain data values",
        kind,
    )


def _is_connection_error(exc: BaseException) -> bool:
    name = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return (
        name in {"OperationalError", "ConnectionException", "InterfaceError"}
        and not sqlstate.startswith(("22", "42", "57014"))
    ) or sqlstate.startswith("08")


def engine_kind(url: str) -> str:
    """``duckdb``, ``postgresql`` or ``spark`` for an engine URL; anything else is invalid input."""
    if url in {"", "duckdb", "duckdb://", "duckdb:memory"}:
        return "duckdb"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    if url in {"spark", "local"} or url.startswith(("spark://", "local[", "sc://")):
        return "spark"
    raise InputError(
        f"unknown engine {url!r}: use 'duckdb', 'postgresql://…', 'spark', 'local[N]', "
        "'spark://host:7077' or 'sc://host:15002'"
    )


def open_engine(
    url: str,
    catalog: Catalog | None,
    hash_key: bytes,
    *,
    timeout_ms: int | None = None,
    isolate_failures: bool = False,
) -> QueryEngine:
    """``duckdb`` (embedded, loads the catalogue's snapshots) or ``postgresql://…`` (pre-loaded).

    ``isolate_failures`` (the service): a port that cannot be served fails only the queries that
    read it, instead of the whole engine.
    """
    if engine_kind(url) == "duckdb":
        if catalog is None:
            raise InputError("the duckdb engine needs a catalog to load")
        from meshgov.engines.duckdb import DuckDBEngine

        return DuckDBEngine.from_catalog(
            catalog,
            hash_key,
            timeout_ms=timeout_ms or DEFAULT_STATEMENT_TIMEOUT_MS,
            isolate_failures=isolate_failures,
        )
    if engine_kind(url) == "spark":
        if catalog is None:
            raise InputError("the spark engine needs a catalog")
        from meshgov.engines.spark import SparkEngine

        return SparkEngine.from_catalog(
            catalog,
            hash_key,
            url=url,
            timeout_ms=timeout_ms or DEFAULT_STATEMENT_TIMEOUT_MS,
            isolate_failures=isolate_failures,
        )
    from meshgov.engines.postgres import PostgresEngine

    return PostgresEngine(
        url,
        catalog,
        timeout_ms=timeout_ms or DEFAULT_STATEMENT_TIMEOUT_MS,
        isolate_failures=isolate_failures,
    )


def snapshot_location(source: PortSource) -> Location:
    return Location(
        file=str(source.data_path) if source.data_path else source.manifest.source,
        product=source.manifest.id,
        port=source.port.name,
    )
