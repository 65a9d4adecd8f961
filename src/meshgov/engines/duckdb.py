"""The embedded engine: an in-memory DuckDB holding each table port's snapshot, locked down.

Snapshots are read with pyarrow (DuckDB itself never touches the file system) and copied into
tables named after each port's physical ``table:``. Then the mask function is installed as a Python
closure (the key lives in Python memory only: ``duckdb_functions()`` shows no body, and no SQL can
read it) and the configuration is locked: no external access, no extension install or autoload.
Each query runs in its own cursor, with each secure subquery behind a temporary ``SECURE VIEW``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import pyarrow as pa
import sqlglot
from duckdb.func import PythonUDFType
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from meshgov.core.manifest import LogicalType
from meshgov.engines.base import (
    DEFAULT_STATEMENT_TIMEOUT_MS,
    PortSource,
    generic_engine_error,
    isolate_secure_subqueries,
    port_sources,
    read_snapshot,
    require_single_query,
    snapshot_location,
)
from meshgov.errors import BackendUnavailable, ManifestError

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


class _BarrierDuckDB(DuckDB):
    """DuckDB as sqlglot knows it, plus ``CREATE SECURE VIEW`` (DuckDB's optimiser barrier)."""

    class Generator(DuckDB.Generator):  # type: ignore[misc,valid-type]
        PROPERTIES_LOCATION: ClassVar[dict[type[exp.Expression], Any]] = {
            **DuckDB.Generator.PROPERTIES_LOCATION,
            exp.SecureProperty: exp.Properties.Location.POST_CREATE,
        }


def keyed_hash(key: bytes) -> Callable[[pa.Array], pa.Array]:
    """The vectorised ``meshgov_hash``: hex SHA-256 of key || UTF-8 value; NULL stays NULL."""
    keyed = hashlib.sha256(key)

    def meshgov_hash(values: pa.Array) -> pa.Array:
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


class DuckDBEngine:
    """An embedded DuckDB with the catalogue's snapshots; safe to share between threads."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        physical: set[tuple[str, ...]],
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        barriers: bool = True,
    ) -> None:
        self._connection = connection
        self._physical = physical
        self._timeout_s = timeout_ms / 1000
        self._barriers = barriers
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        hash_key: bytes,
        *,
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        barriers: bool = True,
        on_loaded: Callable[[PortSource, int], None] | None = None,
    ) -> DuckDBEngine:
        """Load every table port, install the mask function, then lock the configuration."""
        return cls.from_sources(
            port_sources(catalog),
            hash_key,
            timeout_ms=timeout_ms,
            barriers=barriers,
            on_loaded=on_loaded,
        )

    @classmethod
    def from_sources(
        cls,
        sources: list[PortSource],
        hash_key: bytes,
        *,
        timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        barriers: bool = True,
        on_loaded: Callable[[PortSource, int], None] | None = None,
        tables: dict[tuple[str, ...], pa.Table] | None = None,
    ) -> DuckDBEngine:
        """Like ``from_catalog``; ``tables`` supplies in-memory data by physical parts (bench)."""
        try:
            connection = duckdb.connect(":memory:", config=dict(_LOCKED_CONFIG))
        except duckdb.Error as exc:
            raise BackendUnavailable(f"cannot start DuckDB ({type(exc).__name__})") from None
        physical: set[tuple[str, ...]] = set()
        try:
            for source in sources:
                data = (tables or {}).get(source.physical.parts)
                rows = _load_port(connection, source, data)
                physical.add(source.physical.parts)
                if on_loaded is not None:
                    on_loaded(source, rows)
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
            raise BackendUnavailable(f"cannot load DuckDB ({type(exc).__name__})") from None
        except BaseException:
            connection.close()
            raise
        return cls(connection, physical, timeout_ms, barriers)

    @property
    def physical_tables(self) -> set[tuple[str, ...]]:
        return set(self._physical)

    def execute(self, sql: str) -> pa.Table:
        """Run one generated query in a fresh cursor (no session state survives) → Arrow."""
        statement = require_single_query(sql, self.dialect)
        views = isolate_secure_subqueries(statement, self._physical) if self._barriers else []
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the DuckDB engine is closed")
            cursor = self._connection.cursor()
        timer = threading.Timer(self._timeout_s, cursor.interrupt)
        timer.start()
        try:
            for name, body in views:
                cursor.execute(_secure_view_sql(name, body))
            return cursor.sql(statement.sql(dialect=self.dialect)).to_arrow_table()
        except duckdb.Error as exc:
            raise generic_engine_error(exc, self.name) from None
        finally:
            timer.cancel()
            cursor.close()

    def execute_unprotected(self, sql: str) -> pa.Table:
        """Run SQL as given, without checks or barriers (benchmarks and tests only)."""
        with self._lock:
            cursor = self._connection.cursor()
        try:
            return cursor.sql(sql).to_arrow_table()
        finally:
            cursor.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()


def _secure_view_sql(name: str, body: exp.Select) -> str:
    create = exp.Create(
        kind="VIEW",
        this=exp.to_table(name),
        expression=body,
        properties=exp.Properties(expressions=[exp.TemporaryProperty(), exp.SecureProperty()]),
    )
    return create.sql(dialect=_BarrierDuckDB, unsupported_level=sqlglot.ErrorLevel.RAISE)


def _load_port(
    connection: duckdb.DuckDBPyConnection, source: PortSource, data: pa.Table | None
) -> int:
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
        create = exp.Create(kind="TABLE", this=target, expression=exp.select("*").from_(_LOAD_VIEW))
        connection.execute(create.sql(dialect="duckdb"))
    except duckdb.Error as exc:
        raise ManifestError(
            f"cannot load snapshot into DuckDB ({type(exc).__name__})", snapshot_location(source)
        ) from None
    finally:
        connection.unregister(_LOAD_VIEW)
    return int(data.num_rows)
