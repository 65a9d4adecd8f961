"""The dialect pairs on the Spark engine: each construct whose meaning sqlglot's DuckDB→Spark or
PostgreSQL→Spark transpilation changes gives, through the gateway, the same rows on Spark as on
the read dialect's own engine, or is refused for Spark with a reason naming it
(``core/sql/dialect_pairs.py``; docs/enforcement.md, "Dialect pairs").

DuckDB-read queries are compared with DuckDB, PostgreSQL-read ones with PostgreSQL (skipped
without a server unless MESHGOV_REQUIRE_POSTGRES=1). One Spark session per run (no xdist).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from adversarial_world import principal
from test_spark_engine import _normalised

from meshgov.engines.base import QueryEngine
from meshgov.errors import SqlUnsupportedError
from meshgov.execution import execute_query

pytestmark = pytest.mark.spark


def _rows(gateway: Any, engine: QueryEngine, sql: str, read: str) -> list[str]:
    """Sorted rows, numbers as floats: the types may differ (PostgreSQL's EXTRACT is NUMERIC,
    Spark's INT; docs/enforcement.md), the values may not."""
    result = execute_query(gateway, engine, sql, principal("analyst-eu"), "analytics", read)
    rows = sorted(
        json.dumps([float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in r])
        for r in map(json.loads, _normalised(result.table))
    )
    assert rows, f"{engine.name} returned no rows for {sql}"
    return rows


# Each reads a construct sqlglot transpiles to Spark with another meaning (measured with
# pyspark 4.3: /work/shared/reference/spark.md); the gateway rewrites it.
DUCKDB_REWRITTEN = {
    # sqlglot's QUALIFY emulation kept ORDER BY/LIMIT inside its derived table (LIMIT before
    # the filter: fewer rows).
    "qualify-order-limit": "SELECT customer_id, amount, row_number() OVER (PARTITION BY "
    "customer_id ORDER BY amount DESC, order_id) AS rn FROM commerce.orders QUALIFY rn = 1 "
    "ORDER BY amount DESC, customer_id LIMIT 7",
    # PERCENTILE_CONT(x, p) is not Spark's; the WITHIN GROUP form became PERCENTILE_APPROX.
    "quantile_cont": "SELECT region, quantile_cont(CAST(amount AS DOUBLE), 0.5) AS med, "
    "quantile_cont(CAST(amount AS DOUBLE), 0.9) AS p90 FROM commerce.orders GROUP BY region "
    "ORDER BY region",
    "percentile_cont": "SELECT percentile_cont(0.25) WITHIN GROUP (ORDER BY "
    "CAST(amount AS DOUBLE)) AS q1, median(CAST(amount AS DOUBLE)) AS med, "
    "quantile_cont(CAST(amount * 100 AS BIGINT), 0.5) AS cents FROM commerce.orders",
    # Spark's DAYOFWEEK counts Sunday as 1; sqlglot's ISO form made Sunday 2.
    "day-of-week": "SELECT dayofweek(order_date) AS a, extract(dow FROM order_date) AS b, "
    "extract(isodow FROM order_date) AS c, isodow(order_date) AS d, count(*) AS n "
    "FROM commerce.orders GROUP BY 1, 2, 3, 4 ORDER BY 1",
    # Spark truncates, DuckDB rounds (a decimal half away from zero, a double half to even).
    "cast-to-int": "SELECT CAST(2.7 AS INT) AS a, CAST(-2.5 AS INT) AS b, CAST(2.5 AS BIGINT) "
    "AS c, CAST(amount AS INT) AS d, CAST(CAST(amount AS DOUBLE) + 0.5 AS INT) AS e, "
    "CAST(CAST(2.5 AS DOUBLE) AS INT) AS f, CAST(CAST(3.5 AS DOUBLE) AS INT) AS g "
    "FROM commerce.orders ORDER BY order_id LIMIT 20",
    # 'Monday'/'January' in DuckDB, 'Mon'/'Jan' from Spark's dayname/monthname.
    "day-month-names": "SELECT dayname(order_date) AS d, monthname(order_date) AS m, "
    "count(*) AS n FROM commerce.orders GROUP BY 1, 2 ORDER BY 1, 2",
    # A number of days in DuckDB, an interval on Spark.
    "date-minus-date": "SELECT order_id, order_date - DATE '2024-01-01' AS days, "
    "date_diff('day', DATE '2024-01-01', order_date) AS days2 FROM commerce.orders "
    "ORDER BY order_id LIMIT 10",
    # 'g': every match on both.
    "regexp-replace-g": "SELECT regexp_replace(order_id, '[0-9]', '#', 'g') AS o "
    "FROM commerce.orders ORDER BY 1 LIMIT 10",
    # DuckDB's `//` divides decimals exactly, Spark's DIV truncates them.
    "int-division": "SELECT order_id, amount // 2 AS half, count(*) OVER () // 3 AS third "
    "FROM commerce.orders ORDER BY order_id LIMIT 10",
    "collate-c": "SELECT currency FROM commerce.orders GROUP BY currency "
    "ORDER BY currency COLLATE C",
}


@pytest.mark.parametrize("sql", DUCKDB_REWRITTEN.values(), ids=DUCKDB_REWRITTEN.keys())
def test_duckdb_read_constructs_answer_the_same_on_spark(
    sql: str, spark_engine: QueryEngine, duckdb_engine: QueryEngine, gateway: Any
) -> None:
    assert _rows(gateway, spark_engine, sql, "duckdb") == _rows(
        gateway, duckdb_engine, sql, "duckdb"
    )


DUCKDB_REFUSED = {
    "ARRAY_AGG/LIST": "SELECT customer_id, ARRAY_AGG(amount ORDER BY amount)[1] AS least "
    "FROM commerce.orders GROUP BY 1",
    "list_sort/ARRAY_SORT": "SELECT list_sort([amount, NULL]) AS l FROM commerce.orders",
    "REGEXP_REPLACE without the flag 'g'": "SELECT regexp_replace(order_id, '[0-9]', '#') AS o "
    "FROM commerce.orders",
    "date_diff/DATEDIFF in months": "SELECT date_diff('month', DATE '2024-01-31', order_date) "
    "AS m FROM commerce.orders",
    "CAST to an integer type of text": "SELECT CAST('2.7' AS INT) AS c FROM commerce.orders",
    "LEFT with a length": "SELECT left(currency, -1) AS c FROM commerce.orders",
    "quantile_disc/PERCENTILE_DISC": "SELECT quantile_disc(amount, 0.5) AS q FROM commerce.orders",
    # DuckDB interpolates a decimal in its type (405.95), Spark in double precision (405.955).
    "quantile_cont/PERCENTILE_CONT/median of a decimal": "SELECT quantile_cont(amount, 0.5) "
    "AS q FROM commerce.orders",
}


@pytest.mark.parametrize(
    ("construct", "sql"), DUCKDB_REFUSED.items(), ids=list(DUCKDB_REFUSED.keys())
)
def test_duckdb_read_constructs_without_a_faithful_rewrite_are_refused_on_spark(
    construct: str, sql: str, spark_engine: QueryEngine, duckdb_engine: QueryEngine, gateway: Any
) -> None:
    with pytest.raises(SqlUnsupportedError) as refused:
        execute_query(gateway, spark_engine, sql, principal("analyst-eu"), "analytics", "duckdb")
    assert construct in refused.value.message
    assert "on the spark engine" in refused.value.message
    # The same query runs on DuckDB: the refusal is Spark's alone.
    execute_query(gateway, duckdb_engine, sql, principal("analyst-eu"), "analytics", "duckdb")


POSTGRES_REWRITTEN = {
    # sqlglot wrote PERCENTILE_APPROX.
    "percentile_cont": "SELECT region, percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) AS m "
    "FROM commerce.orders GROUP BY region ORDER BY region",
    "day-of-week": "SELECT extract(dow FROM order_date) AS a, extract(isodow FROM order_date) "
    "AS b, count(*) AS n FROM commerce.orders GROUP BY 1, 2 ORDER BY 1",
    # Integer `/` truncates in PostgreSQL.
    "integer-division": "SELECT count(*) / 7 AS w, count(*) % 7 AS r FROM commerce.orders",
    # PostgreSQL rounds a double half to even (Spark's BROUND), casts a numeric half away.
    "round-double": "SELECT round(CAST(amount AS DOUBLE PRECISION) + 0.5) AS r, "
    "round(CAST(2.5 AS DOUBLE PRECISION)) AS e, CAST(amount AS INT) AS i "
    "FROM commerce.orders ORDER BY order_id LIMIT 20",
    "date-minus-date": "SELECT order_id, order_date - DATE '2024-01-01' AS days "
    "FROM commerce.orders ORDER BY order_id LIMIT 10",
}


@pytest.mark.parametrize("sql", POSTGRES_REWRITTEN.values(), ids=POSTGRES_REWRITTEN.keys())
def test_postgres_read_constructs_answer_the_same_on_spark(
    sql: str, spark_engine: QueryEngine, postgres_engine: QueryEngine, gateway: Any
) -> None:
    assert _rows(gateway, spark_engine, sql, "postgres") == _rows(
        gateway, postgres_engine, sql, "postgres"
    )
