"""The adversarial suite's fixtures: the example mesh behind the gateway, on DuckDB, PostgreSQL
and Spark.

PostgreSQL gets a database of its own per test run (loaded with the example snapshots, dropped
afterwards); without a server those cases skip, unless MESHGOV_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from adversarial_world import HASH_KEY, MESH, ROOT, Secrets, read_secrets

from meshgov.catalog import Catalog, load_catalog
from meshgov.engines.base import QueryEngine
from meshgov.errors import AccessDenied


@pytest.fixture(scope="session")
def secrets() -> Secrets:
    return read_secrets()


@pytest.fixture(scope="session")
def mesh_catalog() -> Catalog:
    return load_catalog(MESH)


@pytest.fixture(scope="session")
def gateway(mesh_catalog: Catalog) -> object:
    from meshgov.gateway import Gateway
    from meshgov.policy_backends import load_bundle_dir

    return Gateway(mesh_catalog, load_bundle_dir(ROOT / "policies"))


@pytest.fixture(scope="session")
def duckdb_engine(mesh_catalog: Catalog) -> Iterator[QueryEngine]:
    from meshgov.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine.from_catalog(mesh_catalog, HASH_KEY)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def postgres_engine(pg_admin_dsn: str, mesh_catalog: Catalog) -> Iterator[QueryEngine]:
    """The example mesh in a uniquely named database of this run, dropped afterwards."""
    from meshgov.engines import postgres

    name = f"meshgov_adversarial_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    engine: QueryEngine | None = None
    try:
        postgres.load(mesh_catalog, dsn, HASH_KEY)
        engine = postgres.PostgresEngine(dsn, mesh_catalog)
        yield engine
    finally:
        if engine is not None:
            engine.close()
        postgres.drop_database(pg_admin_dsn, name)


@pytest.fixture(scope="session")
def spark_engine(spark_session: Any, mesh_catalog: Catalog) -> Iterator[QueryEngine]:
    """The example mesh in the run's one Spark session (the session outlives the engine)."""
    from meshgov.engines.spark import SparkEngine

    engine = SparkEngine.from_catalog(mesh_catalog, HASH_KEY, session=spark_session)
    yield engine
    engine.close()


ENGINE_FIXTURES = {
    "duckdb": "duckdb_engine",
    "postgresql": "postgres_engine",
    "spark": "spark_engine",
}


@pytest.fixture(params=["duckdb", "postgresql", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request: pytest.FixtureRequest) -> QueryEngine:
    result: QueryEngine = request.getfixturevalue(ENGINE_FIXTURES[request.param])
    return result


# The "physically reduced" world: every product table holds only what the EU analyst may see
# (its rows past the row filter, masked, hidden columns left out), read through the gateway's
# own `SELECT *`. A query run there cannot leak; run through the gateway on the real data it must
# give the same answer, and may fail only if it fails there too (an error that happens only on the
# real data came from a row the analyst may not see).
@pytest.fixture(scope="session")
def reduced_tables(gateway: Any, duckdb_engine: QueryEngine) -> dict[str, pa.Table]:
    from adversarial_world import principal

    from meshgov.core.sql.model import ports_of
    from meshgov.execution import execute_query

    analyst = principal("analyst-eu")
    tables: dict[str, pa.Table] = {}
    for port in ports_of(gateway.catalog.manifests):
        name = port.table_name
        try:
            result = execute_query(
                gateway, duckdb_engine, f"SELECT * FROM {name}", analyst, "analytics"
            )
        except AccessDenied:
            continue  # no grant: not part of the analyst's world
        table = result.table
        if "region" in table.column_names:
            assert set(table.column("region").to_pylist()) <= {"EU"}
        tables[name] = table
    assert "customer.customers" in tables and "payments.payments" in tables
    return tables


@pytest.fixture
def reduced(engine: QueryEngine, request: pytest.FixtureRequest) -> Any:
    """The reduced world on the engine's kind: a DuckDB connection, a PostgreSQL DSN, or the
    Spark session holding the reduced tables."""
    fixture = {"duckdb": "reduced_duckdb", "spark": "reduced_spark"}.get(
        engine.name, "reduced_postgres"
    )
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def reduced_duckdb(reduced_tables: dict[str, pa.Table]) -> Iterator[Any]:
    import duckdb
    from sqlglot import exp

    connection = duckdb.connect(":memory:")
    for name, table in reduced_tables.items():
        schema, table_name = name.split(".")
        create_schema = exp.Create(
            kind="SCHEMA", this=exp.Table(db=exp.to_identifier(schema, quoted=True)), exists=True
        )
        connection.execute(create_schema.sql(dialect="duckdb"))
        connection.register("reduced_source", table)
        create = exp.Create(
            kind="TABLE",
            this=exp.table_(table_name, db=schema, quoted=True),
            expression=exp.select("*").from_("reduced_source"),
        )
        connection.execute(create.sql(dialect="duckdb"))
        connection.unregister("reduced_source")
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def reduced_postgres(
    pg_admin_dsn: str, reduced_tables: dict[str, pa.Table], mesh_catalog: Catalog
) -> Iterator[str]:
    """A database of this run holding the reduced tables with the engine's column types."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    from meshgov.core.manifest import LogicalType
    from meshgov.engines import postgres
    from meshgov.engines.base import port_sources

    types = {
        ".".join(s.physical.parts): {c.name.lower(): c.type for c in s.port.columns}
        for s in port_sources(mesh_catalog)
    }
    name = f"meshgov_reduced_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    try:
        with psycopg.connect(dsn) as conn:
            for table_name, table in reduced_tables.items():
                schema, bare = table_name.split(".")
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                columns = table.column_names
                logical = [types[table_name][c] for c in columns]
                conn.execute(
                    sql.SQL("CREATE TABLE {} ({})").format(
                        sql.Identifier(schema, bare),
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(
                                sql.Identifier(c), sql.SQL(postgres.POSTGRES_TYPES[t])
                            )
                            for c, t in zip(columns, logical, strict=True)
                        ),
                    )
                )
                nested = {LogicalType.array, LogicalType.struct}
                copy_sql = sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(schema, bare))
                with conn.cursor().copy(copy_sql) as copy:
                    for row in table.to_pylist():
                        copy.write_row(
                            [
                                Jsonb(v) if t in nested and v is not None else v
                                for v, t in zip(row.values(), logical, strict=True)
                            ]
                        )
            conn.commit()
        yield dsn
    finally:
        postgres.drop_database(pg_admin_dsn, name)


@pytest.fixture(scope="session")
def reduced_spark(
    spark_session: Any, reduced_tables: dict[str, pa.Table]
) -> Iterator[tuple[Any, dict[str, str]]]:
    """The reduced tables as temporary views of the run's Spark session (uniquely named; the
    barrier tests read them instead of the product tables): the session and name → view."""
    prefix = f"meshgov_reduced_{uuid.uuid4().hex[:8]}"
    views = {name: f"{prefix}_{name.replace('.', '_')}" for name in reduced_tables}
    for name, table in reduced_tables.items():
        spark_session.createDataFrame(table).createOrReplaceTempView(views[name])
    yield spark_session, views
    for view in views.values():
        spark_session.catalog.dropTempView(view)
