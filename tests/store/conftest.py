"""Both stores run the same tests; PostgreSQL skips with a reason when the server is absent."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshgov.store.base import Store, open_store

PG_DSN = os.environ.get("MESHGOV_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_dsn_or_skip() -> str:
    """The DSN of a reachable server, or skip (fail when MESHGOV_REQUIRE_POSTGRES=1)."""
    import psycopg

    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        message = f"PostgreSQL not reachable at MESHGOV_PG_DSN ({type(exc).__name__})"
        if os.environ.get("MESHGOV_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return PG_DSN


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
    dsn = postgres_dsn_or_skip()
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
