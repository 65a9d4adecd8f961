"""Fixture-driven rewrites (tests/fixtures/rewrite/*.sql): input → expected secure SQL, or denial.

Every allowed rewrite must also re-parse in its target dialect, and DuckDB outputs are executed
on a real in-memory DuckDB holding the fixture mesh's tables.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
import sqlglot
from rewrite_cases import Case, all_cases, principal_named

from meshgov.gateway import Gateway

CASES = all_cases()
ALLOWED = [pytest.param(c, id=c.id) for c in CASES if c.denied is None]
DENIED = [pytest.param(c, id=c.id) for c in CASES if c.denied is not None]
TEST_KEY = b"test-key-not-secret"

_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "decimal": "DECIMAL(18, 2)",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
}


def _authorize(gateway: Gateway, case: Case) -> Any:
    principal = principal_named(case.principal)
    return gateway.authorize(case.sql, principal, case.purpose, case.dialect, case.to)


def test_fixture_corpus_is_substantial() -> None:
    assert len(ALLOWED) >= 30
    assert len(DENIED) >= 30
    targets = {c.to for c in CASES}
    assert targets >= {"duckdb", "postgres", "trino", "spark", "snowflake", "bigquery"}


@pytest.mark.parametrize("case", ALLOWED)
def test_rewrite(gateway: Gateway, case: Case) -> None:
    authorization = _authorize(gateway, case)
    assert authorization.allowed, authorization.reason
    assert authorization.sql == case.expected
    # The secure SQL is valid in its target dialect.
    assert sqlglot.parse_one(authorization.sql, read=case.to) is not None


@pytest.mark.parametrize("case", DENIED)
def test_denied(gateway: Gateway, case: Case) -> None:
    authorization = _authorize(gateway, case)
    assert not authorization.allowed
    assert authorization.sql is None
    assert case.denied in (authorization.reason or ""), authorization.reason


@pytest.fixture(scope="module")
def duck(gateway: Gateway) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")

    def meshgov_hash(value: str | None) -> str | None:
        if value is None:
            return None
        return hmac.new(TEST_KEY, value.encode(), hashlib.sha256).hexdigest()

    connection.create_function("meshgov_hash", meshgov_hash, ["VARCHAR"], "VARCHAR")
    for manifest in gateway.catalog.manifests.values():
        for port in manifest.spec.output_ports:
            assert port.table
            parts = port.table.split(".")
            if len(parts) > 1:
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{parts[0]}"')
            columns = ", ".join(f'"{c.name}" {_TYPES[c.type.value]}' for c in port.columns)
            table = ".".join(f'"{p}"' for p in parts)
            connection.execute(f"CREATE TABLE {table} ({columns})")
    connection.execute(
        "INSERT INTO customer.customers VALUES "
        "('C1', 'ann@example.com', '+33123456789', 'Ann A', DATE '1990-05-17', '123', 'LC42', 7,"
        " 'EU'), ('C2', 'bob@example.com', '+15551234567', 'Bob B', DATE '1985-01-02', '456',"
        " 'LC43', 9, 'US')"
    )
    connection.execute(
        "INSERT INTO commerce.orders VALUES ('O1', 'C1', 10.5, DATE '2026-01-01', 'EU'),"
        "('O2', 'C2', 20.0, DATE '2026-01-02', 'US')"
    )
    connection.execute("INSERT INTO products VALUES ('P1', 'Lamp', 12.0)")
    yield connection
    connection.close()


@pytest.mark.parametrize("case", [c for c in ALLOWED if c.values[0].to == "duckdb"])
def test_rewrite_runs_on_duckdb(
    gateway: Gateway, duck: duckdb.DuckDBPyConnection, case: Case
) -> None:
    authorization = _authorize(gateway, case)
    rows = duck.execute(authorization.sql).fetchall()
    text = repr(rows)
    if case.principal == "analyst-eu":
        # Masked and filtered: no raw e-mail, no US customer.
        assert "ann@example.com" not in text
        assert "bob" not in text.lower()
        assert "C2" not in text
