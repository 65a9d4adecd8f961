"""Engine fixtures: the small engine mesh, on DuckDB and in a per-run PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshgov.catalog import Catalog, load_catalog

FIXTURE_MESH = Path(__file__).resolve().parents[1] / "fixtures" / "engines" / "mesh"
HASH_KEY = b"engine-test-key-\x00\xff"


@pytest.fixture(scope="session")
def engine_catalog() -> Catalog:
    return load_catalog(FIXTURE_MESH)


@pytest.fixture(scope="session")
def engine_pg_dsn(pg_admin_dsn: str, engine_catalog: Catalog) -> Iterator[str]:
    """The engine mesh loaded into a database of its own, dropped after the run."""
    from meshgov.engines import postgres

    name = f"meshgov_engines_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    try:
        postgres.load(engine_catalog, dsn, HASH_KEY)
        yield dsn
    finally:
        postgres.drop_database(pg_admin_dsn, name)
