"""What every query engine offers, and what every engine shares.

An engine only ever receives SQL that the gateway generated from a rewritten tree. It still checks
that the text is one read-only query (defence in depth), runs it locked down, and returns Arrow.
Engine error text is never shown to a user: it can carry data values (``invalid input syntax for
type integer: "alice@example.com"``). Errors become a generic message naming only their class.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast, runtime_checkable

from meshgov.errors import (
    AccessDenied,
    BackendUnavailable,
    InputError,
    LimitExceeded,
    Location,
    ManifestError,
    MeshgovError,
    ResultTooLarge,
    SnapshotUnavailable,
    SqlUnsupportedError,
)
from meshgov.limits import ResultLimits, check_deadline

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa
    from sqlglot import exp

    from meshgov.catalog import Catalog
    from meshgov.core.manifest import Manifest, OutputPort

log = logging.getLogger("meshgov.engines")

DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
# Names of the temporary barrier views an engine creates around each secure subquery.
BARRIER_VIEW_PREFIX = "meshgov_barrier_"
# The schema of persistent barrier views (PostgreSQL): one view per distinct secure subquery,
# named by a digest of its whole SQL (masks, port table and the principal's bound filter values).
BARRIER_SCHEMA = "meshgov_barrier"


class QueryFailed(InputError):
    """The engine rejected or failed the query; the message names only the error class."""

    code = "query_failed"

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind  # the error class ("unknown name", "type error", "timeout"…)


class CancelScope:
    """Lets another thread stop the query running under this scope (a client's CancelRequest, a
    session's statement timeout). Engines bind their interrupt while a query runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interrupt: Callable[[], object] | None = None
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return bool(self.reason)

    def bind(self, interrupt: Callable[[], object]) -> None:
        """Called by the engine just before it runs the query; a scope already cancelled stops
        the query before it starts (``QueryFailed``, kind ``cancelled``)."""
        with self._lock:
            if self.reason:
                raise QueryFailed(self.reason, kind="cancelled")
            self._interrupt = interrupt

    def unbind(self) -> None:
        with self._lock:
            self._interrupt = None

    def cancel(self, reason: str) -> None:
        with self._lock:
            self.reason = self.reason or reason
            if self._interrupt is not None:
                self._interrupt()


# The scope of the query being run in this context (asyncio.to_thread carries it to the thread).
CANCEL_SCOPE: ContextVar[CancelScope | None] = ContextVar("meshgov_cancel_scope", default=None)


@runtime_checkable
class QueryEngine(Protocol):
    """One query engine: runs one generated read-only SQL statement and returns Arrow."""

    name: str
    dialect: str
    # True: every row-filtered secure subquery runs behind a barrier that orders the row filter
    # before anything of the query (the gateway then serves expressions that can fail).
    structural_barrier: bool

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


@functools.lru_cache(maxsize=65_536)
def _table_parts(name: str) -> tuple[str | None, str | None, str] | None:
    """(catalog, schema, table) of a table name, parsed by sqlglot, lower-cased; None when it is
    not a table name. Remembered: every catalogue revision of the service checks every port."""
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        table = exp.to_table(name)
    except (ParseError, ValueError):
        return None
    if not isinstance(table, exp.Table) or not table.name:
        return None
    return table.catalog.lower() or None, table.db.lower() or None, table.name.lower()


def physical_table(manifest: Manifest, port: OutputPort) -> PhysicalTable:
    """Parse a port's ``table:`` with sqlglot into its parts (identifiers lower-cased)."""
    name = port.table or port.name
    parts = _table_parts(name)
    if parts is None:
        where = Location(file=manifest.source, product=manifest.id, port=port.name)
        raise ManifestError(f"port table name {name!r} is not a table name", where)
    catalog, schema, table = parts
    return PhysicalTable(
        product=manifest.id, port=port.name, catalog=catalog, schema=schema, table=table
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
    sql: str, dialect: str, unavailable: Mapping[tuple[str, ...], MeshgovError]
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
RESERVED_SCHEMAS = frozenset(
    {"meshgov_internal", BARRIER_SCHEMA, "information_schema", "pg_catalog", "temp"}
)


def _check_not_reserved(physical: PhysicalTable, manifest: Manifest, port: OutputPort) -> None:
    schema = physical.schema or ""
    if (
        schema in RESERVED_SCHEMAS
        or schema.startswith(("pg_", "meshgov_"))
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
    actual = _declared_columns(source, table.column_names)
    arrays = [table.column(name) for name in actual]
    return pa.Table.from_arrays(arrays, names=[c.name.lower() for c in source.port.columns])


def _declared_columns(source: PortSource, names: list[str]) -> list[str]:
    """The snapshot's name of each declared column, in manifest order; a missing one raises."""
    by_lower = {name.lower(): name for name in names}
    found: list[str] = []
    for column in source.port.columns:
        actual = by_lower.get(column.name.lower())
        if actual is None:
            raise ManifestError(
                f"snapshot has no column {column.name!r}",
                Location(
                    file=str(source.data_path),
                    product=source.manifest.id,
                    port=source.port.name,
                    column=column.name,
                ),
            )
        found.append(actual)
    return found


def check_snapshot(source: PortSource) -> None:
    """Raise what loading the port's snapshot would raise for a missing file, an unknown format
    or a missing declared column, reading only the file's schema (a Parquet footer, a CSV's first
    block): a local catalogue's engine refuses such a catalogue up front and loads the rows of a
    port when a query reads it."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if source.data_problem is not None:
        raise source.data_problem
    if source.data_path is None:
        return
    path = source.data_path
    where = Location(file=str(path), product=source.manifest.id, port=source.port.name)
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            names = list(pq.read_schema(path).names)
        elif suffix in {".csv", ".tsv"}:
            parse = pa_csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            with pa_csv.open_csv(path, parse_options=parse) as reader:
                names = list(reader.schema.names)
        else:
            raise ManifestError("snapshot must be .parquet or .csv", where)
    except FileNotFoundError:
        raise ManifestError("snapshot file not found", where) from None
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read snapshot: {type(exc).__name__}", where) from None
    _declared_columns(source, names)


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


def audit_sources(
    statement: exp.Query, physical: frozenset[tuple[str, ...]]
) -> tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]]:
    """Every table is a port table or a CTE, and no function reaches outside the data; returns
    the port tables read (each known table a name may refer to), and those named only by a name
    that is also a CTE's.

    The gateway already allows only these; the engine checks again so that SQL reaching it by
    any other path still cannot read a system catalogue, a file or another table.
    """
    from sqlglot import exp

    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    reads: set[tuple[str, ...]] = set()
    shadowed: set[tuple[str, ...]] = set()
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            name = _function_name(table.this)
            if name not in SAFE_TABLE_FUNCTIONS:
                raise SqlUnsupportedError(f"the engine does not run table function {name}()")
            continue
        parts = tuple(p.name.lower() for p in table.parts)
        matched = _matching_physical(parts, physical)
        if len(parts) == 1 and parts[0] in ctes:
            # A CTE's name, or the port's inside the CTE's own body (a non-recursive CTE cannot
            # see itself): the port is loaded if it can be (``PreparedQuery.shadowed``).
            shadowed.update(matched)
            continue
        reads.update(matched)
        if not matched:
            # The name is the caller's own text (maybe a file path); it is not echoed.
            raise SqlUnsupportedError("the engine serves only product tables and CTEs")
    for function in statement.find_all(exp.Func):
        name = _function_name(function)
        if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_FUNCTION_PREFIXES):
            raise SqlUnsupportedError(f"the engine does not run function {name}()")
    return frozenset(reads), frozenset(shadowed - reads)


def tables_read(
    sql: str, dialect: str, physical: frozenset[tuple[str, ...]]
) -> frozenset[tuple[str, ...]]:
    """The port tables any SQL names (a CTE's name too), without judging it; nothing when
    sqlglot cannot parse it (tests and benches running SQL as given)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError:
        return frozenset()
    reads: set[tuple[str, ...]] = set()
    for statement in statements:
        for table in statement.find_all(exp.Table):
            parts = tuple(p.name.lower() for p in table.parts)
            reads.update(_matching_physical(parts, physical))
    return frozenset(reads)


def _function_name(function: exp.Func) -> str:
    from sqlglot import exp

    if isinstance(function, exp.Anonymous):
        return str(function.name).lower()
    return function.sql_name().lower()


def secure_subqueries(
    statement: exp.Query, physical: frozenset[tuple[str, ...]]
) -> list[exp.Subquery]:
    """The gateway's ``(SELECT <masked> FROM <port table> [WHERE <filters>])`` nodes, wherever
    they sit: in FROM or a JOIN, inside a parenthesised or nested join, a lateral, a CTE, a set
    operation or any subquery. Recognised by their shape alone, never by their parent, so that no
    syntactic position can hide one from the barrier."""
    from sqlglot import exp

    found: list[exp.Subquery] = []
    for subquery in statement.find_all(exp.Subquery):
        inner = subquery.this
        if not isinstance(inner, exp.Select):
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


@dataclass(frozen=True)
class PreparedQuery:
    """What an engine runs: barrier view statements first (in order), then the query; ``reads``
    are the port tables it reads (physical parts), for an engine that loads them on demand.

    ``view_names``: the view each statement of ``views`` creates (same order)."""

    views: tuple[str, ...]
    sql: str
    reads: frozenset[tuple[str, ...]] = frozenset()
    # Ports named by a name that is also a CTE's: loaded when they can be, never an error.
    shadowed: frozenset[tuple[str, ...]] = frozenset()
    view_names: tuple[str, ...] = ()


@functools.lru_cache(maxsize=2048)
def prepare_query(
    sql: str,
    dialect: str,
    physical: frozenset[tuple[str, ...]],
    barriers: bool,
    persistent: bool = False,
) -> PreparedQuery:
    """Check ``sql`` is one read-only query, put every row-filtered secure subquery behind a
    barrier view, and generate what runs (cached: the gateway's SQL repeats).

    The barrier is structural: every secure subquery with a row filter (a WHERE), wherever it
    sits, becomes ``(SELECT * FROM <barrier view>)`` — a DuckDB ``SECURE VIEW``, a PostgreSQL
    ``security_barrier`` view. Behind it the row filter runs before anything of the user's query
    (a predicate, a cast, a join condition, a computed column); only leakproof operators may be
    pushed into it. No judgement of which predicates "could fail" is made: the planner decides
    what runs first (PostgreSQL orders merged conditions by cost), so only a barrier orders them.
    An unfiltered secure subquery hides no rows and needs none. Only SQL generated from the parsed
    tree is ever run.

    ``persistent`` (PostgreSQL): the views are not temporary but kept in ``meshgov_barrier``, each
    named by a digest of its entire SQL — the port table, the masks and the principal's row filter
    with its bound values — so that only the very same secure subquery (same principal filter
    values, same masks) ever reads the same view, and a policy or catalogue change that changes
    the subquery makes another view. The engine creates each once and reuses it.
    """
    import hashlib

    from sqlglot import exp

    statement = require_single_query(sql, dialect)
    reads, shadowed = audit_sources(statement, physical)
    views: list[str] = []
    names: list[str] = []
    if barriers:
        for subquery in secure_subqueries(statement, physical):
            body = subquery.this
            if not body.args.get("where"):
                continue
            if persistent:
                digest = hashlib.sha256(
                    f"{dialect}\n{body.sql(dialect=dialect)}".encode()
                ).hexdigest()[:40]
                table = exp.table_(f"v_{digest}", db=BARRIER_SCHEMA)
            else:
                table = exp.to_table(f"{BARRIER_VIEW_PREFIX}{len(views) + 1}")
            if table.sql(dialect=dialect) in names:  # the same subquery twice (a self-join)
                subquery.set("this", exp.select("*").from_(table.copy()))
                continue
            views.append(_barrier_view_sql(table.copy(), body.copy(), dialect, persistent))
            names.append(table.sql(dialect=dialect))
            # The subquery node stays where it is (its alias, joins hung on it, its parent):
            # only its body is swapped for a read of the view.
            subquery.set("this", exp.select("*").from_(table))
    # The dialect as the gateway writes it (Spark: with meshgov's corrections).
    from meshgov.core.sql.parse import _dialect

    return PreparedQuery(
        tuple(views),
        statement.sql(dialect=_dialect(dialect)),
        reads,
        shadowed,
        view_names=tuple(names),
    )


def _barrier_view_sql(
    table: exp.Table, body: exp.Select, dialect: str, persistent: bool = False
) -> str:
    """``CREATE TEMPORARY SECURE VIEW`` (DuckDB) or ``… WITH (security_barrier)`` (PostgreSQL).

    A persistent PostgreSQL view is also ``security_invoker``: its tables are read with the
    privileges of the role that queries it (the engine's reader), not of its owner."""
    import sqlglot
    from sqlglot import exp

    properties: list[exp.Expression] = [] if persistent else [exp.TemporaryProperty()]
    if dialect == "duckdb":
        properties.append(exp.SecureProperty())
    else:
        properties.append(exp.Property(this=exp.var("security_barrier"), value=exp.true()))
        if persistent:
            properties.append(exp.Property(this=exp.var("security_invoker"), value=exp.true()))
    create = exp.Create(
        kind="VIEW",
        this=table,
        expression=body,
        properties=exp.Properties(expressions=properties),
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


def _matching_physical(
    parts: tuple[str, ...], physical: frozenset[tuple[str, ...]]
) -> list[tuple[str, ...]]:
    """The known tables ``parts`` may name (suffix match either way, as ``_matches_physical``);
    only those ending in the same table name are compared."""
    if not parts:
        return []
    by_name = _by_table_name(physical)
    return [
        known
        for known in by_name.get(parts[-1], ())
        if parts[-len(known) :] == known or known[-len(parts) :] == parts
    ]


@functools.lru_cache(maxsize=16)
def _by_table_name(
    physical: frozenset[tuple[str, ...]],
) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Known tables by their last part (an engine's set: 10,000 ports are not scanned per name)."""
    grouped: dict[str, list[tuple[str, ...]]] = {}
    for known in physical:
        grouped.setdefault(known[-1], []).append(known)
    return {name: tuple(tables) for name, tables in grouped.items()}


# Engine error classes by the words in their type or SQLSTATE class; the text itself is dropped.
# Out of memory, disk full (temp files) and configuration limits (temp_file_limit) come first:
# DuckDB's OutOfMemoryException is an OperationalError, which is not a lost connection.
RESOURCE_LIMIT = "resource limit"
_ERROR_CLASSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("OutOfMemory", "53200", "53100", "53400"), RESOURCE_LIMIT),
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


def generic_engine_error(
    exc: BaseException, engine: str, marker: str | None = None
) -> MeshgovError:
    """Map an engine exception to a message that carries no engine text (it may hold values).

    ``marker``: the error class when the exception's type does not carry it (an error raised
    while streaming comes through Arrow's reader as text).
    """
    if marker is None:
        marker = f"{type(exc).__module__}.{type(exc).__name__} {getattr(exc, 'sqlstate', '') or ''}"
    # Details are for operators' logs only; the user sees the class.
    log.debug("engine %s error %s", engine, marker)
    kind = next(
        (label for words, label in _ERROR_CLASSES if any(w in marker for w in words)), "error"
    )
    if kind != RESOURCE_LIMIT and _is_connection_error(exc):
        return BackendUnavailable(f"{engine} engine is unavailable ({type(exc).__name__})")
    if kind == "permission denied":
        return AccessDenied(f"the {engine} engine refused the query ({kind})")
    return QueryFailed(
        f"the query failed in the {engine} engine ({kind}); engine messages are withheld "
        "because they can contain data values",
        kind,
    )


def resource_limit_error(engine: str, limits: ResultLimits) -> LimitExceeded:
    """The query ran out of the memory or temporary space the engine gives one query."""
    return LimitExceeded(
        f"the query exceeded the {engine} engine's memory or temporary-space limit "
        f"({limits.memory_mb:,} MB memory, MESHGOV_ENGINE_MEMORY_MB; {limits.temp_mb:,} MB "
        "temporary files, MESHGOV_ENGINE_TEMP_MB) and was stopped"
    )


def result_too_large(limits: ResultLimits, rows: int) -> ResultTooLarge:
    if rows > limits.max_rows:
        return ResultTooLarge(
            f"the result has more than {limits.max_rows:,} rows (MESHGOV_RESULT_MAX_ROWS); "
            "the query was stopped: aggregate, filter or add a LIMIT"
        )
    return ResultTooLarge(
        f"the result is larger than {limits.max_bytes:,} bytes (MESHGOV_RESULT_MAX_BYTES) after "
        f"{rows:,} rows; the query was stopped: select fewer columns or rows"
    )


def bounded_table(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, limits: ResultLimits
) -> pa.Table:
    """Collect an engine's result batch by batch, stopping at the row or byte cap.

    The caller closes the engine's cursor when this raises, which stops the query; nothing past
    the caps is ever fetched. The request's deadline is checked between batches.
    """
    import pyarrow as pa

    kept: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in batches:
        check_deadline()
        rows += batch.num_rows
        size += batch.nbytes
        if rows > limits.max_rows or size > limits.max_bytes:
            raise result_too_large(limits, rows)
        kept.append(batch)
    return pa.Table.from_batches(kept, schema=schema)


class ResultStream:
    """An engine's result batch by batch, for a face that sends rows as they come (the wire).

    Memory holds one batch: the engine's cursor stays open and the next batch is read when asked
    for. The caps are those of a collected result (``bounded_table``), counted as batches pass:
    past ``max_rows`` or ``max_bytes`` the query is stopped and ``ResultTooLarge`` raised, so the
    client gets an error, never a silently truncated result. ``close()`` (idempotent) ends the
    query and frees the engine's cursor or connection; so does reading the last batch.
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        close: Callable[[], object],
        limits: ResultLimits,
    ) -> None:
        self.schema = schema
        self._batches = batches
        self._close = close
        self._limits = limits
        self._closed = False
        self.rows = 0
        self.bytes = 0

    def next_batch(self) -> pa.RecordBatch | None:
        """The next batch, or None at the end (the stream is then closed)."""
        if self._closed:
            return None
        try:
            check_deadline()
            batch = next(self._batches, None)
            if batch is None:
                self.close()
                return None
            self.rows += batch.num_rows
            self.bytes += batch.nbytes
            if self.rows > self._limits.max_rows or self.bytes > self._limits.max_bytes:
                raise result_too_large(self._limits, self.rows)
            return batch
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while (batch := self.next_batch()) is not None:
            yield batch

    def read_all(self) -> pa.Table:
        """Everything that is left, as one table (the caps still apply)."""
        import pyarrow as pa

        batches = list(self)
        if all(batch.schema == self.schema for batch in batches):
            return pa.Table.from_batches(batches, schema=self.schema)
        # Types inferred per chunk (PostgreSQL's numeric, jsonb…) may differ: widened to one.
        return pa.concat_tables(
            [pa.Table.from_batches([batch]) for batch in batches], promote_options="permissive"
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close, self._close = self._close, _nothing
            close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nothing() -> object:
    return None


def execute_stream(engine: QueryEngine, sql: str) -> ResultStream:
    """``engine.execute_stream`` where the engine streams; a collected result otherwise."""
    stream = getattr(engine, "execute_stream", None)
    if stream is not None:
        return cast("ResultStream", stream(sql))
    table = engine.execute(sql)
    return ResultStream(
        table.schema, iter(table.to_batches()), _nothing, ResultLimits(2**62, 2**62)
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
    limits: ResultLimits | None = None,
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
            limits=limits or ResultLimits(),
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
        limits=limits or ResultLimits(),
    )


def snapshot_location(source: PortSource) -> Location:
    return Location(
        file=str(source.data_path) if source.data_path else source.manifest.source,
        product=source.manifest.id,
        port=source.port.name,
    )
