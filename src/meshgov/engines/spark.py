"""Apache Spark as a query engine: local mode (``local[N]``) or a Spark Connect server (``sc://``).

The gateway submits the secure SQL itself (Spark has no policy plugin), so this adapter locks the
session down and checks what it is given before Spark sees it:

- **Static settings** at session start: restricted mode and an empty reflection allow-list (no
  ``reflect``/``java_method``/``TRANSFORM``), no SQL on file paths, no ``${…}`` variable
  substitution (Spark's would return ``${env:MESHGOV_HASH_KEY}`` inside a string literal), no SQL
  scripting, ANSI on, UTC, driver on loopback, no UI and no event log unless configured.
- **A guard** on the statement Spark will run: no setting stops ``SET``, ``ADD JAR``, DDL,
  ``CACHE``, writes, ``DECLARE``, ``input_file_name()`` or ``_metadata``, and ``spark.sql()`` runs a
  command at call time. So the text is parsed by *Spark's own parser* (local mode) and every node
  of the parsed plan must be a query node of an allow-list; relations must be port tables or CTEs,
  functions must not be file, reflection, error or identity functions, and no column may be the
  ``_metadata`` file column. sqlglot checks the same text first (``prepare_query``). A Spark
  Connect server has no parser on meshgov's side: it must run meshgov's guard extension
  (``engines/spark_guard``, a check rule on every plan of the server), which meshgov checks at
  start (``verify_locked``; ``engines/spark_connect``).
- **Row filters first, guaranteed**: Spark has no security-barrier view, so the engine declares
  ``structural_barrier = False`` and the gateway applies its rule for such engines on the tree it
  generates: expressions that could fail before a row filter are denied.
- **The keyed hash** is a vectorised Python UDF closing over the key: the key is in no SQL text,
  plan, ``DESCRIBE FUNCTION`` output or event log (only the pickled function carries it, to the
  Python workers).
- **Error texts** quote values (``CAST_INVALID_INPUT: The value 'alice@…'``): only the error
  condition reaches the user, and the JVM's loggers are switched off in local mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from meshgov.core.manifest import LogicalType
from meshgov.engines.base import (
    CANCEL_SCOPE,
    DEFAULT_STATEMENT_TIMEOUT_MS,
    PortSource,
    QueryFailed,
    check_available,
    collect_port_sources,
    port_sources,
    prepare_query,
    read_snapshot,
    require_single_query,
    snapshot_location,
    unavailable_port,
    unavailable_ports,
)
from meshgov.engines.spark_connect import connect_session, connect_url, verify_guard
from meshgov.engines.spark_guard import GUARD_CONDITION
from meshgov.errors import (
    BackendUnavailable,
    InputError,
    ManifestError,
    MeshgovError,
    SnapshotUnavailable,
    SqlUnsupportedError,
)

if TYPE_CHECKING:
    from meshgov.catalog import Catalog

HASH_FUNCTION = "meshgov_hash"
DEFAULT_MASTER = "local[2]"

# Settings no configuration may change: they are what keeps analyst SQL inside the data.
LOCKED_CONF: dict[str, str] = {
    "spark.sql.restrictedMode.enabled": "true",  # static: reflect, java_method, TRANSFORM
    "spark.sql.reflect.allowList": "(?!)",  # static: a pattern that matches nothing
    "spark.sql.runSQLOnFiles": "false",
    "spark.sql.variable.substitute": "false",
    "spark.sql.scripting.enabled": "false",
    # A back-quoted name is a name, never a column regex (which could select hidden columns).
    "spark.sql.parser.quotedRegexColumnNames": "false",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
# Defaults an operator may override (e.g. turn the UI on behind a proxy).
DEFAULT_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.eventLog.enabled": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}

# Parsed-plan nodes a read-only query is made of (by simple class name); anything else (every
# command, data source, hint that names a path…) is refused.
_PLAN_NODES = frozenset(
    {
        "Project", "Filter", "Aggregate", "Join", "SubqueryAlias", "Sort", "GlobalLimit",
        "LocalLimit", "Offset", "Union", "Distinct", "Intersect", "Except", "UnresolvedWith",
        "CTERelationDef", "CTERelationRef", "OneRowRelation", "UnresolvedRelation",
        "UnresolvedInlineTable", "LocalRelation", "Generate", "Window", "WithWindowDefinition",
        "UnresolvedSubqueryColumnAliases", "UnresolvedTableValuedFunction", "UnresolvedTVFAliases",
        "UnresolvedHaving", "LateralJoin", "Deduplicate", "Pivot", "Unpivot", "Tail", "Expand",
        "UnresolvedGenerator", "UnresolvedAlias", "UnresolvedAttribute", "UnresolvedStar",
        "UnresolvedFunction", "UnresolvedExtractValue", "UnresolvedOrdinal",
        "UnresolvedRegex", "UnresolvedWindowExpression", "UnresolvedNamedLambdaVariable",
        "UnresolvedOuterReference", "UnresolvedStarExceptOrReplace",
    }
)  # fmt: skip
_PLAN_PACKAGES = (
    "org.apache.spark.sql.catalyst.plans.logical.",
    "org.apache.spark.sql.catalyst.analysis.",
)
_EXPRESSION_PACKAGE = "org.apache.spark.sql.catalyst.expressions."
# Expression classes the parser builds directly that reach outside the row (files, errors).
_DENIED_EXPRESSIONS = frozenset(
    {"InputFileName", "InputFileBlockStart", "InputFileBlockLength", "RaiseError",
     "CallMethodViaReflection", "TryReflect", "CurrentUser", "ScalaUDF", "PythonUDF"}
)  # fmt: skip
# Functions by name: files, reflection, errors on demand, identity, session state.
DENIED_FUNCTIONS = frozenset(
    {
        "input_file_name", "input_file_block_start", "input_file_block_length", "reflect",
        "java_method", "try_reflect", "raise_error", "assert_true", "current_user", "user",
        "session_user", "read_files", "current_catalog", "current_database", "current_schema",
        "sql_keywords", "collations", "version", "try_aes_decrypt", "aes_decrypt", "aes_encrypt",
        # IDENTIFIER('db.t') names a table or column in a string: Spark's parser turns it into a
        # relation sqlglot never saw (it reads a function), past the gateway's rewrite.
        "identifier",
    }
)  # fmt: skip
# Table-valued functions that only generate rows.
_SAFE_TVFS = frozenset({"range", "explode", "explode_outer", "posexplode", "inline", "stack"})
_METADATA_COLUMN = "_metadata"
# Characters that make a back-quoted name a regex when quotedRegexColumnNames is on (locked off;
# the guard refuses such names anyway).
_REGEX_CHARACTERS = frozenset("()[]{}?*+|^$\\")

# Spark error conditions → the class the user is told (the message itself is withheld).
_CONDITION_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("CAST_INVALID_INPUT", "CAST_OVERFLOW", "CANNOT_PARSE", "INVALID_FORMAT"), "conversion"),
    (("DIVIDE_BY_ZERO", "INTERVAL_DIVIDED_BY_ZERO"), "division by zero"),
    (("ARITHMETIC_OVERFLOW", "NUMERIC_VALUE_OUT_OF_RANGE", "OUT_OF_BOUNDS"), "value out of range"),
    (
        ("UNRESOLVED_COLUMN", "TABLE_OR_VIEW_NOT_FOUND", "UNRESOLVED_ROUTINE", "AMBIGUOUS"),
        "unknown name",
    ),
    (("DATATYPE_MISMATCH", "INVALID_", "WRONG_NUM_ARGS", "GROUP_BY", "MISSING_"), "type error"),
    (("PARSE_SYNTAX_ERROR", "PARSE_"), "syntax error"),
    (("OPERATION_CANCELED", "CANCELLED", "SPARK_JOB_CANCELLED"), "timeout"),
)  # fmt: skip


def engine_is_spark(url: str) -> bool:
    """``spark``, ``spark://host:7077``, ``local[N]``, ``local``, ``sc://host:port``."""
    return url == "spark" or url == "local" or url.startswith(("spark://", "local[", "sc://"))


