"""Both stores run the same tests; PostgreSQL skips with a reason when the server is absent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshgov.store.base import Store, open_store


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of a fresh, empty store of each kind; dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'meshgov.db'}", None
        return
    dsn = request.getfixturevalue("pg_admin_dsn")
    schema = f"meshgov_test_{uuid.uuid4().hex[:12]}"
    try:
        yield dsn, schema
    finally:
        drop_schema(dsn, schema)


@pytest.fixture
def store(store_url: tuple[str, str | None]) -> Iterator[Store]:
    url, schema = store_url
    opened = open_store(url, schema=schema)
    try:
        yield opened
    finally:
        opened.close()
