"""Legitimate analyst queries that the gateway once denied (false positives): each runs, on both
engines where its syntax is valid there, with the row filter and masks applied; and the nearby
queries that must stay denied still are."""

from __future__ import annotations

from typing import Any

import pytest
from adversarial_world import Secrets
from test_adversarial import assert_no_leak, run

from meshgov.engines.base import QueryEngine
from meshgov.errors import SqlUnsupportedError

# Valid on DuckDB and PostgreSQL (read in the engine's own dialect).
BOTH_ENGINES = [
    # A fallible expression in a branch of a top-level UNION ALL is in the result's output list.
    "SELECT order_id, amount * 2 AS x FROM commerce.orders UNION ALL "
    "SELECT payment_id, amount FROM payments.payments ORDER BY 1 LIMIT 3",
    # ...and so is one in a parenthesised statement.
    "(SELECT order_id, amount * 2 AS x FROM commerce.orders ORDER BY 1 LIMIT 3)",
    # Over a window function of its own SELECT: computed from the windowed (filtered) rows.
    "WITH s AS (SELECT order_id, customer_id, amount / sum(amount) OVER "
    "(PARTITION BY customer_id) AS share FROM commerce.orders) "
    "SELECT order_id, share FROM s WHERE share > 0.5 ORDER BY 1 LIMIT 3",
    "WITH s AS (SELECT order_id, amount - lag(amount) OVER (ORDER BY order_date, order_id) "
    "AS delta FROM commerce.orders) SELECT * FROM s WHERE delta > 0 ORDER BY 1 LIMIT 3",
    "WITH m AS (SELECT date_trunc('month', order_date) AS month, sum(amount) AS total "
    "FROM commerce.orders GROUP BY 1), g AS (SELECT month, total - lag(total) OVER "
    "(ORDER BY month) AS growth FROM m) SELECT * FROM g WHERE growth > 0 ORDER BY 1",
    # Over an aggregate of its own SELECT (a group key beside it): computed after grouping.
    "WITH due AS (SELECT o.order_id, o.amount - coalesce(sum(p.amount), 0) AS outstanding "
    "FROM commerce.orders o LEFT JOIN payments.payments p ON p.order_id = o.order_id "
    "GROUP BY o.order_id, o.amount) SELECT order_id, outstanding FROM due "
    "WHERE outstanding > 0 ORDER BY 1 LIMIT 3",
    # Allow-listed time and random functions.
    "SELECT payment_id FROM payments.payments WHERE paid_at < localtimestamp ORDER BY 1 LIMIT 3",
    "SELECT order_id FROM commerce.orders ORDER BY random() LIMIT 3",
    # Comparisons the engine implements without casting text: names defined by the query are
    # typed by their definitions (a window rank, a count, a column list), literals are constant.
    "WITH r AS (SELECT order_id, row_number() OVER (PARTITION BY customer_id ORDER BY amount "
    "DESC) AS rn FROM commerce.orders) SELECT order_id FROM r WHERE rn <= 3 ORDER BY 1 LIMIT 3",
    "WITH c AS (SELECT customer_id, count(*) AS n FROM commerce.orders GROUP BY 1) "
    "SELECT customer_id FROM c WHERE n >= 1 ORDER BY 1 LIMIT 3",
    "SELECT k FROM (SELECT customer_id, count(*) FROM commerce.orders GROUP BY 1) AS v(k, c) "
    "WHERE c >= 1 ORDER BY 1 LIMIT 3",
    "SELECT order_id FROM commerce.orders WHERE order_date >= '2020-01-01' ORDER BY 1 LIMIT 3",
    "SELECT order_id FROM commerce.orders "
    "WHERE CASE WHEN status = 'cancelled' THEN 0 ELSE amount END > 10 ORDER BY 1 LIMIT 3",
    "SELECT customer_id FROM customer.customers WHERE length(customer_id) > 1 "
    "AND coalesce(region, 'none') <> 'none' ORDER BY 1 LIMIT 3",
    # Output items named by GROUP BY (alias, ordinal) that cannot fail; a fallible item that no
    # clause before the row filter names (only ORDER BY).
    "SELECT lower(status) AS s, count(*) AS n FROM commerce.orders GROUP BY s ORDER BY 1",
    "SELECT date_trunc('month', order_date) AS m, count(*) AS n FROM commerce.orders "
    "GROUP BY 1 ORDER BY 1 LIMIT 3",
    "SELECT order_id, amount * 2 AS doubled FROM commerce.orders ORDER BY doubled DESC, 1 LIMIT 3",
    # A constant interval, a one-character ESCAPE.
    "SELECT order_id FROM commerce.orders WHERE order_date > DATE '2025-06-30' - INTERVAL '30 "
    "days' ORDER BY 1 LIMIT 3",
    "SELECT order_id FROM commerce.orders WHERE status LIKE 'ship!%' ESCAPE '!' "
    "OR status LIKE 'deliv%' ESCAPE '!' ORDER BY 1 LIMIT 3",
]

