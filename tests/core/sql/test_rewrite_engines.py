"""Every allowed fixture rewrite, generated for PostgreSQL and run there (and on the DuckDB
engine), through the engines' locked-down execution path; rows are checked for leaks.

PostgreSQL tests skip when no server answers, unless MESHGOV_REQUIRE_POSTGRES=1 (then they fail).
Each run loads the fixture mesh into a database of its own and drops it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from rewrite_cases import Case, all_cases, principal_named

from meshgov.gateway import Gateway

HASH_KEY = b"rewrite-engine-test-key"
ALLOWED = [pytest.param(c, id=c.id) for c in all_cases() if c.denied is None]
LEAKS = ("ann@example.com", "bob@example.com", "Bob B", "C2", "+15551234567")

CUSTOMERS = [
    ("C1", "ann@example.com", "+33123456789", "Ann A", "1990-05-17", "123", "LC42", 7, "EU"),
    ("C2", "bob@example.com", "+15551234567", "Bob B", "1985-01-02", "456", "LC43", 9, "US"),
]
ORDERS = [("O1", "C1", 10.5, "2026-01-01", "EU"), ("O2", "C2", 20.0, "2026-01-02", "US")]
PRODUCTS = [("P1", "Lamp", 12.0)]


@pytest.fixture(scope="module")
def postgres_engine(gateway: Gateway, pg_admin_dsn: str) -> Iterator[Any]:
    import psycopg

    from meshgov.engines import postgres

    admin = pg_admin_dsn
    name = f"meshgov_rewrite_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(admin, name)
    engine = None
    try:
        postgres.load(gateway.catalog, dsn, HASH_KEY)
        with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO customer.customers VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                CUSTOMERS,
            )
            cursor.executemany("INSERT INTO commerce.orders VALUES (%s, %s, %s, %s, %s)", ORDERS)
            cursor.executemany("INSERT INTO products VALUES (%s, %s, %s)", PRODUCTS)
        engine = postgres.PostgresEngine(dsn, gateway.catalog)
        yield engine
    finally:
        if engine is not None:
            engine.close()
        postgres.drop_database(admin, name)


@pytest.fixture(scope="module")
def duckdb_engine(gateway: Gateway) -> Iterator[Any]:
    from meshgov.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine.from_catalog(gateway.catalog, HASH_KEY)
    yield engine
    engine.close()


def _check_rows(case: Case, rows: list[dict[str, Any]]) -> None:
    if case.principal in {"analyst-eu", "lead"}:
        text = repr(rows)
        for leaked in LEAKS:
            assert leaked not in text, (leaked, rows)


@pytest.mark.postgres
@pytest.mark.parametrize("case", ALLOWED)
def test_rewrite_runs_on_postgres(gateway: Gateway, postgres_engine: Any, case: Case) -> None:
    if case.dialect not in {"duckdb", "postgres", "trino", "spark"}:
        pytest.skip(f"{case.dialect} SQL is not expected to transpile to PostgreSQL")
    principal = principal_named(case.principal)
    result = gateway.authorize(case.sql, principal, case.purpose, case.dialect, "postgres")
    assert result.allowed, result.reason
    rows = postgres_engine.execute(result.sql).to_pylist()
    _check_rows(case, rows)


@pytest.mark.parametrize("case", ALLOWED)
def test_rewrite_runs_on_the_duckdb_engine(
    gateway: Gateway, duckdb_engine: Any, case: Case
) -> None:
    if case.dialect not in {"duckdb", "postgres", "trino", "spark"}:
        pytest.skip(f"{case.dialect} SQL is not expected to transpile to DuckDB")
    principal = principal_named(case.principal)
    result = gateway.authorize(case.sql, principal, case.purpose, case.dialect, "duckdb")
    assert result.allowed, result.reason
    duckdb_engine.execute(result.sql)
