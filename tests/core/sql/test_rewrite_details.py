"""Details of the rewrite that the fixtures cannot show by running the SQL."""

from __future__ import annotations

from rewrite_cases import principal_named

from meshgov.gateway import Gateway


def test_struct_field_access_through_an_alias_is_left_alone(gateway: Gateway) -> None:
    result = gateway.authorize(
        "SELECT c.region.x, customer.customers.region FROM customer.customers, "
        "customer.customers AS c",
        principal_named("analyst-eu"),
        "analytics",
    )
    assert result.sql is not None
    assert result.sql.startswith("SELECT c.region.x, customers.region FROM")


def test_rewrite_result_names_tables_once_with_bound_filters(gateway: Gateway) -> None:
    result = gateway.authorize(
        "SELECT 1 FROM customer.customers a JOIN customer.customers b USING (customer_id)",
        principal_named("lead"),
        "analytics",
    )
    assert [t.table for t in result.tables] == ["customer.customers"]
    assert result.tables[0].row_filter_sql == "\"region\" IN ('EU', 'UK')"


def test_denial_is_cached_like_a_rewrite(gateway: Gateway) -> None:
    nobody = principal_named("nobody")
    first = gateway.authorize("SELECT * FROM products", nobody, "analytics")
    assert not first.allowed
    assert gateway.authorize("SELECT * FROM products", nobody, "analytics") is first