# DuckDB syntax: DuckDB's spellings of allow-listed functions.
DUCKDB_ONLY = [
    "SELECT date_part('dow', order_date) AS dow, count(*) AS n FROM commerce.orders "
    "GROUP BY 1 ORDER BY 1",
    "SELECT order_id FROM commerce.orders WHERE date_part('year', order_date) = 2024 "
    "ORDER BY 1 LIMIT 3",
    "SELECT payment_id FROM payments.payments WHERE paid_at < now() ORDER BY 1 LIMIT 3",
    # Aliases named in WHERE / GROUP BY ALL / HAVING / QUALIFY whose items cannot fail before
    # the row filter: total functions, aggregates only, over a window of their own SELECT.
    "SELECT upper(status) AS s, count(*) AS n FROM commerce.orders WHERE s = 'SHIPPED' GROUP BY s",
    "SELECT lower(status) AS s, count(*) AS n FROM commerce.orders GROUP BY ALL ORDER BY 1",
    "SELECT customer_id, sum(amount) / count(*) AS mean FROM commerce.orders GROUP BY 1 "
    "HAVING mean > 100 ORDER BY 1 LIMIT 3",
    "SELECT order_id, amount / sum(amount) OVER (PARTITION BY customer_id) AS share "
    "FROM commerce.orders QUALIFY share > 0.5 ORDER BY 1 LIMIT 3",
    "SELECT order_date AS d, d + 1 AS next FROM commerce.orders ORDER BY 1 LIMIT 3",
    # Constant subscripts and slices (NULL out of range), a constant interval.
    "SELECT order_id FROM commerce.orders WHERE [status, currency][1] = 'shipped' "
    "AND status[1:4] = 'ship' ORDER BY 1 LIMIT 3",
    "SELECT order_id FROM commerce.orders WHERE order_date > DATE '2025-06-30' - INTERVAL 30 DAY "
    "ORDER BY 1 LIMIT 3",
    # Subscripts, maps and intervals built from data in the output list and in aggregates.
    "SELECT order_id, map([status], [amount])[status] AS a, order_date + INTERVAL (1) DAY AS "
    "next_day, [1, 2, 3][1:length(status) % 3] AS s FROM commerce.orders ORDER BY 1 LIMIT 3",
    "SELECT max(order_date + INTERVAL (length(status)) DAY) AS latest FROM commerce.orders",
]


def _runs(gateway: Any, engine: QueryEngine, sql: str, secrets: Secrets) -> None:
    outcome = run(gateway, engine, sql)
    assert outcome.table is not None, outcome.error
    assert outcome.table.num_rows > 0
    assert_no_leak(outcome, secrets, sql)


@pytest.mark.parametrize("sql", BOTH_ENGINES)
def test_legit_query_runs_on_both_engines(
    sql: str, engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    _runs(gateway, engine, sql, secrets)


@pytest.mark.parametrize("sql", DUCKDB_ONLY)
def test_legit_duckdb_query_runs(
    sql: str, duckdb_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    _runs(gateway, duckdb_engine, sql, secrets)


# Still denied: the fallible part is not computed from its own SELECT's aggregates or windows,
# or sits where an outer predicate can reach it, or the function is unknown.
STILL_DENIED = [
    # The CAST does not read the window: it is its own candidate.
    "WITH s AS (SELECT order_id, CAST(status AS INT) + row_number() OVER () AS v "
    "FROM commerce.orders) SELECT * FROM s WHERE v > 1",
    "WITH s AS (SELECT order_id, CASE WHEN region = 'US' THEN 1 / 0 ELSE 0 END "
    "+ sum(amount) OVER () AS v FROM commerce.orders) SELECT * FROM s WHERE v > 1",
    # The aggregate belongs to a nested query: the division runs per row of orders.
    "WITH s AS (SELECT order_id, amount / (SELECT count(*) FROM commerce.products) AS v "
    "FROM commerce.orders) SELECT * FROM s WHERE v > 1",
    # A UNION inside a derived table: an outer predicate can be pushed into its branches.
    "SELECT * FROM (SELECT amount * 2 AS x FROM commerce.orders UNION ALL "
    "SELECT amount FROM payments.payments) t WHERE x > 1",
    # Only UNION branches count as outermost (INTERSECT/EXCEPT may become joins).
    "SELECT amount * 2 FROM commerce.orders INTERSECT SELECT amount FROM payments.payments",
    # date_part with a unit from data, or an unknown unit, stays an unknown function.
    "SELECT date_part(status, order_date) FROM commerce.orders",
    "SELECT date_part('nonsense', order_date) FROM commerce.orders",
    "SELECT now(1) FROM commerce.orders",
]


@pytest.mark.parametrize("sql", STILL_DENIED)
def test_nearby_queries_stay_denied(sql: str, duckdb_engine: QueryEngine, gateway: Any) -> None:
    outcome = run(gateway, duckdb_engine, sql)
    assert isinstance(outcome.error, SqlUnsupportedError), outcome.error