def keyed_hash_udf(key: bytes) -> Callable[[pa.Array], pa.Array]:
    """``meshgov_hash`` for Spark's Arrow UDFs: hex SHA-256 of key || UTF-8 value (as DuckDB's and
    PostgreSQL's). The hasher is built on the worker: a ``hashlib`` object does not pickle."""

    def meshgov_hash(values: pa.Array) -> pa.Array:
        keyed = hashlib.sha256(key)
        out: list[str | None] = []
        for value in values.to_pylist():
            if value is None:
                out.append(None)
                continue
            digest = keyed.copy()
            digest.update(str(value).encode("utf-8"))
            out.append(digest.hexdigest())
        return pa.array(out, type=pa.string())

    return meshgov_hash


def start_session(url: str, conf: dict[str, str] | None = None) -> Any:
    """A Spark session for ``url`` with the locked settings (Connect: the server must have the
    static ones and meshgov's guard extension; see docs/deploy.md)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise BackendUnavailable(
            "the spark engine needs pyspark: pip install 'meshgov[spark]'"
        ) from None
    connect = url.startswith("sc://")
    builder: Any = SparkSession.builder
    if connect:
        builder = builder.remote(connect_url(url))
        settings = dict(conf or {})
    else:
        master = DEFAULT_MASTER if url in {"spark", "local"} else url
        builder = builder.master(master).appName("meshgov")
        settings = {**DEFAULT_CONF, **(conf or {})}
    settings.update(LOCKED_CONF)
    if connect:
        # Static settings belong to the server; a Connect client may set only runtime ones.
        settings = {k: v for k, v in settings.items() if k not in _STATIC_SETTINGS}
    if connect:
        return connect_session(builder, settings)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise BackendUnavailable(f"cannot start Spark ({type(exc).__name__})") from None
    # Spark logs failing queries with their values (SQLQueryContextLogger, task failures).
    session.sparkContext.setLogLevel("OFF")
    return session


_STATIC_SETTINGS = frozenset({"spark.sql.restrictedMode.enabled", "spark.sql.reflect.allowList"})


class SparkEngine:
    """Runs generated SQL on one Spark session (thread-safe; each query is tagged so that a
    timeout or ``close`` interrupts its jobs)."""

    name = "spark"
    dialect = "spark"
    # Spark has no security-barrier view: the gateway applies its rule for engines without one.
    structural_barrier = False

    def __init__(
        self,
        session: Any,
        physical: set[tuple[str, ...]],
        *,
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        unavailable: dict[tuple[str, ...], SnapshotUnavailable] | None = None,
        owns_session: bool = True,
        warehouse: str | None = None,
    ) -> None:
        self._session = session
        self._physical = frozenset(physical)
        self._unavailable = dict(unavailable or {})
        self._timeout_s = timeout_ms / 1000
        self._owns_session = owns_session
        self._warehouse = warehouse
        self._closed = False
        self._lock = threading.Lock()
        self._connect = not hasattr(session, "_jsparkSession")

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        hash_key: bytes,
        *,
        url: str = "spark",
        session: Any = None,
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        isolate_failures: bool = False,
        load: bool | None = None,
        conf: dict[str, str] | None = None,
        on_loaded: Callable[[PortSource, int], None] | None = None,
    ) -> SparkEngine:
        """Start (or reuse) a session, install the hash, and register the snapshots as tables.

        Local mode loads the snapshots on start (like DuckDB); a Connect server is expected to
        hold them already (``meshgov load --engine sc://…``), unless ``load`` says otherwise.
        """
        if isolate_failures:
            sources, rejected = collect_port_sources(catalog)
            unavailable: dict[tuple[str, ...], SnapshotUnavailable] | None = unavailable_ports(
                sources, rejected
            )
            sources = [s for s in sources if s.physical.parts not in (unavailable or {})]
        else:
            sources, unavailable = port_sources(catalog), None
        owns = session is None
        warehouse: str | None = None
        if session is None:
            if not url.startswith("sc://"):
                warehouse = tempfile.mkdtemp(prefix="meshgov-spark-")
                conf = {"spark.sql.warehouse.dir": warehouse, **(conf or {})}
            session = start_session(url, conf)
        verify_locked(session)
        install_hash(session, hash_key)
        should_load = load if load is not None else not url.startswith("sc://")
        staging: Path | None = None
        if should_load and _reads_local_files(session):
            staging = Path(warehouse or tempfile.mkdtemp(prefix="meshgov-spark-")) / "snapshots"
            warehouse = str(staging.parent)
        physical: set[tuple[str, ...]] = set()
        for source in sources:
            if should_load:
                try:
                    rows = load_port(session, source, staging)
                except MeshgovError as exc:
                    if unavailable is None:
                        raise
                    unavailable[source.physical.parts] = unavailable_port(
                        source.manifest.id, source.port.name, source.port.data, exc
                    )
                    continue
                if on_loaded is not None:
                    on_loaded(source, rows)
            physical.add(spark_parts(source))
        return cls(
            session,
            physical,
            timeout_ms=timeout_ms,
            unavailable=unavailable,
            owns_session=owns,
            warehouse=warehouse,
        )

    @property
    def physical_tables(self) -> set[tuple[str, ...]]:
        return set(self._physical)

    @property
    def session(self) -> Any:
        return self._session

    def prepare(self, sql: str) -> str:
        """The text Spark will run, after every check (sqlglot's, the barrier rule, Spark's
        parser)."""
        check_available(sql, self.dialect, self._unavailable)
        # No barrier views (Spark has none): ``structural_barrier`` is False, so the gateway has
        # already denied every expression that could fail before a row filter.
        prepared = prepare_query(sql, self.dialect, self._physical, False)
        if not self._connect:
            self.guard(prepared.sql)
        else:
            _audit_spark_functions(require_single_query(prepared.sql, self.dialect))
        return prepared.sql

    def execute(self, sql: str) -> pa.Table:
        """Check ``sql``, run it under a tag (interrupted at the timeout) → Arrow."""
        text = self.prepare(sql)
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the Spark engine is closed")
        return self._run(text)

    def execute_unprotected(self, sql: str) -> pa.Table:
        """Run SQL as given, without checks (benchmarks and tests only)."""
        return self._run(sql)

    def _run(self, text: str) -> pa.Table:
        tag = f"meshgov-{uuid.uuid4().hex}"
        timed_out, done = threading.Event(), threading.Event()

        def stop() -> None:
            # A query may start its jobs one after another (a broadcast, then the collect), and a
            # job that had not started at the first cancel would run: cancel until it ends.
            while not done.is_set():
                self._interrupt(tag)
                done.wait(0.2)

        def on_timeout() -> None:
            timed_out.set()
            stop()

        timer = threading.Timer(self._timeout_s, on_timeout)
        timer.daemon = True
        scope = CANCEL_SCOPE.get()
        with self._tagged(tag):
            timer.start()
            try:
                if scope is not None:  # a client's cancel or a session timeout interrupts the tag
                    scope.bind(lambda: threading.Thread(target=stop, daemon=True).start())
                table: pa.Table = self._session.sql(text).toArrow()
                return table
            except MeshgovError:
                raise
            except Exception as exc:
                if scope is not None and scope.cancelled:
                    raise QueryFailed(scope.reason, kind="cancelled") from None
                if timed_out.is_set():
                    raise QueryFailed(
                        f"the query was cancelled after the statement timeout "
                        f"({self._timeout_s:g} s)",
                        kind="timeout",
                    ) from None
                raise spark_error(exc) from None
            finally:
                done.set()
                if scope is not None:
                    scope.unbind()
                timer.cancel()

    @contextlib.contextmanager
    def _tagged(self, tag: str) -> Iterator[None]:
        """Tag the jobs this query starts. A classic session's job tags are properties of the
        JVM thread that submits them (py4j pins one JVM thread to each Python thread), so the tag
        is set here, on the thread that runs the query, and removed after it; Spark Connect tags
        the operation on the server."""
        if self._connect:
            self._session.addTag(tag)
        else:
            context = self._session.sparkContext
            context.setInterruptOnCancel(True)
            context.addJobTag(tag)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                if self._connect:
                    self._session.removeTag(tag)
                else:
                    self._session.sparkContext.removeJobTag(tag)

    def _interrupt(self, tag: str) -> None:
        """Cancel every job carrying the tag (from any thread: a timer, a client's cancel)."""
        with contextlib.suppress(Exception):
            if self._connect:
                self._session.interruptTag(tag)
            else:
                self._session.sparkContext.cancelJobsWithTag(tag)

    def guard(self, text: str) -> None:
        """Spark's parser on the exact text: only query nodes, port tables or CTEs, no file
        columns or functions (what ``spark.sql`` would otherwise run as a command at call time),
        and exactly the tables sqlglot read in the same text (``IDENTIFIER('db.t')`` is a table
        to Spark's parser and a function to sqlglot: any such disagreement is refused)."""
        statement = require_single_query(text, self.dialect)
        _audit_spark_functions(statement)
        try:
            plan = self._session._jsparkSession.sessionState().sqlParser().parsePlan(text)
            document = json.loads(plan.toJSON())
        except Exception as exc:
            raise spark_error(exc) from None
        ctes: set[str] = set()
        _collect_cte_names(document, ctes)
        relations = _check_plan_nodes(document, self._physical, ctes)
        refused = SqlUnsupportedError(
            "the spark engine runs only read-only queries on product tables"
        )
        if relations != _sqlglot_relations(statement):
            raise refused
        # Spark's JSON writes a relation's options (``t WITH (path '/etc')``) as null: ask the
        # plan objects themselves, and check the walk saw every relation the JSON has.
        try:
            walked = _walk_relations(plan)
        except Exception:
            raise refused from None
        if Counter(parts for parts, _ in walked) != relations or any(o for _, o in walked):
            raise refused

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_session:
            with contextlib.suppress(Exception):
                self._session.interruptAll()
            with contextlib.suppress(Exception):
                self._session.stop()
        if self._warehouse:
            shutil.rmtree(self._warehouse, ignore_errors=True)


def _reads_local_files(session: Any) -> bool:
    """A classic session in local mode: its executors are this process's JVM."""
    try:
        return str(session.sparkContext.master).startswith("local")
    except Exception:  # Spark Connect has no SparkContext
        return False


def spark_parts(source: PortSource) -> tuple[str, ...]:
    """Spark's name of a port's table: ``database.table`` (a catalogue name is dropped; the
    session catalogue holds every port)."""
    physical = source.physical
    return (physical.schema or "default", physical.table)


def verify_locked(session: Any) -> None:
    """Fail closed when the session does not have every locked setting (a Connect server started
    without the static ones, or a session some other code created), or when a Connect server
    does not run meshgov's guard extension (its parsed-plan guard cannot run over Connect)."""
    for key, expected in LOCKED_CONF.items():
        try:
            actual = str(session.conf.get(key, None)).lower()
        except Exception:
            actual = ""
        if actual != expected.lower():
            raise BackendUnavailable(
                f"the Spark session is not locked down: {key} must be {expected} "
                "(a Connect server must be started with it; see docs/deploy.md)"
            )
    if not hasattr(session, "_jsparkSession"):
        verify_guard(session)


def install_hash(session: Any, hash_key: bytes) -> None:
    """Register ``meshgov_hash`` in the session (a session function: gone with the session)."""
    from pyspark.sql import functions

    arrow_udf: Any = getattr(functions, "arrow_udf")  # noqa: B009 (absent from pyspark's stubs)
    from pyspark.sql.types import StringType

    # A type object, not "string": parsing a type name asks the process's active session.
    session.udf.register(HASH_FUNCTION, arrow_udf(keyed_hash_udf(hash_key), StringType()))


def load_port(session: Any, source: PortSource, staging: Path | None = None) -> int:
    """Register a port's snapshot (declared columns only) as a table of the session catalogue.

    With ``staging`` (local mode: the JVM reads this machine's files) pyarrow writes the columns
    as Parquet there and Spark registers a table on it (no copy through the JVM's memory);
    otherwise (a cluster, Spark Connect) the rows are sent with the DataFrame API.
    """
    from sqlglot import exp

    if source.data_problem is not None:
        raise source.data_problem
    database, table = spark_parts(source)
    data = read_snapshot(source) if source.data_path is not None else None
    if data is None:
        data = pa.table(
            {
                c.name.lower(): pa.array([], type=_ARROW_TYPES.get(c.type, pa.string()))
                for c in source.port.columns
            }
        )
    name = exp.table_(table, db=database, quoted=True).sql(dialect="spark")
    try:
        session.catalog.setCurrentDatabase("default")
        # IF NOT EXISTS, no catalogue query: a guarded server accepts only this shape.
        create = exp.Create(kind="SCHEMA", this=exp.to_identifier(database), exists=True)
        session.sql(create.sql(dialect="spark"))
        target = exp.table_(table, db=database, quoted=True)
        drop = exp.Drop(kind="TABLE", tables=[target], exists=True)
        session.sql(drop.sql(dialect="spark"))
        if staging is not None:
            import pyarrow.parquet as pq

            directory = staging / database / table
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            pq.write_table(data, directory / "part-0.parquet")
            session.catalog.createTable(name, path=str(directory), source="parquet")
        else:
            frame = session.createDataFrame(data)
            frame.write.mode("overwrite").format("parquet").saveAsTable(name)
    except Exception as exc:
        raise ManifestError(
            f"cannot load snapshot into Spark ({type(exc).__name__})", snapshot_location(source)
        ) from None
    return int(data.num_rows)


_ARROW_TYPES: dict[LogicalType, pa.DataType] = {
    LogicalType.string: pa.string(),
    LogicalType.integer: pa.int64(),
    LogicalType.number: pa.float64(),
    LogicalType.decimal: pa.decimal128(38, 9),
    LogicalType.boolean: pa.bool_(),
    LogicalType.date: pa.date32(),
    LogicalType.timestamp: pa.timestamp("us"),
    LogicalType.binary: pa.binary(),
}


def _audit_spark_functions(statement: Any) -> None:
    """Spark's own file, reflection and error functions (the shared list knows DuckDB's and
    PostgreSQL's), by name, and the ``_metadata`` file column, in sqlglot's tree."""
    from sqlglot import exp

    for function in statement.find_all(exp.Func):
        name = (
            str(function.name).lower()
            if isinstance(function, exp.Anonymous)
            else function.sql_name().lower()
        )
        if name in DENIED_FUNCTIONS:
            raise SqlUnsupportedError(f"the spark engine does not run function {name}()")
    for column in statement.find_all(exp.Column):
        if any(part.name.lower() == _METADATA_COLUMN for part in column.parts):
            raise SqlUnsupportedError("the spark engine does not expose the _metadata column")


def _simple(class_name: str) -> str:
    return class_name.rsplit(".", 1)[-1]


def _names(value: Any) -> list[str]:
    """``"[a, b]"`` (how Spark's JSON writes a name list) → ``["a", "b"]``, lower-cased."""
    text = str(value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part.strip().strip("`").lower() for part in text.split(",") if part.strip()]


def _nodes(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, dict):
        if "class" in document:
            yield document
        for value in document.values():
            yield from _nodes(value)
    elif isinstance(document, list):
        for item in document:
            yield from _nodes(item)


def _collect_cte_names(document: Any, into: set[str]) -> None:
    for node in _nodes(document):
        if _simple(str(node["class"])) == "SubqueryAlias":
            identifier = node.get("identifier")
            if isinstance(identifier, dict) and identifier.get("name"):
                into.add(str(identifier["name"]).lower())


def _sqlglot_relations(statement: Any) -> Counter[tuple[str, ...]]:
    """The tables (and CTE references) sqlglot reads in the statement, by lower-cased name."""
    from sqlglot import exp

    return Counter(
        tuple(part.name.lower() for part in table.parts)
        for table in statement.find_all(exp.Table)
        if not isinstance(table.this, exp.Func)
    )


def _walk_relations(plan: Any) -> list[tuple[tuple[str, ...], bool]]:
    """Every ``UnresolvedRelation`` of a parsed plan (children, CTE definitions, subquery
    expressions), as (name, has options), read from the JVM objects (Spark's JSON writes
    options as null)."""
    found: list[tuple[tuple[str, ...], bool]] = []
    pending = [plan]
    while pending:
        node = pending.pop()
        if _simple(str(node.getClass().getName())) == "UnresolvedRelation":
            identifier = node.multipartIdentifier()
            parts = tuple(str(identifier.apply(i)).lower() for i in range(identifier.size()))
            found.append((parts, not node.options().isEmpty()))
        # innerChildren: a plan's subquery expressions (QueryPlan's default), a WITH's CTE
        # definitions. A relation the walk missed makes its count differ from the JSON's.
        for method in ("children", "innerChildren"):
            sequence = getattr(node, method)()
            pending.extend(sequence.apply(i) for i in range(sequence.size()))
    return found


def _check_plan_nodes(
    document: Any, physical: frozenset[tuple[str, ...]], ctes: set[str]
) -> Counter[tuple[str, ...]]:
    """Refuse any node outside the allow-list; the relations the plan reads, by name."""
    refused = SqlUnsupportedError("the spark engine runs only read-only queries on product tables")
    relations: Counter[tuple[str, ...]] = Counter()
    for node in _nodes(document):
        full = str(node["class"])
        simple = _simple(full)
        if full.startswith(_EXPRESSION_PACKAGE):
            if simple in _DENIED_EXPRESSIONS:
                raise refused
            continue
        if not full.startswith(_PLAN_PACKAGES) or simple not in _PLAN_NODES:
            raise refused
        if simple == "UnresolvedRelation":
            parts = tuple(_names(node.get("multipartIdentifier")))
            relations[parts] += 1
            if node.get("options") not in (None, "null", {}) and node.get("options"):
                raise refused
            if not (len(parts) == 1 and parts[0] in ctes) and not any(
                parts == known[-len(parts) :] for known in physical
            ):
                raise refused
        elif simple == "UnresolvedTableValuedFunction":
            if not set(_names(node.get("name"))) <= _SAFE_TVFS:
                raise refused
        elif simple == "UnresolvedFunction":
            names = _names(node.get("nameParts"))
            if not names or names[-1] in DENIED_FUNCTIONS or len(names) > 1:
                raise refused
        elif simple in {"UnresolvedAttribute", "UnresolvedExtractValue", "UnresolvedRegex"}:
            names = _names(node.get("nameParts"))
            if _METADATA_COLUMN in names:
                raise refused
            if simple == "UnresolvedRegex" or any(_REGEX_CHARACTERS & set(n) for n in names):
                raise refused  # a column regex can select the hidden _metadata column
    return relations


def spark_error(exc: BaseException) -> MeshgovError:
    """Only the error condition of a Spark failure; its message (which quotes values) is dropped."""
    if isinstance(exc, MeshgovError):
        return exc
    condition = ""
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    if callable(getter):
        with contextlib.suppress(Exception):
            condition = str(getter() or "")
    name = type(exc).__name__
    if condition == GUARD_CONDITION:
        # The server's guard extension refused the plan (it names the construct, not values).
        return SqlUnsupportedError(
            "the spark engine runs only read-only queries on product tables (refused by the "
            "server's guard)"
        )
    marker = f"{condition} {name}"
    kind = next(
        (label for words, label in _CONDITION_KINDS if any(w in marker for w in words)), None
    )
    if kind is None:
        if "Arithmetic" in name:
            kind = "value out of range"
        elif "NumberFormat" in name or "DateTime" in name:
            kind = "conversion"
        elif "Parse" in name:
            kind = "syntax error"
        elif name in {"Py4JNetworkError", "SparkConnectGrpcException", "ConnectionRefusedError"}:
            return BackendUnavailable(f"spark engine is unavailable ({name})")
        else:
            kind = "error"
    return QueryFailed(
        f"the query failed in the spark engine ({kind}); engine messages are withheld "
        "because they can contain data values",
        kind,
    )


def load(
    catalog: Catalog,
    url: str,
    hash_key: bytes,
    *,
    on_loaded: Callable[[PortSource, int], None] | None = None,
) -> list[PortSource]:
    """``meshgov load --engine sc://…|spark://…``: write every port's snapshot as a table of the
    server's session catalogue (where a Connect server's queries read them)."""
    if not engine_is_spark(url):
        raise InputError(f"not a spark engine: {url!r}")
    session = start_session(url)
    try:
        verify_locked(session)  # a Connect server without the guard is refused before loading
        install_hash(session, hash_key)
        sources = port_sources(catalog)
        for source in sources:
            rows = load_port(session, source)
            if on_loaded is not None:
                on_loaded(source, rows)
        return sources
    finally:
        if not url.startswith("sc://"):
            with contextlib.suppress(Exception):
                session.stop()
