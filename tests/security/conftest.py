"""The adversarial suite's fixtures: the example mesh behind the gateway, on DuckDB, PostgreSQL
and Spark.

PostgreSQL gets a database of its own per test run (loaded with the example snapshots, dropped
afterwards); without a server those cases skip, unless MESHGOV_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from adversarial_world import HASH_KEY, MESH, ROOT, Secrets, read_secrets

from meshgov.catalog import Catalog, load_catalog
from meshgov.engines.base import QueryEngine


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
