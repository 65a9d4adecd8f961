"""The embedded engine: an in-memory DuckDB holding each table port's snapshot, locked down.

Snapshots are read with pyarrow (DuckDB itself never touches the file system) and copied into
tables named after each port's physical ``table:``, each when the first query that reads it runs
(a catalogue of 10,000 ports costs only the ports its queries read). The mask function is
installed as a Python closure (the key lives in Python memory only: ``duckdb_functions()`` shows
no body, and no SQL can read it) and the configuration is locked: no external access, no
extension install or autoload. Each query runs in its own cursor. No barrier views by default:
DuckDB does not document a ``SECURE VIEW`` as running its filter first, so the gateway's
guarantee on DuckDB is that it denies every expression that could fail (the error oracle), and a
view that guarantees nothing only costs (a secure view stops DuckDB's top-n rewrite of
``row_number() … <= n``: +89%).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from duckdb.func import PythonUDFType
from sqlglot import exp

from meshgov.core.manifest import LogicalType
from meshgov.engines.base import (
    CANCEL_SCOPE,
    DEFAULT_STATEMENT_TIMEOUT_MS,
    RESOURCE_LIMIT,
    PortSource,
    QueryFailed,
    ResultStream,
    check_available,
    check_snapshot,
    collect_port_sources,
    generic_engine_error,
    port_sources,
    prepare_query,
    read_snapshot,
    resource_limit_error,
    snapshot_location,
    tables_read,
    unavailable_port,
    unavailable_ports,
)
from meshgov.engines.keyed_hash import keyed_hash
from meshgov.errors import BackendUnavailable, ManifestError, MeshgovError, SnapshotUnavailable
from meshgov.limits import ResultLimits

if TYPE_CHECKING:
    from meshgov.catalog import Catalog

HASH_FUNCTION = "meshgov_hash"
_LOAD_VIEW = "meshgov_load_source"
DUCKDB_TYPES: dict[LogicalType, str] = {
    LogicalType.string: "VARCHAR",
    LogicalType.integer: "BIGINT",
    LogicalType.number: "DOUBLE",
    LogicalType.decimal: "DECIMAL(38, 9)",
    LogicalType.boolean: "BOOLEAN",
    LogicalType.date: "DATE",
    LogicalType.timestamp: "TIMESTAMP",
    LogicalType.binary: "BLOB",
    LogicalType.array: "VARCHAR[]",
    LogicalType.struct: "JSON",
}
# Settings applied at connect time; `lock_configuration` comes last, after loading.
_LOCKED_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
# Rows per Arrow batch when fetching a result: the caps are checked between batches.
_FETCH_BATCH_ROWS = 65_536


def resource_config(limits: ResultLimits, temp_dir: str) -> dict[str, Any]:
    """Memory, threads and spill space: set at connect time, before the configuration is locked,
    so no query can raise them."""
    return {
        "memory_limit": f"{limits.memory_mb}MB",
        "threads": limits.threads,
        "temp_directory": temp_dir,
        "max_temp_directory_size": f"{limits.temp_mb}MB",
    }


class _Watchdog:
    """One daemon thread that interrupts queries past their deadline (DuckDB has no
    statement timeout, and starting a timer thread per query costs milliseconds), or all running
    queries when the process grows past their memory guard.

    DuckDB's ``memory_limit`` covers its buffer manager, not every allocation (a huge list built
    by ``generate_series`` and unnested grows the process by gigabytes under a 128 MB limit), so
    the process's resident size is the backstop: over the guard, the queries are interrupted and
    reported as over the memory limit, and the process lives on.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        # token -> (deadline, cursor, resident-size guard in bytes or 0)
        self._deadlines: dict[int, tuple[float, duckdb.DuckDBPyConnection, int]] = {}
        self._over_memory: set[int] = set()
        self._next_token = 0
        self._thread: threading.Thread | None = None

    def watch(self, cursor: duckdb.DuckDBPyConnection, seconds: float, rss_guard: int = 0) -> int:
        with self._condition:
            token = self._next_token
            self._next_token += 1
            self._deadlines[token] = (time.monotonic() + seconds, cursor, rss_guard)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="meshgov-duckdb-watchdog")
                self._thread.daemon = True
                self._thread.start()
            # No notify: waking the thread per query costs the caller a GIL hand-over; it polls.
            return token

    def release(self, token: int) -> bool:
        """Stop watching; True when the query was interrupted for memory (not for time)."""
        with self._condition:
            self._deadlines.pop(token, None)
            if token in self._over_memory:
                self._over_memory.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                guards = [g for _, _, g in self._deadlines.values() if g]
                resident = resident_bytes() if guards else 0
                for token, (deadline, cursor, guard) in list(self._deadlines.items()):
                    if guard and resident > guard:
                        del self._deadlines[token]
                        self._over_memory.add(token)
                        cursor.interrupt()
                    elif deadline <= now:
                        del self._deadlines[token]
                        cursor.interrupt()
                next_deadline = min((d for d, _, _ in self._deadlines.values()), default=now + 1)
                poll = _MEMORY_POLL_SECONDS if self._deadlines else _POLL_SECONDS
                self._condition.wait(timeout=min(max(next_deadline - now, 0.005), poll))


