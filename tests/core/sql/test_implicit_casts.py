"""Comparisons the engine implements with a cast of text (DuckDB, Spark with ANSI on) are judged
fallible over row-filtered tables on engines without a barrier; whether a side may be text is
inferred from the catalogue, masks and the query's own definitions (``core/sql/kinds.py``)."""

from __future__ import annotations

import pytest

from meshgov.core.manifest import LogicalType
from meshgov.core.principal import Principal
from meshgov.core.sql.model import AccessDecision, Mask, PortColumn, PortRef
from meshgov.core.sql.rewrite import rewrite
from meshgov.errors import SqlUnsupportedError

PORT = PortRef(
    product="sales/orders",
    port="orders",
    version="1.0.0",
    table=("sales", "orders"),
    columns=(
        PortColumn("order_id", LogicalType.integer),
        PortColumn("amount", LogicalType.decimal),
        PortColumn("region", LogicalType.string),
        PortColumn("status", LogicalType.string),
        PortColumn("ordered_on", LogicalType.date),
        PortColumn("customer_no", LogicalType.integer),
    ),
)
# The row filter makes the check apply; the hash mask turns an integer column into text.
DECISION = AccessDecision(
    allow=True, row_filters=("region = 'EU'",), masks={"customer_no": Mask(kind="hash")}
)


def _rewrite(sql: str, engine_barrier: bool = False) -> str:
    return rewrite(
        sql,
        read="duckdb",
        write="duckdb",
        resolve_port=lambda parts: PORT if parts[-1] == "orders" else None,
        decide=lambda port: DECISION,
        principal=Principal(id="analyst"),
        engine_barrier=engine_barrier,
    ).sql


