"""Fixtures: the service with the PostgreSQL listener on DuckDB and on PostgreSQL.

The governed catalogue databases are created on the test PostgreSQL server under a prefix unique
to this run, and dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from wire_server import MESH, WireServer, serve

from meshgov.config import Settings


@pytest.fixture(scope="session")
def catalogue_prefix(pg_admin_dsn: str) -> Iterator[str]:
    prefix = f"mgw{uuid.uuid4().hex[:8]}_"
    yield prefix
    from meshgov.pgwire.catalogue import CatalogueDatabases

    CatalogueDatabases(pg_admin_dsn, prefix).drop_all()


@pytest.fixture(scope="session")
def wire(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str, catalogue_prefix: str
) -> Iterator[WireServer]:
    """The service on DuckDB (the default engine) with the wire protocol."""
    yield from serve(tmp_path_factory.mktemp("wire"), pg_admin_dsn, catalogue_prefix)


@pytest.fixture(scope="session")
def wire_pg(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str, catalogue_prefix: str
) -> Iterator[WireServer]:
    """The service on the PostgreSQL engine (the example mesh loaded into its own database)."""
    from meshgov.catalog import load_catalog
    from meshgov.engines import postgres

    name = f"meshgov_wire_{uuid.uuid4().hex[:10]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    try:
        postgres.load(load_catalog(MESH), dsn, Settings().hash_key())
        yield from serve(
            tmp_path_factory.mktemp("wire_pg"),
            pg_admin_dsn,
            catalogue_prefix,
            query_engine=dsn,
        )
    finally:
        postgres.drop_database(pg_admin_dsn, name)


@pytest.fixture(params=["duckdb", "postgresql"])
def any_wire(request: pytest.FixtureRequest) -> WireServer:
    server: WireServer = request.getfixturevalue("wire" if request.param == "duckdb" else "wire_pg")
    return server
