"""Secure views project only the columns a query can read; whole-row reads keep every column."""

from __future__ import annotations

import pytest
import sqlglot
from rewrite_cases import principal_named
from sqlglot import exp

from meshgov.gateway import Gateway

# Every column of customer.customers the EU analyst may see (ssn-like restricted columns aside).
ALL_VISIBLE = {
    "customer_id",
    "email",
    "phone",
    "full_name",
    "birth_date",
    "loyalty_code",
    "score",
    "region",
}


def _views(gateway: Gateway, sql: str) -> dict[str, tuple[set[str], exp.Select]]:
    """Alias of each secure view → (its projected names, the view)."""
    result = gateway.authorize(sql, principal_named("analyst-eu"), "analytics")
    assert result.allowed, result.reason
    assert result.sql is not None
    views: dict[str, tuple[set[str], exp.Select]] = {}
    for subquery in sqlglot.parse_one(result.sql, read="duckdb").find_all(exp.Subquery):
        select = subquery.this
        if isinstance(select, exp.Select) and isinstance(select.args["from_"].this, exp.Table):
            names = {p.alias_or_name.lower() for p in select.expressions}
            views[subquery.alias_or_name] = (names, select)
    return views


def test_only_referenced_columns_are_projected_masks_and_filters_kept(gateway: Gateway) -> None:
    views = _views(gateway, "SELECT email FROM customer.customers WHERE score > 3")
    names, select = views["customers"]
    assert names == {"email", "score"}
    assert "MESHGOV_HASH" in select.sql("duckdb")
    # The row filter still reads the table's region, which the query does not select.
    assert select.args["where"].sql("duckdb") == "WHERE \"region\" = 'EU'"


def test_names_count_from_every_clause_and_every_table(gateway: Gateway) -> None:
    sql = (
        "SELECT c.region, sum(o.amount) OVER (PARTITION BY c.customer_id ORDER BY o.order_date) "
        "FROM customer.customers c JOIN commerce.orders o USING (customer_id) "
        "WHERE EXISTS (SELECT 1 FROM commerce.orders x WHERE x.order_id = o.order_id) "
        "ORDER BY c.birth_date"
    )
    views = _views(gateway, sql)
    # Names are pooled across tables (generous): a name used anywhere is kept wherever it exists.
    assert views["c"][0] == {"region", "customer_id", "birth_date"}
    assert views["o"][0] == {"region", "customer_id", "amount", "order_date", "order_id"}
    assert views["x"][0] == views["o"][0]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM customer.customers",
        "SELECT c.* FROM customer.customers c",
        "SELECT * EXCLUDE (email) FROM customer.customers",
        "FROM customer.customers",
        "SELECT region FROM customer.customers NATURAL JOIN commerce.orders",
        "SELECT c FROM customer.customers c",
        "SELECT customers FROM customer.customers",
        "WITH a AS (SELECT email FROM customer.customers) SELECT * FROM a",
    ],
)
def test_whole_row_reads_keep_every_visible_column(gateway: Gateway, sql: str) -> None:
    views = _views(gateway, sql)
    customers = next(names for names, _ in views.values() if "email" in names)
    assert customers == ALL_VISIBLE


@pytest.mark.parametrize(
    "sql", ["SELECT count(*) FROM customer.customers", "SELECT 1 FROM customer.customers"]
)
def test_a_query_reading_no_column_keeps_one_so_rows_still_count(
    gateway: Gateway, sql: str
) -> None:
    (names, select), *_ = _views(gateway, sql).values()
    assert len(names) == 1
    assert select.args["where"] is not None


def test_struct_paths_keep_their_column(gateway: Gateway) -> None:
    views = _views(gateway, "SELECT c.region.x FROM customer.customers AS c")
    assert "region" in views["c"][0]