def resident_bytes() -> int:
    """The process's resident set size (Linux ``/proc``; 0, no guard, elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MEMORY_POLL_SECONDS = 0.05


_POLL_SECONDS = 0.5
_WATCHDOG = _Watchdog()


class DuckDBEngine:
    """An embedded DuckDB with the catalogue's snapshots; safe to share between threads.

    Ports are loaded on demand: a query loads the ports it reads (once; later queries find them
    loaded), so a catalogue of 10,000 products costs nothing until a query reads one of them. A
    port that cannot be loaded fails the queries that read it, naming it, and no other.
    """

    name = "duckdb"
    dialect = "duckdb"

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        sources: list[PortSource],
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        barriers: bool = False,
        unavailable: dict[tuple[str, ...], SnapshotUnavailable] | None = None,
        limits: ResultLimits | None = None,
        owned_temp_dir: str | None = None,
        *,
        isolate_failures: bool = True,
        tables: dict[tuple[str, ...], pa.Table] | None = None,
        on_loaded: Callable[[PortSource, int], None] | None = None,
    ) -> None:
        self._connection = connection
        self._limits = limits or ResultLimits()
        if owned_temp_dir is not None:
            # Removed on close, or when a replaced engine is collected (the service swaps engines
            # when the catalogue changes and lets in-flight queries finish on the old one).
            self._cleanup = weakref.finalize(self, shutil.rmtree, owned_temp_dir, True)
        # Ports not loaded yet, by physical parts; a query loads those it reads.
        self._pending: dict[tuple[str, ...], PortSource] = {s.physical.parts: s for s in sources}
        self._physical = frozenset(self._pending)
        self._loaded: set[tuple[str, ...]] = set()
        self._tables = dict(tables or {})
        self._on_loaded = on_loaded
        self._isolate = isolate_failures
        # Tables of ports that could not be loaded: a query on one fails naming it. (A strict
        # engine keeps the load's own error, with the snapshot's place.)
        self._unavailable: dict[tuple[str, ...], MeshgovError] = dict(unavailable or {})
        self._timeout_s = timeout_ms / 1000
        self._barriers = barriers
        # ``barriers``: put each filtered secure subquery behind a SECURE VIEW (off by default:
        # DuckDB does not document it as ordering the view's filter first, so the gateway denies
        # fallible expressions for DuckDB either way).
        self.structural_barrier = False
        self._lock = threading.Lock()
        # Held while ports load (one load at a time; queries on loaded ports do not wait).
        self._load_lock = threading.Lock()
        self._closed = False
        self._rss_guard = 0
        self._set_memory_guard()

    def _set_memory_guard(self) -> None:
        """The process may grow by the engine's memory limit (and a margin for the Python side)
        over what it holds once the ports are loaded; past that the watchdog interrupts the
        queries. Set again after each load."""
        loaded = resident_bytes()
        self._rss_guard = loaded + 2 * self._limits.memory_mb * 1024 * 1024 if loaded else 0

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        hash_key: bytes,
        *,
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        barriers: bool = False,
        on_loaded: Callable[[PortSource, int], None] | None = None,
        isolate_failures: bool = False,
        limits: ResultLimits | None = None,
    ) -> DuckDBEngine:
        """An engine over every table port: the mask function installed, the configuration
        locked; each port loaded by the first query that reads it.

        By default (a local catalogue: fix it) a refused table name or snapshot path, or a
        snapshot that is missing or lacks a declared column (its schema is read, not its rows),
        is an error of the whole catalogue, raised here. With ``isolate_failures`` (the service)
        such a port is left out and only queries that read it fail (``SnapshotUnavailable``
        naming it); every other product is still served. Either way a snapshot that fails to
        load fails the queries that read it, and no other.
        """
        if not isolate_failures:
            sources = port_sources(catalog)
            for source in sources:
                check_snapshot(source)
            return cls.from_sources(
                sources,
                hash_key,
                timeout_ms=timeout_ms,
                barriers=barriers,
                on_loaded=on_loaded,
                limits=limits,
            )
        sources, rejected = collect_port_sources(catalog)
        unavailable = unavailable_ports(sources, rejected)
        return cls.from_sources(
            [s for s in sources if s.physical.parts not in unavailable],
            hash_key,
            timeout_ms=timeout_ms,
            barriers=barriers,
            on_loaded=on_loaded,
            unavailable=unavailable,
            limits=limits,
        )

    @classmethod
    def from_sources(
        cls,
        sources: list[PortSource],
        hash_key: bytes,
        *,
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        barriers: bool = False,
        on_loaded: Callable[[PortSource, int], None] | None = None,
        tables: dict[tuple[str, ...], pa.Table] | None = None,
        unavailable: dict[tuple[str, ...], SnapshotUnavailable] | None = None,
        limits: ResultLimits | None = None,
    ) -> DuckDBEngine:
        """Like ``from_catalog``; ``tables`` supplies in-memory data by physical parts (bench).

        With ``unavailable`` (the ports already known not to be served), a port whose snapshot
        cannot be read or loaded fails its queries with ``SnapshotUnavailable``; without it, with
        the load's own error.
        """
        limits = limits or ResultLimits()
        owned_temp_dir: str | None = None
        if limits.temp_dir is not None:
            limits.temp_dir.mkdir(parents=True, exist_ok=True)
            temp_dir = str(limits.temp_dir)
        else:
            temp_dir = owned_temp_dir = tempfile.mkdtemp(prefix="meshgov-duckdb-")
        try:
            connection = duckdb.connect(
                ":memory:", config={**_LOCKED_CONFIG, **resource_config(limits, temp_dir)}
            )
        except duckdb.Error as exc:
            if owned_temp_dir is not None:
                shutil.rmtree(owned_temp_dir, ignore_errors=True)
            raise BackendUnavailable(f"cannot start DuckDB ({type(exc).__name__})") from None
        try:
            connection.create_function(
                HASH_FUNCTION,
                keyed_hash(hash_key),
                ["VARCHAR"],
                "VARCHAR",
                type=PythonUDFType.ARROW,
                side_effects=False,
            )
            connection.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            connection.close()
            if owned_temp_dir is not None:
                shutil.rmtree(owned_temp_dir, ignore_errors=True)
            raise BackendUnavailable(f"cannot load DuckDB ({type(exc).__name__})") from None
        except BaseException:
            connection.close()
            if owned_temp_dir is not None:
                shutil.rmtree(owned_temp_dir, ignore_errors=True)
            raise
        return cls(
            connection,
            sources,
            timeout_ms,
            barriers,
            unavailable,
            limits,
            owned_temp_dir,
            isolate_failures=unavailable is not None,
            tables=tables,
            on_loaded=on_loaded,
        )

    @property
    def physical_tables(self) -> set[tuple[str, ...]]:
        return set(self._physical)

    @property
    def loaded_tables(self) -> set[tuple[str, ...]]:
        """The tables loaded so far (by the queries that read them)."""
        return set(self._loaded)

    def load(self, tables: frozenset[tuple[str, ...]] | set[tuple[str, ...]]) -> None:
        """Load the ports of ``tables`` (physical parts) not loaded yet; a port that cannot be
        loaded raises its error, now and for every later query that reads it."""
        if all(parts in self._loaded for parts in tables):
            return
        for parts in tables:
            failure = self._unavailable.get(parts)
            if failure is not None:
                raise failure
        with self._load_lock:
            wanted = [p for p in sorted(tables) if p not in self._loaded]
            if not wanted:
                return
            with self._lock:
                if self._closed:
                    raise BackendUnavailable("the DuckDB engine is closed")
                cursor = self._connection.cursor()
            try:
                for parts in wanted:
                    self._load_one(cursor, parts)
            except duckdb.Error as exc:
                raise BackendUnavailable(f"cannot load DuckDB ({type(exc).__name__})") from None
            finally:
                cursor.close()
                self._set_memory_guard()

    def _load_one(self, cursor: duckdb.DuckDBPyConnection, parts: tuple[str, ...]) -> None:
        failure = self._unavailable.get(parts)
        if failure is not None:
            raise failure
        source = self._pending.get(parts)
        if source is None:
            return  # not a port table (the audit refuses it before any load)
        try:
            rows = _load_port(cursor, source, self._tables.get(parts))
        except MeshgovError as exc:
            _drop_partial(cursor, source)
            error: MeshgovError = exc
            if self._isolate:
                error = unavailable_port(
                    source.manifest.id, source.port.name, source.port.data, exc
                )
            self._unavailable[parts] = error
            del self._pending[parts]
            raise error from None
        self._loaded.add(parts)
        del self._pending[parts]
        self._tables.pop(parts, None)
        if self._on_loaded is not None:
            self._on_loaded(source, rows)

    def execute(self, sql: str) -> pa.Table:
        """Run one generated query in a fresh cursor (no session state survives) → Arrow.

        The ports it reads are loaded first (once). The result is streamed batch by batch and
        stops at the row or byte cap (``ResultTooLarge``); closing the cursor then ends the
        query. Running out of the memory limit is a ``LimitExceeded`` naming it.
        """
        with self.execute_stream(sql) as stream:
            return stream.read_all()

    def execute_stream(self, sql: str) -> ResultStream:
        """``execute``, batch by batch: the cursor stays open (and the query under its deadline
        and cancel scope) until the stream is read to its end or closed."""
        check_available(sql, self.dialect, self._unavailable)
        prepared = prepare_query(sql, self.dialect, self._physical, self._barriers)
        self.load(prepared.reads)
        for parts in prepared.shadowed:
            # Maybe read (the body of a CTE of the same name); unloadable: the CTE is meant.
            with contextlib.suppress(MeshgovError):
                self.load({parts})
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the DuckDB engine is closed")
            cursor = self._connection.cursor()
        token = _WATCHDOG.watch(cursor, self._timeout_s, self._rss_guard)
        scope = CANCEL_SCOPE.get()
        finished: list[bool] = []

        def finish() -> bool:
            """Free the cursor (once); True when the watchdog stopped it for memory."""
            if finished:
                return finished[0]
            if scope is not None:
                scope.unbind()
            finished.append(_WATCHDOG.release(token))
            cursor.close()
            return finished[0]

        try:
            if scope is not None:
                scope.bind(cursor.interrupt)
            for view in prepared.views:
                cursor.execute(view)
            reader = cursor.sql(prepared.sql).to_arrow_reader(_FETCH_BATCH_ROWS)
        except BaseException as exc:
            raise self._failure(exc, finish()) from None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except BaseException as exc:
                raise self._failure(exc, finish()) from None

        return ResultStream(reader.schema, batches(), finish, self._limits)

    def _failure(self, exc: BaseException, over_memory: bool) -> BaseException:
        """What an error of DuckDB becomes (never its text); others pass unchanged."""
        if isinstance(exc, duckdb.Error):
            failure = generic_engine_error(exc, self.name)
        elif isinstance(exc, pa.ArrowException | OSError):
            # Past the first batch DuckDB's errors come through Arrow's reader as text
            # ("INTERRUPT Error: …", "Out of Memory Error: …"): its class is the words before.
            head = str(exc).split(" Error", 1)[0]
            marker = "".join(word.capitalize() for word in head.split()[:4])
            failure = generic_engine_error(exc, self.name, marker)
        else:
            return exc
        if over_memory or (isinstance(failure, QueryFailed) and failure.kind == RESOURCE_LIMIT):
            return resource_limit_error(self.name, self._limits)
        return failure

    def execute_unprotected(self, sql: str) -> pa.Table:
        """Run SQL as given, without checks or barriers (benchmarks and tests only); the port
        tables it names are loaded first."""
        self.load(tables_read(sql, self.dialect, self._physical))
        with self._lock:
            cursor = self._connection.cursor()
        try:
            return cursor.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise generic_engine_error(exc, self.name) from None
        finally:
            cursor.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()
                if hasattr(self, "_cleanup"):
                    self._cleanup()


def _drop_partial(connection: duckdb.DuckDBPyConnection, source: PortSource) -> None:
    """Drop what a failed load may have left (nothing, normally): the table must not exist."""
    physical = source.physical
    target = exp.table_(physical.table, db=physical.schema, catalog=physical.catalog, quoted=True)
    with contextlib.suppress(duckdb.Error):
        connection.execute(
            exp.Drop(kind="TABLE", tables=[target], exists=True).sql(dialect="duckdb")
        )


# A scalar column whose snapshot type is of another family than its declared type is stored as
# the declared type, as on PostgreSQL: a CSV's `decimal` column is inferred as DOUBLE, an
# all-integer `number` column as BIGINT, and casts, rounding and division would then answer
# differently on the two engines. A snapshot already of the declared family keeps its own type.
_SNAPSHOT_FAMILY: dict[LogicalType, Callable[[pa.DataType], bool]] = {
    LogicalType.string: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    LogicalType.integer: pa.types.is_integer,
    LogicalType.number: pa.types.is_floating,
    LogicalType.decimal: pa.types.is_decimal,
    LogicalType.boolean: pa.types.is_boolean,
    LogicalType.date: pa.types.is_date,
    LogicalType.timestamp: pa.types.is_timestamp,
}


def _declared_types(source: PortSource, schema: pa.Schema) -> exp.Select:
    """``SELECT`` of the snapshot's columns, each scalar one of another family cast to its
    declared DuckDB type."""
    projections: list[exp.Expr] = []
    for column in source.port.columns:
        name = column.name.lower()
        value: exp.Expr = exp.column(name, quoted=True)
        same_family = _SNAPSHOT_FAMILY.get(column.type)
        if same_family is not None and not same_family(schema.field(name).type):
            kind = exp.DataType.build(DUCKDB_TYPES[column.type], dialect="duckdb")
            value = exp.alias_(exp.cast(value, kind), name, quoted=True)
        projections.append(value)
    return exp.select(*projections)


def _load_port(
    connection: duckdb.DuckDBPyConnection, source: PortSource, data: pa.Table | None
) -> int:
    if source.data_problem is not None:
        raise source.data_problem  # never served as an empty table
    physical = source.physical
    if physical.catalog and physical.catalog != "memory":
        attach = exp.Attach(
            this=exp.alias_(exp.Literal.string(":memory:"), physical.catalog),
            exists=True,
        )
        connection.execute(attach.sql(dialect="duckdb"))
    if physical.schema:
        schema = exp.Create(
            kind="SCHEMA",
            this=exp.Table(
                db=exp.to_identifier(physical.schema),
                catalog=exp.to_identifier(physical.catalog) if physical.catalog else None,
            ),
            exists=True,
        )
        connection.execute(schema.sql(dialect="duckdb"))
    target = exp.table_(physical.table, db=physical.schema, catalog=physical.catalog, quoted=True)
    if data is None and source.data_path is not None:
        data = read_snapshot(source)
    if data is None:
        columns = [
            exp.ColumnDef(
                this=exp.to_identifier(column.name.lower(), quoted=True),
                kind=exp.DataType.build(DUCKDB_TYPES[column.type], dialect="duckdb"),
            )
            for column in source.port.columns
        ]
        create = exp.Create(kind="TABLE", this=exp.Schema(this=target, expressions=columns))
        connection.execute(create.sql(dialect="duckdb"))
        return 0
    connection.register(_LOAD_VIEW, data)
    try:
        create = exp.Create(
            kind="TABLE",
            this=target,
            expression=_declared_types(source, data.schema).from_(_LOAD_VIEW),
        )
        connection.execute(create.sql(dialect="duckdb"))
    except duckdb.Error as exc:
        raise ManifestError(
            f"cannot load snapshot into DuckDB ({type(exc).__name__})", snapshot_location(source)
        ) from None
    finally:
        connection.unregister(_LOAD_VIEW)
    return int(data.num_rows)
