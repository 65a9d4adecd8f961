"""Naming the column at fault in secure SQL that an engine could not bind (sqlglot only)."""

from __future__ import annotations

import pytest

from meshgov.core.sql.diagnose import unresolved_column

CUSTOMERS = (
    '(SELECT "customer_id", "email" FROM "customer"."customers" WHERE "region" = \'EU\') AS c'
)
ORDERS = '(SELECT "order_id", "customer_id", "amount" FROM "commerce"."orders") AS o'


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (f"SELECT ssn FROM {CUSTOMERS}", "column 'ssn' does not exist"),
        (f"SELECT c.ssn FROM {CUSTOMERS}", "column 'ssn' does not exist"),
        (f"SELECT c.email FROM {CUSTOMERS} WHERE emial = 'x'", "column 'emial' does not exist"),
        (
            f"SELECT customer_id FROM {CUSTOMERS} JOIN {ORDERS} ON c.customer_id = o.customer_id",
            "column 'customer_id' is ambiguous: c, o all have it; qualify it",
        ),
        (f"WITH a AS (SELECT email FROM {CUSTOMERS}) SELECT zzz FROM a", "column 'zzz'"),
        (
            f"SELECT email, (SELECT count(*) FROM {ORDERS} "
            "WHERE o.customer_id = c.customer_id AND o.nope > 1) FROM " + CUSTOMERS,
            "column 'nope' does not exist",
        ),
    ],
)
def test_the_column_at_fault_is_named(sql: str, message: str) -> None:
    for dialect in ("duckdb", "postgres"):
        problem = unresolved_column(sql, dialect)
        assert problem is not None
        assert problem.startswith(message)


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT c.email, sum(o.amount) FROM {CUSTOMERS} JOIN {ORDERS} USING (customer_id) "
        "GROUP BY 1",
        f"SELECT C.EMAIL FROM {CUSTOMERS}",  # case-insensitive: not claimed missing
        f"SELECT c.email.domain FROM {CUSTOMERS}",  # a struct path, not a column of c
        f"SELECT email, (SELECT count(*) FROM {ORDERS} WHERE o.customer_id = c.customer_id) "
        f"FROM {CUSTOMERS}",
        f"SELECT list_transform([1, 2], x -> x + 1) FROM {CUSTOMERS}",
        "SELECT a FROM (VALUES (1)) AS t(a)",
        "SELECT FROM WHERE",  # unparseable: nothing to say
    ],
)
def test_nothing_is_claimed_when_every_column_binds(sql: str) -> None:
    assert unresolved_column(sql, "duckdb") is None