CASE_TEXT = "CASE WHEN region = 'US' THEN status ELSE '1' END"
REFUSED = [
    f"SELECT count(*) FROM sales.orders WHERE ({CASE_TEXT}) = 1",
    f"SELECT count(*) FROM sales.orders WHERE ({CASE_TEXT}) = order_id",
    f"SELECT count(*) FROM sales.orders WHERE ({CASE_TEXT}) = ordered_on",
    f"SELECT count(*) FROM sales.orders WHERE ({CASE_TEXT}) IN (1, 2)",
    f"SELECT count(*) FROM sales.orders WHERE ({CASE_TEXT}) BETWEEN 1 AND 2",
    f"SELECT count(*) FROM sales.orders WHERE nullif({CASE_TEXT}, 1) IS NULL",
    f"SELECT count(*) FROM sales.orders WHERE CASE {CASE_TEXT} WHEN 1 THEN true END",
    "SELECT count(*) FROM sales.orders WHERE coalesce(status, order_id) = 0",
    "SELECT count(*) FROM sales.orders WHERE status = true",
    "SELECT count(*) FROM sales.orders WHERE lower(status) > 3",
    "SELECT count(*) FROM sales.orders WHERE CAST(order_id AS VARCHAR) = 3",
    "SELECT count(*) FROM sales.orders WHERE status || 'x' = 3",
    # A hashed integer is text in the secure view.
    "SELECT count(*) FROM sales.orders WHERE customer_no = 3",
    # Names the query defines are typed by their definitions, through chains and column lists.
    f"WITH x AS (SELECT {CASE_TEXT} AS r FROM sales.orders) SELECT count(*) FROM x WHERE r = 1",
    f"WITH x AS (SELECT {CASE_TEXT} AS r FROM sales.orders), y AS (SELECT r AS s FROM x) "
    "SELECT count(*) FROM y WHERE s = 1",
    f"SELECT count(*) FROM (SELECT {CASE_TEXT} FROM sales.orders) AS v(r) WHERE r = 1",
    f"SELECT count(*) FROM (SELECT {CASE_TEXT} AS r FROM sales.orders) AS v WHERE r > 1",
    # A name defined only through * is not known: it may be text.
    "SELECT count(*) FROM (SELECT * FROM sales.orders) AS v(a, b, c) WHERE c = 1",
    # The union of every definition of a name: one of them is text.
    "WITH x AS (SELECT status AS k FROM sales.orders), y AS (SELECT order_id AS k FROM "
    "sales.orders) SELECT count(*) FROM x JOIN y ON x.k = y.k",
    # USING and NATURAL joins compare same-named columns: text on one side, a number on the other.
    "SELECT count(*) FROM sales.orders JOIN (SELECT 1 AS status) AS q USING (status)",
    "SELECT count(*) FROM (SELECT 1 AS status) AS q JOIN sales.orders USING (status)",
    "SELECT count(*) FROM sales.orders NATURAL JOIN (SELECT 1 AS status) AS q",
]
SERVED = [
    "SELECT count(*) FROM sales.orders WHERE status = 'shipped' AND amount > 10",
    "SELECT count(*) FROM sales.orders WHERE order_id IN (1, 2, 3) AND region IN ('EU', 'US')",
    # A literal cast to the column's type fails on every row or none: not on a value.
    "SELECT count(*) FROM sales.orders WHERE ordered_on >= '2024-01-01'",
    "SELECT count(*) FROM sales.orders WHERE order_id = '5'",
    "SELECT count(*) FROM sales.orders WHERE CASE WHEN status = 'x' THEN 0 ELSE amount END > 1",
    "SELECT count(*) FROM sales.orders WHERE length(status) > 3 AND year(ordered_on) = 2024",
    "SELECT count(*) FROM sales.orders WHERE coalesce(status, 'none') <> 'none'",
    "SELECT count(*) FROM sales.orders WHERE customer_no = 'abc'",
    "WITH r AS (SELECT order_id, row_number() OVER (ORDER BY amount) AS rn FROM sales.orders) "
    "SELECT * FROM r WHERE rn <= 3",
    "WITH c AS (SELECT region, count(*) AS n, max(ordered_on) AS last FROM sales.orders "
    "GROUP BY 1) SELECT * FROM c WHERE n > 1 AND last > DATE '2024-01-01'",
    "SELECT * FROM (SELECT region, count(*) FROM sales.orders GROUP BY 1) AS v(k, c) WHERE c > 1",
    "SELECT * FROM (VALUES (1, 'a')) AS v(k, s) JOIN sales.orders o ON o.order_id = v.k",
    "SELECT count(*) FROM sales.orders JOIN (SELECT 'x' AS status) AS q USING (status)",
    "SELECT count(*) FROM sales.orders NATURAL JOIN (SELECT 'x' AS status, 1 AS order_id) AS q",
    # In the outermost output list the row filter has run: a mixed comparison is allowed there.
    f"SELECT ({CASE_TEXT}) = 1 AS flag FROM sales.orders",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_mixed_comparisons_over_filtered_rows_are_refused(sql: str) -> None:
    with pytest.raises(SqlUnsupportedError, match="can fail on a value"):
        _rewrite(sql)


@pytest.mark.parametrize("sql", REFUSED)
def test_behind_an_engine_barrier_they_are_served(sql: str) -> None:
    assert "\"region\" = 'EU'" in _rewrite(sql, engine_barrier=True)


@pytest.mark.parametrize("sql", SERVED)
def test_typed_comparisons_are_served(sql: str) -> None:
    assert "\"region\" = 'EU'" in _rewrite(sql)


def _rewrite_for_spark(sql: str) -> str:
    return rewrite(
        sql,
        read="duckdb",
        write="spark",
        resolve_port=lambda parts: PORT if parts[-1] == "orders" else None,
        decide=lambda port: DECISION,
        principal=Principal(id="analyst"),
        engine_barrier=False,
    ).sql


def test_a_date_formatted_with_a_constant_pattern_is_total_on_spark() -> None:
    # dayname is written DATE_FORMAT(d, 'EEEE') for Spark (dialect_pairs): grouping by it is
    # served; formatting a text column could fail on a value, and is refused before the filter.
    sql = "SELECT dayname(ordered_on) AS d, count(*) AS n FROM sales.orders GROUP BY 1"
    assert "DATE_FORMAT(" in _rewrite_for_spark(sql)
    with pytest.raises(SqlUnsupportedError, match="can fail on a value"):
        _rewrite_for_spark("SELECT count(*) FROM sales.orders WHERE strftime(status, '%A') = 'x'")
