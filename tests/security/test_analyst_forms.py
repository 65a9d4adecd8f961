"""The analyst forms the gateway now serves (COLUMNS, PIVOT/UNPIVOT, ONLY, literal patterns) keep
hidden columns hidden, masks and row filters applied, and refuse what cannot be served safely."""

from __future__ import annotations

from typing import Any

import pytest
from adversarial_world import Secrets
from test_adversarial import assert_no_leak, run

from meshgov.engines.base import QueryEngine
from meshgov.errors import AccessDenied


def _duckdb_read(engine: QueryEngine, gateway: Any, sql: str) -> Any:
    from adversarial_world import principal
    from test_adversarial import Outcome

    from meshgov.errors import MeshgovError
    from meshgov.execution import execute_query

    try:
        result = execute_query(gateway, engine, sql, principal("analyst-eu"), "analytics", "duckdb")
    except MeshgovError as exc:
        return Outcome(None, exc)
    return Outcome(result.table, None)


@pytest.fixture(params=["duckdb", "postgresql"])
def any_engine(request: pytest.FixtureRequest) -> QueryEngine:
    name = "duckdb_engine" if request.param == "duckdb" else "postgres_engine"
    engine: QueryEngine = request.getfixturevalue(name)
    return engine


def test_columns_star_expands_to_visible_columns_only(
    any_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    sql = "SELECT COLUMNS(*) FROM marketing.customer_360 ORDER BY customer_id LIMIT 3"
    outcome = _duckdb_read(any_engine, gateway, sql)
    assert outcome.table is not None, outcome.error
    assert "failed_payment_count" not in outcome.table.column_names
    assert "region" in outcome.table.column_names
    assert_no_leak(outcome, secrets, sql)


def test_columns_regex_sees_masked_values(
    any_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    sql = "SELECT COLUMNS('mail|phone|name') FROM customer.customers"
    outcome = _duckdb_read(any_engine, gateway, sql)
    assert outcome.table is not None, outcome.error
    assert set(outcome.table.column_names) == {"email", "phone", "full_name"}
    assert_no_leak(outcome, secrets, sql)


@pytest.mark.parametrize(
    ("sql", "error", "phrase"),
    [
        ("SELECT COLUMNS('failed') FROM marketing.customer_360", AccessDenied, "no column"),
        (
            "SELECT COLUMNS(['failed_payment_count']) FROM marketing.customer_360",
            AccessDenied,
            "unknown column",
        ),
        (
            "SELECT customer_id FROM customer.customers WHERE COLUMNS('mail') = 'x'",
            AccessDenied,
            "output list",
        ),
        (
            "WITH c AS (SELECT * FROM customer.customers) SELECT COLUMNS(*) FROM c",
            AccessDenied,
            "product tables",
        ),
        ("SELECT COLUMNS('(?=e)') FROM customer.customers", AccessDenied, "regular expression"),
    ],
)
def test_columns_refusals(
    sql: str, error: type[Exception], phrase: str, duckdb_engine: QueryEngine, gateway: Any
) -> None:
    outcome = _duckdb_read(duckdb_engine, gateway, sql)
    assert isinstance(outcome.error, error), outcome.error
    assert phrase in str(outcome.error)


def test_pivot_runs_over_the_filtered_masked_rows(
    any_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    sql = (
        "PIVOT customer.customers ON region IN ('EU', 'US') USING count(*) AS n, "
        "max(email) AS e GROUP BY gender"
    )
    outcome = _duckdb_read(any_engine, gateway, sql)
    assert outcome.table is not None, outcome.error
    # DuckDB names are case-insensitive: on PostgreSQL they come back folded.
    rows = [{k.lower(): v for k, v in r.items()} for r in outcome.table.to_pylist()]
    assert sum(r["eu_n"] for r in rows) == secrets.eu_count
    assert all(r["us_n"] == 0 and r["us_e"] is None for r in rows)
    assert_no_leak(outcome, secrets, sql)


def test_unpivot_of_a_hidden_column_is_refused(any_engine: QueryEngine, gateway: Any) -> None:
    sql = (
        "UNPIVOT (SELECT customer_id, failed_payment_count FROM marketing.customer_360) "
        "ON failed_payment_count INTO NAME k VALUE v"
    )
    outcome = _duckdb_read(any_engine, gateway, sql)
    assert isinstance(outcome.error, AccessDenied)
    assert "hidden" in str(outcome.error)


@pytest.mark.parametrize(
    "pattern",
    ["(a", "a)", "\\1", "(?=a)", "(?i)a", "a{2,1}", "a{5000}", "*a", "[[:nope:]]", "\\b", "[a"],
)
def test_invalid_or_flavoured_regex_literals_are_refused_before_running(
    pattern: str, any_engine: QueryEngine, gateway: Any
) -> None:
    sql = f"SELECT count(*) FROM customer.customers WHERE regexp_matches(gender, '{pattern}')"
    outcome = _duckdb_read(any_engine, gateway, sql)
    assert isinstance(outcome.error, AccessDenied), outcome.error
    assert "regular expression" in str(outcome.error)


def test_valid_regex_literal_in_where_is_served_on_duckdb(
    duckdb_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    sql = "SELECT count(*) AS n FROM customer.customers WHERE regexp_matches(region, '^E[U]$')"
    outcome = run(gateway, duckdb_engine, sql)
    assert outcome.table is not None, outcome.error
    assert outcome.table.to_pylist() == [{"n": secrets.eu_count}]


def test_a_pattern_built_from_data_stays_fallible_on_duckdb(
    duckdb_engine: QueryEngine, gateway: Any
) -> None:
    sql = "SELECT count(*) FROM customer.customers WHERE regexp_matches('x', customer_id)"
    outcome = run(gateway, duckdb_engine, sql)
    assert isinstance(outcome.error, AccessDenied)
    assert "can fail on a value" in str(outcome.error)


def test_regex_flags_outside_the_common_set_are_refused(
    duckdb_engine: QueryEngine, gateway: Any
) -> None:
    sql = "SELECT regexp_replace(gender, 'a', 'b', 'x') FROM customer.customers"
    outcome = run(gateway, duckdb_engine, sql)
    assert isinstance(outcome.error, AccessDenied)
    assert "flags" in str(outcome.error)


def test_only_is_the_table_itself(
    postgres_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    outcome = run(gateway, postgres_engine, "SELECT count(*) AS n FROM ONLY customer.customers")
    assert outcome.table is not None, outcome.error
    assert outcome.table.to_pylist() == [{"n": secrets.eu_count}]
