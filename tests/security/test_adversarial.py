"""Adversarial queries through the gateway, executed on DuckDB and on PostgreSQL.

The attacker is the EU analyst (``analyst-eu``, purpose ``analytics``): PII is masked for them and
only EU rows are theirs. Each query tries to read a masked value or a filtered row. Whatever comes
back — rows in every format, or the error text of a denial or an engine failure — is checked for
every raw PII value of the snapshots, every non-EU customer id, the keyed hash of every non-EU
email, and the hash key. A few attacks also state the exact answer a correct gateway gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest
from adversarial_world import CUSTOMER_ID, HASH_KEY, MESH, Secrets, keyed_hash, principal

from meshgov.engines.base import QueryEngine, QueryFailed
from meshgov.errors import AccessDenied, MeshgovError
from meshgov.execution import execute_query, serialize

Check = Callable[[pa.Table, Secrets], None]


def empty(table: pa.Table, _: Secrets) -> None:
    assert table.num_rows == 0 or all(
        v in (None, 0, False) for row in table.to_pylist() for v in row.values()
    )


def year_only(table: pa.Table, _: Secrets) -> None:
    dates = [d for d in table.column(0).to_pylist() if d is not None]
    assert dates
    assert all((d.month, d.day) == (1, 1) for d in dates)


def eu_count(table: pa.Table, secrets: Secrets) -> None:
    assert table.num_rows == 1
    assert next(iter(table.to_pylist()[0].values())) == secrets.eu_count


@dataclass(frozen=True)
class Attack:
    name: str
    sql: str
    check: Check | None = None
    only: str | None = None  # "duckdb" or "postgresql" when the syntax is one engine's


ATTACKS: list[Attack] = [
    # Predicates, grouping and ordering on masked columns see the mask, never the value.
    Attack(
        "where-email-equals",
        "SELECT customer_id FROM customer.customers WHERE email = '{eu_email}'",
        empty,
    ),
    Attack(
        "where-email-like",
        "SELECT count(*) FROM customer.customers WHERE email LIKE '%@example.%'",
        empty,
    ),
    Attack(
        "where-name-equals",
        "SELECT customer_id FROM customer.customers WHERE full_name = '{eu_name}'",
        empty,
    ),
    Attack(
        "where-phone-prefix",
        "SELECT count(*) FROM customer.customers WHERE phone LIKE '+49%'",
        empty,
    ),
    Attack(
        "min-max-email", "SELECT min(email), max(email), min(full_name) FROM customer.customers"
    ),
    Attack(
        "group-by-first-letter",
        "SELECT substr(email, 1, 1) AS l, count(*) AS n "
        "FROM customer.customers GROUP BY 1 ORDER BY 1",
    ),
    Attack(
        "order-by-email", "SELECT customer_id, email FROM customer.customers ORDER BY email LIMIT 5"
    ),
    Attack("string-agg", "SELECT string_agg(email, ',') FROM customer.customers"),
    Attack(
        "window-over-email",
        "SELECT customer_id, first_value(email) OVER "
        "(PARTITION BY region ORDER BY email) AS f FROM customer.customers LIMIT 5",
    ),
    Attack(
        "dictionary-oracle",
        "SELECT customer_id FROM customer.customers WHERE email = meshgov_hash('{eu_email}')",
        empty,
    ),
    Attack("hash-a-guess", "SELECT meshgov_hash('{us_email}') AS guess"),
    # Row filters: nothing outside the EU, however it is asked.
    Attack("where-us", "SELECT * FROM customer.customers WHERE region = 'US'", empty),
    Attack(
        "or-true",
        "SELECT customer_id, region FROM customer.customers WHERE region <> 'EU' OR 1 = 1",
    ),
    Attack("us-id-lookup", "SELECT * FROM customer.customers WHERE customer_id = '{us_id}'", empty),
    Attack("count-all", "SELECT count(*) AS n FROM customer.customers", eu_count),
    Attack(
        "order-desc-region",
        "SELECT customer_id, region FROM customer.customers ORDER BY region DESC LIMIT 3",
    ),
    Attack(
        "orders-join-us",
        "SELECT o.order_id, c.customer_id FROM commerce.orders o "
        "JOIN customer.customers c ON c.customer_id = o.customer_id "
        "WHERE o.region = 'US'",
        empty,
    ),
    Attack(
        "payments-us",
        "SELECT cust_ref, amount FROM payments.payments WHERE currency = 'USD'",
        empty,
    ),
    Attack(
        "c360-us",
        "SELECT customer_id FROM marketing.customer_360 WHERE spend_currency = 'USD'",
        empty,
    ),
    Attack(
        "left-join-filtered",
        "SELECT p.product_id, c.customer_id FROM commerce.products p "
        "LEFT JOIN customer.customers c ON c.region = 'US' LIMIT 5",
    ),
    # Aliases and CTEs named like protected tables.
    Attack(
        "cte-shadow",
        "WITH customers AS (SELECT * FROM customer.customers) "
        "SELECT customer_id, email FROM customers WHERE region = 'US'",
        empty,
    ),
    Attack(
        "cte-named-schema",
        'WITH "customer.customers" AS (SELECT 1 AS x) SELECT count(*) FROM customer.customers',
        eu_count,
    ),
    Attack(
        "cte-filtered-us",
        "WITH c AS (SELECT * FROM customer.customers WHERE region = 'US') SELECT count(*) FROM c",
        empty,
    ),
    Attack(
        "cte-email-like",
        "WITH c AS (SELECT email FROM customer.customers) "
        "SELECT email FROM c WHERE email LIKE '%@%'",
        empty,
    ),
    Attack(
        "alias-as-table-name",
        "SELECT customers.email FROM customer.customers AS customers WHERE customers.region = 'US'",
        empty,
    ),
    Attack(
        "derived-shadow",
        "SELECT * FROM (SELECT * FROM customer.customers) AS customers WHERE region = 'US'",
        empty,
    ),
    Attack(
        "nested-cte-scope",
        "WITH x AS (WITH customers AS (SELECT 'US' AS region) "
        "SELECT * FROM customers) SELECT c.customer_id FROM customer.customers c, x "
        "WHERE c.region = x.region",
        empty,
    ),
    Attack(
        "recursive-cte",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
        "WHERE n < 3) SELECT c.customer_id FROM r, customer.customers c "
        "WHERE c.region = 'US'",
        empty,
    ),
    # Quoting and case.
    Attack("quoted", 'SELECT "email" FROM "customer"."customers" LIMIT 3'),
    Attack("upper-case", "SELECT EMAIL, REGION FROM CUSTOMER.CUSTOMERS WHERE REGION = 'US'", empty),
    Attack("quoted-upper", 'SELECT "EMAIL" FROM "CUSTOMER"."CUSTOMERS" LIMIT 3'),
    Attack(
        "meta-directive",
        "SELECT email FROM CUSTOMER.CUSTOMERS /* sqlglot.meta case_sensitive */ LIMIT 3",
    ),
    Attack("dotted-quoted", 'SELECT email FROM "customer.customers" LIMIT 3'),
    Attack("spaced-dots", "SELECT email FROM customer . customers LIMIT 3"),
    Attack("trailing-space", 'SELECT email FROM "customer"."customers " LIMIT 3'),
    Attack("catalog-duckdb", "SELECT email FROM memory.customer.customers LIMIT 3", only="duckdb"),
    Attack(
        "unicode-escape", 'SELECT email FROM customer.U&"\\0063ustomers" LIMIT 3', only="postgresql"
    ),
    Attack("replacement-scan", "SELECT * FROM '{parquet}'"),
    # Set operations.
    Attack(
        "union-audience",
        "SELECT email FROM customer.customers UNION ALL "
        "SELECT email FROM marketing.campaign_audience",
    ),
    Attack(
        "union-us",
        "SELECT customer_id FROM customer.customers WHERE region = 'US' "
        "UNION SELECT client_id FROM marketing.campaign_audience WHERE region = 'US'",
        empty,
    ),
    Attack(
        "intersect",
        "SELECT email FROM customer.customers INTERSECT "
        "SELECT email FROM marketing.campaign_audience",
    ),
    Attack(
        "except",
        "SELECT customer_id FROM marketing.customer_360 EXCEPT "
        "SELECT customer_id FROM customer.customers",
    ),
    # Correlated subqueries and lateral.
    Attack(
        "exists-email",
        "SELECT o.order_id FROM commerce.orders o WHERE EXISTS (SELECT 1 "
        "FROM customer.customers c WHERE c.customer_id = o.customer_id "
        "AND c.email LIKE '%example%')",
        empty,
    ),
    Attack(
        "scalar-us",
        "SELECT (SELECT email FROM customer.customers c WHERE c.customer_id = '{us_id}') AS e",
    ),
    Attack(
        "in-us",
        "SELECT order_id FROM commerce.orders WHERE customer_id IN "
        "(SELECT customer_id FROM customer.customers WHERE region = 'US')",
        empty,
    ),
    Attack(
        "lateral-email",
        "SELECT c.customer_id, l.e FROM customer.customers c, "
        "LATERAL (SELECT c.email AS e) l LIMIT 5",
    ),
    Attack(
        "lateral-payments",
        "SELECT c.customer_id, p.cust_ref FROM customer.customers c "
        "JOIN LATERAL (SELECT * FROM payments.payments p WHERE p.cust_ref = c.customer_id "
        "AND p.region = 'US') p ON true",
        empty,
    ),
    Attack(
        "series-lateral",
        "SELECT x.email FROM generate_series(1, 2) AS g(i), LATERAL "
        "(SELECT email FROM customer.customers WHERE customer_id = '{us_id}') AS x",
        empty,
    ),
    Attack(
        "series-cross",
        "SELECT c.customer_id FROM generate_series(1, 3) AS g(i), "
        "customer.customers c WHERE c.region = 'US'",
        empty,
    ),
    Attack(
        "subquery-in-limit",
        "SELECT customer_id FROM customer.customers LIMIT "
        "(SELECT count(*) FROM customer.customers WHERE region = 'US')",
        empty,
    ),
    # Casts, errors and division: error text is withheld, and filters run first.
    Attack("cast-email-int", "SELECT CAST(email AS INT) FROM customer.customers"),
    Attack(
        "cast-name-where",
        "SELECT customer_id FROM customer.customers WHERE CAST(full_name AS INT) > 0",
    ),
    Attack(
        "cast-us-only",
        "SELECT customer_id FROM customer.customers WHERE CAST(CASE "
        "WHEN region = 'US' THEN email ELSE '1' END AS INT) = 1",
    ),
    Attack(
        "cast-us-id",
        "SELECT CAST(CASE WHEN customer_id = '{us_id}' THEN email END AS INT) "
        "FROM customer.customers",
    ),
    Attack(
        "div-zero-us",
        "SELECT customer_id FROM customer.customers "
        "WHERE 1 / (CASE WHEN region = 'US' THEN 0 ELSE 1 END) = 1",
    ),
    Attack("div-zero-email", "SELECT 1 / 0 FROM customer.customers WHERE email = '{us_email}'"),
    Attack("cast-phone-date", "SELECT CAST(phone AS DATE) FROM customer.customers"),
    Attack(
        "pg-cast-syntax",
        "SELECT customer_id FROM customer.customers WHERE email::int > 0",
        only="postgresql",
    ),
    Attack("error-fn", "SELECT error(email) FROM customer.customers", only="duckdb"),
    Attack("json-parse", "SELECT CAST(email AS JSON) FROM customer.customers"),
    Attack("card-cast", "SELECT CAST(card_number AS DATE) FROM payments.payments"),
    # Files, dynamic SQL and engine statements.
    Attack("read-parquet", "SELECT * FROM read_parquet('{parquet}')"),
    Attack("read-csv", "SELECT * FROM read_csv_auto('/etc/passwd')"),
    Attack("read-text", "SELECT * FROM read_text('{parquet}')", only="duckdb"),
    Attack("pg-read-file", "SELECT pg_read_file('/etc/passwd')"),
    Attack("pg-read-binary", "SELECT pg_read_binary_file('{parquet}')"),
    Attack(
        "query-to-xml",
        "SELECT query_to_xml('SELECT email FROM customer.customers', true, true, '')",
    ),
    Attack(
        "query-fn", "SELECT * FROM query('SELECT email FROM customer.customers')", only="duckdb"
    ),
    Attack("query-table", "SELECT * FROM query_table('customer.customers')", only="duckdb"),
    Attack("copy-to", "COPY customer.customers TO '/tmp/meshgov-adversarial.csv'"),
    Attack("copy-stdout", "COPY (SELECT * FROM customer.customers) TO STDOUT"),
    Attack("attach", "ATTACH '/tmp/meshgov-adversarial.duckdb' AS x"),
    Attack("install", "INSTALL httpfs"),
    Attack("load", "LOAD httpfs"),
    Attack("set", "SET enable_external_access = true"),
    Attack("set-role", "SET ROLE postgres"),
    Attack("set-config", "SELECT set_config('role', 'postgres', false)"),
    Attack("pragma", "PRAGMA table_info('customer.customers')"),
    Attack("summarize", "SUMMARIZE customer.customers"),
    Attack(
        "explain-analyze", "EXPLAIN ANALYZE SELECT * FROM customer.customers WHERE region = 'US'"
    ),
    Attack("describe", "DESCRIBE customer.customers"),
    Attack("table-stmt", "TABLE customer.customers"),
    Attack("pivot", "PIVOT customer.customers ON region USING count(*)", only="duckdb"),
    Attack(
        "values-subquery",
        "VALUES ((SELECT email FROM customer.customers WHERE region = 'US' LIMIT 1))",
    ),
    Attack(
        "unnest-subquery",
        "SELECT unnest((SELECT list(email) FROM customer.customers WHERE region = 'US'))",
        only="duckdb",
    ),
    Attack(
        "array-subquery",
        "SELECT ARRAY(SELECT email FROM customer.customers WHERE region = 'US')",
        only="postgresql",
    ),
    # Several statements and comments.
    Attack("two-statements", "SELECT 1; SELECT email FROM customer.customers"),
    Attack("drop-after", "SELECT email FROM customer.customers; DROP TABLE customer.customers"),
    Attack("line-comment", "SELECT 1 AS one -- ; SELECT email FROM customer.customers"),
    Attack(
        "block-comment",
        "SELECT /* ; */ email FROM customer.customers /* ; SELECT 1 */ WHERE region = 'US'",
        empty,
    ),
    Attack("nested-comment", "SELECT 1 /* /* */ ; SELECT email FROM customer.customers */"),
    # System catalogs, statistics, whole-row tricks and the key.
    Attack("information-schema", "SELECT * FROM information_schema.columns"),
    Attack("pg-stats", "SELECT most_common_vals FROM pg_catalog.pg_stats"),
    Attack("pg-proc", "SELECT prosrc FROM pg_catalog.pg_proc WHERE proname = 'meshgov_hash'"),
    Attack("duckdb-functions", "SELECT * FROM duckdb_functions()"),
    Attack("duckdb-settings", "SELECT * FROM duckdb_settings()"),
    Attack("stats-fn", "SELECT stats(email) FROM customer.customers", only="duckdb"),
    Attack("hash-key-table", "SELECT * FROM meshgov_internal.hash_key"),
    Attack("current-setting", "SELECT current_setting('meshgov.hash_key')"),
    Attack("whole-row", "SELECT c FROM customer.customers c WHERE c.region = 'US'", empty),
    Attack(
        "row-to-json", "SELECT row_to_json(c) FROM customer.customers c LIMIT 3", only="postgresql"
    ),
    Attack(
        "columns-regex", "SELECT COLUMNS('.*mail.*') FROM customer.customers LIMIT 3", only="duckdb"
    ),
    Attack("struct-star", "SELECT struct_pack(*) FROM customer.customers LIMIT 3", only="duckdb"),
    Attack("time-travel", "SELECT * FROM customer.customers AT (VERSION => 1)", only="duckdb"),
    Attack("sleep", "SELECT pg_sleep(30)"),
    # More of each class: other spellings, other clauses, other products.
    Attack(
        "filter-clause",
        "SELECT count(*) FILTER (WHERE region = 'US') AS n FROM customer.customers",
        empty,
    ),
    Attack(
        "union-both-halves",
        "SELECT customer_id, region FROM customer.customers "
        "WHERE region = 'EU' UNION ALL SELECT customer_id, region FROM customer.customers "
        "WHERE region <> 'EU'",
    ),
    Attack(
        "self-join-us",
        "SELECT count(*) FROM customer.customers c, customer.customers d "
        "WHERE c.customer_id = d.customer_id AND d.region = 'US'",
        empty,
    ),
    Attack(
        "not-exists-eu",
        "SELECT c.customer_id FROM customer.customers c "
        "WHERE NOT EXISTS (SELECT 1 WHERE c.region = 'EU')",
        empty,
    ),
    Attack(
        "values-join",
        "SELECT h.customer_id FROM (VALUES ('US')) AS v(r) "
        "JOIN customer.customers h ON h.region = v.r",
        empty,
    ),
    Attack(
        "materialized-cte",
        "WITH t AS MATERIALIZED (SELECT * FROM customer.customers) "
        "SELECT customer_id FROM t WHERE region = 'US'",
        empty,
    ),
    Attack(
        "c360-join-us",
        "SELECT m.customer_id FROM marketing.customer_360 m "
        "JOIN customer.customers c USING (customer_id) WHERE m.region = 'US'",
        empty,
    ),
    Attack(
        "concat-region",
        "SELECT customer_id FROM customer.customers WHERE region = 'U' || 'S'",
        empty,
    ),
    Attack(
        "chr-region",
        "SELECT customer_id FROM customer.customers WHERE region = chr(85) || chr(83)",
        empty,
    ),
    Attack(
        "dollar-quote",
        "SELECT customer_id FROM customer.customers WHERE region = $$US$$",
        empty,
        only="postgresql",
    ),
    Attack(
        "comment-in-literal",
        "SELECT customer_id, region FROM customer.customers "
        "WHERE region = 'EU' -- ' OR region = 'US'",
    ),
    Attack(
        "scalar-max-elsewhere",
        "SELECT (SELECT max(email) FROM customer.customers) AS m, "
        "product_id FROM commerce.products LIMIT 2",
    ),
    Attack(
        "regex-masked",
        "SELECT count(*) FROM customer.customers WHERE regexp_matches(email, '^[a-z]+\\.')",
        empty,
        only="duckdb",
    ),
    Attack(
        "split-email",
        "SELECT string_split(email, '@') AS parts FROM customer.customers LIMIT 3",
        only="duckdb",
    ),
    Attack("to-json", "SELECT to_json(c) FROM customer.customers c LIMIT 3"),
    Attack(
        "birth-year-only",
        "SELECT birth_date FROM customer.customers WHERE birth_date IS NOT NULL LIMIT 50",
        year_only,
    ),
    Attack("phone-partial", "SELECT phone, full_name, postcode FROM customer.customers LIMIT 50"),
    Attack("card-partial", "SELECT card_number FROM payments.payments LIMIT 50"),
    Attack("payments-us-ref", "SELECT cust_ref FROM payments.payments WHERE region = 'US'", empty),
    Attack(
        "audience-us",
        "SELECT client_id, email FROM marketing.campaign_audience WHERE region = 'US'",
        empty,
    ),
    Attack(
        "distinct-on",
        "SELECT DISTINCT ON (region) region, email FROM customer.customers",
        only="postgresql",
    ),
    Attack("for-update", "SELECT email FROM customer.customers FOR UPDATE"),
    Attack(
        "only-table",
        "SELECT email FROM ONLY customer.customers WHERE region = 'US'",
        empty,
        only="postgresql",
    ),
    Attack(
        "tablesample",
        "SELECT customer_id, region FROM customer.customers TABLESAMPLE BERNOULLI (50)",
    ),
    Attack("unqualified-key-table", "SELECT * FROM hash_key"),
    Attack("functiondef", "SELECT pg_get_functiondef('meshgov_hash'::regproc)"),
    Attack("secrets-fn", "SELECT * FROM duckdb_secrets()"),
    Attack("call-pragma", "CALL pragma_version()"),
    Attack("set-search-path", "SET search_path TO meshgov_internal"),
    Attack("prepare", "PREPARE p AS SELECT email FROM customer.customers"),
    Attack("do-block", "DO $$ BEGIN PERFORM 1; END $$"),
    Attack(
        "union-cast", "SELECT 1 AS x UNION ALL SELECT CAST(email AS INT) FROM customer.customers"
    ),
    Attack(
        "having-cast",
        "SELECT region FROM customer.customers GROUP BY region HAVING max(CAST(email AS INT)) > 0",
    ),
    Attack(
        "order-by-cast",
        "SELECT customer_id FROM customer.customers ORDER BY CAST(full_name AS INT)",
    ),
    Attack(
        "text-number-join",
        "SELECT c.customer_id FROM customer.customers c "
        "JOIN commerce.orders o ON c.email = o.amount",
    ),
    Attack(
        "lateral-unnest",
        "SELECT c.customer_id, x FROM customer.customers c, "
        "unnest(ARRAY[c.email, c.full_name]) AS u(x) LIMIT 6",
    ),
    Attack(
        "window-lag",
        "SELECT customer_id, lag(email) OVER (ORDER BY customer_id) AS prev "
        "FROM customer.customers LIMIT 10",
    ),
    Attack(
        "exists-us-id",
        "SELECT 1 AS hit WHERE EXISTS (SELECT 1 FROM customer.customers "
        "WHERE customer_id = '{us_id}')",
        empty,
    ),
    Attack(
        "count-via-orders",
        "SELECT count(DISTINCT customer_id) AS n FROM commerce.orders "
        "WHERE customer_id IN (SELECT customer_id FROM customer.customers)",
    ),
    # Secure views project only the columns a query names: reaching a column through another
    # scope, a join key, or the whole row must still see the masked, filtered view.
    Attack(
        "pruned-correlated-masked",
        "SELECT (SELECT x.email FROM customer.customers x WHERE x.customer_id = c.customer_id) "
        "AS e FROM customer.customers c",
    ),
    Attack(
        "pruned-using-masked",
        "SELECT count(*) AS n FROM customer.customers a JOIN customer.customers b USING (email) "
        "WHERE a.customer_id <> b.customer_id",
        empty,
    ),
    Attack(
        "pruned-natural-join",
        "SELECT * FROM customer.customers NATURAL JOIN (SELECT email FROM customer.customers) AS e",
    ),
    Attack("pruned-row-value", "SELECT c FROM customer.customers c"),
    Attack(
        "pruned-exists-masked",
        "SELECT count(*) AS n FROM commerce.orders WHERE EXISTS "
        "(SELECT 1 FROM customer.customers d WHERE d.email = '{eu_email}')",
        empty,
    ),
    Attack(
        "pruned-order-by-unselected",
        "SELECT customer_id FROM customer.customers ORDER BY email, phone LIMIT 5",
    ),
    # Type confusion through aliases: the engine's barrier decision follows a column to the secure
    # view it comes from, so a text column renamed like a number (or compared with <, IS…) still
    # gets the barrier, and only EU rows are ever cast.
    Attack(
        "alias-text-as-number",
        "SELECT count(*) AS n FROM (SELECT customer_id, CASE WHEN region = 'US' THEN gender "
        "ELSE '1' END AS amount FROM customer.customers) t WHERE amount = 1",
        eu_count,
        only="duckdb",
    ),
    Attack(
        "alias-text-is-true",
        "SELECT count(*) AS n FROM (SELECT CASE WHEN region = 'US' THEN gender ELSE 'true' END "
        "AS paid FROM customer.customers) t WHERE paid IS TRUE",
        eu_count,
        only="duckdb",
    ),
    Attack(
        "alias-text-less-than",
        "SELECT count(*) AS n FROM (SELECT CASE WHEN region = 'US' THEN gender ELSE '1' END "
        "AS amount FROM customer.customers) t WHERE amount < 2",
        eu_count,
        only="duckdb",
    ),
    Attack(
        "alias-bare-boolean",
        "SELECT count(*) AS n FROM (SELECT CASE WHEN region = 'US' THEN gender ELSE 'true' END "
        "AS paid FROM customer.customers) t WHERE paid",
        eu_count,
        only="duckdb",
    ),
]

# Attacks the gateway must deny, on both engines, with a reason naming what it refused.
# GROUP BY keys of the outermost SELECT are computed by the aggregation on the rows the filter
# passed: served, with no leak, and an error only where the visible rows alone cause it.
AFTER_FILTER = "(computed after the filter)"

DENIED: list[tuple[str, str, str, str]] = [
    # (name, sql, principal, phrases the reason must hold one of, case-insensitively, "|"-separated:
    # PostgreSQL parses some keywords as functions, and has no lambdas, so it denies them earlier)
    ("session-user-role", "SELECT user AS u, current_role AS r", "nobody", "'user'"),
    (
        "session-role-schema",
        "SELECT current_role AS r, current_schema AS s",
        "analyst-eu",
        "'current_role'|current_schema()",
    ),
    (
        "session-beside-data",
        "SELECT customer_id, user FROM customer.customers",
        "analyst-eu",
        "'user'",
    ),
    (
        "session-in-where",
        "SELECT count(*) FROM customer.customers WHERE current_schema = 'main'",
        "analyst-eu",
        "'current_schema'|current_schema()",
    ),
    (
        "session-catalog-in-subquery",
        "SELECT n FROM (SELECT current_catalog AS n FROM customer.customers) t",
        "analyst-eu",
        "'current_catalog'|current_catalog()",
    ),
    ("session-quoted", 'SELECT "user" AS u FROM customer.customers', "analyst-eu", "'user'"),
    (
        "unknown-bare-name",
        "SELECT customer_id, current_database FROM customer.customers",
        "analyst-eu",
        "current_database",
    ),
    (
        "unknown-name-in-cte",
        "WITH t AS (SELECT customer_id FROM customer.customers) SELECT t.region FROM t",
        "analyst-eu",
        "t.region",
    ),
    ("unknown-name-no-table", "SELECT session_id AS s", "nobody", "session_id"),
    (
        "sample-as-alias-columns",
        "SELECT * FROM customer.customers AS x(email, customer_id)",
        "analyst-eu",
        "column list",
    ),
    (
        "lambda-cast-where",
        "SELECT count(*) FROM customer.customers "
        "WHERE len(list_filter([customer_id], x -> CAST(x AS INT) = 1)) > 0",
        "analyst-eu",
        "CAST(x AS INT)|list_filter()",
    ),
    (
        "lambda-cast-group-by",
        "SELECT count(*) FROM customer.customers "
        "GROUP BY list_filter([customer_id], x -> CAST(x AS INT) = 1)",
        "analyst-eu",
        AFTER_FILTER,
    ),
    (
        "lambda-cast-join-on",
        "SELECT count(*) FROM customer.customers c JOIN commerce.orders o "
        "ON len(list_filter([c.customer_id], x -> CAST(x AS INT) = 1)) > 0",
        "analyst-eu",
        "CAST(x AS INT)|list_filter()",
    ),
    (
        "lambda-cast-cte",
        "WITH t AS (SELECT list_transform([customer_id], x -> CAST(x AS INT)) AS v "
        "FROM customer.customers) SELECT count(*) FROM t",
        "analyst-eu",
        "CAST(x AS INT)|list_transform()",
    ),
    (
        "chr-in-subquery",
        "SELECT count(*) FROM (SELECT chr(CASE WHEN customer_id = '{us_id}' THEN -1 ELSE 65 END) "
        "AS c FROM customer.customers) t",
        "analyst-eu",
        "can fail on a value",
    ),
    (
        "repeat-group-by",
        "SELECT count(*) FROM customer.customers GROUP BY "
        "repeat('x', CASE WHEN customer_id = '{us_id}' THEN 2000000000 ELSE 1 END)",
        "analyst-eu",
        AFTER_FILTER,
    ),
    (
        "left-in-subquery",
        "SELECT count(*) FROM (SELECT left(email, CASE WHEN region = 'US' THEN -1 ELSE 1 END) "
        "AS l FROM customer.customers) t",
        "analyst-eu",
        "can fail on a value",
    ),
    (
        "abs-overflow",
        "SELECT count(*) FROM customer.customers WHERE "
        "abs(CASE WHEN customer_id = '{us_id}' THEN -2147483648 ELSE 1 END) > 0",
        "analyst-eu",
        "can fail on a value",
    ),
    (
        "split-part-zero",
        "SELECT count(*) FROM customer.customers WHERE "
        "split_part(email, '@', CASE WHEN region = 'US' THEN 0 ELSE 1 END) = ''",
        "analyst-eu",
        "can fail on a value",
    ),
    (
        "substring-negative",
        "SELECT count(*) FROM customer.customers WHERE "
        "substring(email, 1, CASE WHEN region = 'US' THEN -1 ELSE 1 END) = ''",
        "analyst-eu",
        "can fail on a value",
    ),
    (
        "overflow-in-subquery",
        "SELECT count(*) FROM (SELECT CASE WHEN customer_id = '{us_id}' THEN 2147483647 "
        "ELSE 0 END * 2 AS v FROM customer.customers) t WHERE v > 0",
        "analyst-eu",
        "can fail on a value",
    ),
    (
        "overflow-group-by",
        "SELECT count(*) FROM customer.customers GROUP BY "
        "CASE WHEN customer_id = '{us_id}' THEN 2147483647 + 1 END",
        "analyst-eu",
        AFTER_FILTER,
    ),
    (
        "like-data-pattern",
        "SELECT count(*) FROM customer.customers WHERE 'x' LIKE customer_id",
        "analyst-eu",
        "can fail on a value",
    ),
]


@pytest.mark.parametrize("case", DENIED, ids=[c[0] for c in DENIED])
def test_denied_with_a_reason_naming_it(
    case: tuple[str, str, str, str],
    engine: QueryEngine,
    gateway: Any,
    secrets: Secrets,
    request: pytest.FixtureRequest,
) -> None:
    _, template, who, phrase = case
    sql = _render(Attack("", template), secrets)
    outcome = run(gateway, engine, sql, who=who)
    if phrase == AFTER_FILTER:
        from test_barrier_classes import Case, _on_reduced

        assert_no_leak(outcome, secrets, sql)
        if outcome.error is not None and not isinstance(outcome.error, AccessDenied):
            # Refused before running is fine; an engine error must be the visible rows' own.
            assert isinstance(outcome.error, QueryFailed), outcome.error
            reduced = request.getfixturevalue("reduced")
            assert _on_reduced(engine, Case("after-filter", sql), sql, reduced) is None
        return
    if phrase == "can fail on a value" and getattr(engine, "structural_barrier", False):
        # Behind the engine's barrier the expression only ever sees visible rows: served, and an
        # error only where the visible rows alone cause it (PostgreSQL folds `2147483647 + 1` at
        # plan time, whatever the data); any other error would be a hidden row's.
        assert_no_leak(outcome, secrets, sql)
        if outcome.error is not None:
            import psycopg

            assert isinstance(outcome.error, QueryFailed), outcome.error
            with (
                psycopg.connect(request.getfixturevalue("reduced_postgres")) as conn,
                pytest.raises(psycopg.Error),
            ):
                conn.execute(sql)  # type: ignore[call-overload]
        return
    assert outcome.table is None, "the gateway let it through"
    assert isinstance(outcome.error, AccessDenied), outcome.error
    assert outcome.error.exit_code == 3
    phrases = phrase.split("|")
    if engine.name == "spark":
        # Read as duckdb, the construct may first be refused for not meaning the same on Spark
        # (core/sql/dialect_pairs.py): still a denial naming it.
        phrases.append("does not mean the same on")
    assert any(p.lower() in str(outcome.error).lower() for p in phrases), outcome.error
    assert_no_leak(outcome, secrets, sql)
    received = outcome.received()
    # Nothing about the engine session: role, database, schema or catalogue names.
    for session_value in ("meshgov_reader", "meshgov_adversarial", "memory"):
        assert session_value not in received


def _render(attack: Attack, secrets: Secrets) -> str:
    return attack.sql.format(
        eu_email=secrets.eu_emails[0],
        us_email=secrets.us_emails[0],
        us_id=sorted(secrets.us_customer_ids)[0],
        eu_name=secrets.eu_names[0],
        parquet=MESH / "customer" / "data" / "customers.parquet",
    )


@dataclass
class Outcome:
    table: pa.Table | None
    error: MeshgovError | None

    def received(self) -> str:
        """Everything the user gets: rows in each format, or the error's code and text."""
        if self.table is not None:
            return "\n".join(
                serialize(self.table, fmt).decode("utf-8", errors="replace")
                for fmt in ("json", "csv", "table")
            )
        assert self.error is not None
        return f"{self.error.code} {self.error}"


def syntax(engine: QueryEngine) -> str:
    """The engine whose syntax the suite's SQL is read in: the suite is written for DuckDB and
    PostgreSQL; on Spark the gateway reads it as DuckDB and writes Spark SQL (Spark-syntax attacks
    are in tests/engines/test_spark.py)."""
    return "duckdb" if engine.name == "spark" else engine.name


def run(
    gateway: Any, engine: QueryEngine, sql: str, who: str = "analyst-eu", purpose: str = "analytics"
) -> Outcome:
    read = "duckdb" if engine.name == "spark" else engine.dialect
    try:
        result = execute_query(gateway, engine, sql, principal(who), purpose, read)
    except MeshgovError as exc:  # a denial or a generic engine failure; anything else is a bug
        return Outcome(None, exc)
    return Outcome(result.table, None)


def assert_no_leak(outcome: Outcome, secrets: Secrets, sql: str) -> None:
    received = outcome.received()
    # Values the attacker typed themselves may be echoed back; that reveals nothing.
    leaked = sorted(v for v in secrets.raw_values if v in received and v not in sql)
    assert not leaked, f"raw PII in the output: {leaked[:3]}"
    us_ids = sorted(
        i for i in set(CUSTOMER_ID.findall(received)) & secrets.us_customer_ids if i not in sql
    )
    assert not us_ids, f"non-EU customer ids in the output: {us_ids[:3]}"
    hashes = sorted(h for h in secrets.us_email_hashes if h in received)
    assert not hashes, "pseudonyms of non-EU customers in the output"
    assert HASH_KEY.decode() not in received
    if outcome.table is not None:
        for row in outcome.table.to_pylist():
            assert "US" not in row.values(), f"a non-EU row in the output: {row}"
            assert "USD" not in row.values(), f"a non-EU row in the output: {row}"


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_reveals_nothing(
    attack: Attack, engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    if attack.only is not None and attack.only != syntax(engine):
        pytest.skip(f"{attack.only} syntax")
    sql = _render(attack, secrets)
    outcome = run(gateway, engine, sql)
    assert_no_leak(outcome, secrets, sql)
    if attack.check is not None and outcome.table is not None:
        attack.check(outcome.table, secrets)


def test_there_are_at_least_fifty_attacks() -> None:
    assert len(ATTACKS) >= 50
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE customer.customers",
        "SELECT * FROM read_parquet('x.parquet')",
        "SELECT * FROM information_schema.tables",
        "SELECT 1; SELECT 2",
        "COPY customer.customers TO '/tmp/x.csv'",
        "SELECT * FROM nowhere.unknown_table",
    ],
)
def test_forbidden_statements_are_denied_with_a_reason(
    sql: str, engine: QueryEngine, gateway: Any
) -> None:
    outcome = run(gateway, engine, sql)
    assert isinstance(outcome.error, MeshgovError)
    assert outcome.error.exit_code in {2, 3}
    assert str(outcome.error).strip()


def test_leak_detector_sees_a_cleared_principal_s_raw_emails(
    engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    """Control: the owning domain reads raw values, so the detector must fire on them."""
    outcome = run(
        gateway,
        engine,
        "SELECT email FROM customer.customers WHERE region = 'US' ORDER BY customer_id LIMIT 5",
        who="owner-customer",
        purpose="analytics",
    )
    assert outcome.table is not None, outcome.error
    with pytest.raises(AssertionError):
        assert_no_leak(outcome, secrets, "")


def test_analyst_sees_eu_rows_with_hashed_emails(
    engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    outcome = run(
        gateway,
        engine,
        "SELECT c.customer_id, c.email, c.region FROM customer.customers c ORDER BY 1",
    )
    assert outcome.table is not None, outcome.error
    rows = outcome.table.to_pylist()
    assert len(rows) == secrets.eu_count
    assert {r["region"] for r in rows} == {"EU"}
    assert {r["customer_id"] for r in rows} == secrets.eu_customer_ids
    assert keyed_hash(secrets.eu_emails[0]) in {r["email"] for r in rows}


def test_us_analyst_sees_no_eu_row(engine: QueryEngine, gateway: Any, secrets: Secrets) -> None:
    outcome = run(
        gateway, engine, "SELECT customer_id, region FROM customer.customers", who="analyst-us"
    )
    assert outcome.table is not None, outcome.error
    ids = set(outcome.table.column("customer_id").to_pylist())
    assert ids
    assert not ids & secrets.eu_customer_ids
    assert set(outcome.table.column("region").to_pylist()) == {"US"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM customer.customers",
        "SELECT count(*) FROM commerce.products",
        "SELECT count(*) FROM payments.payments",
    ],
)
def test_principal_without_grants_is_denied(sql: str, engine: QueryEngine, gateway: Any) -> None:
    outcome = run(gateway, engine, sql, who="nobody")
    assert isinstance(outcome.error, AccessDenied)
    assert outcome.error.exit_code == 3


def test_denial_never_reaches_the_engine(gateway: Any) -> None:
    class ExplodingEngine:
        name = "exploding"
        dialect = "duckdb"

        def execute(self, sql: str) -> pa.Table:
            raise AssertionError(f"engine reached with {sql}")

        def close(self) -> None:
            pass

    outcome = run(gateway, ExplodingEngine(), "SELECT * FROM read_parquet('x.parquet')")
    assert isinstance(outcome.error, AccessDenied)


# Legitimate queries: the gateway's rewrite for each engine runs unchanged there, with the same
# rows on both, and hashed identifiers still join across products.
LEGITIMATE = [
    "SELECT c.customer_id, c.email, sum(o.amount) AS total FROM customer.customers c "
    "JOIN commerce.orders o USING (customer_id) GROUP BY 1, 2 ORDER BY 1",
    "SELECT region, count(*) AS n FROM customer.customers GROUP BY region ORDER BY region",
    "WITH spend AS (SELECT customer_id, sum(amount) AS total FROM commerce.orders "
    "GROUP BY customer_id) SELECT c.customer_id, s.total, rank() OVER (ORDER BY s.total DESC, "
    "c.customer_id) AS r FROM customer.customers c JOIN spend s USING (customer_id) "
    "ORDER BY r LIMIT 20",
    "SELECT a.campaign, count(*) AS matched FROM marketing.campaign_audience a "
    "JOIN customer.customers c ON c.email = a.email GROUP BY 1 ORDER BY 1",
    "SELECT p.status, count(*) AS n, sum(p.amount) AS amount FROM payments.payments p "
    "JOIN customer.customers c ON c.customer_id = p.cust_ref GROUP BY 1 ORDER BY 1",
]


def _sorted_rows(table: pa.Table) -> list[str]:
    return sorted(json.dumps(list(row.values()), default=str) for row in table.to_pylist())


@pytest.mark.parametrize("sql", LEGITIMATE)
def test_same_rewrite_same_rows_on_both_engines(
    sql: str,
    duckdb_engine: QueryEngine,
    postgres_engine: QueryEngine,
    gateway: Any,
    secrets: Secrets,
) -> None:
    on_duckdb = run(gateway, duckdb_engine, sql)
    on_postgres = run(gateway, postgres_engine, sql)
    assert on_duckdb.table is not None, on_duckdb.error
    assert on_postgres.table is not None, on_postgres.error
    assert on_duckdb.table.num_rows > 0
    assert _sorted_rows(on_duckdb.table) == _sorted_rows(on_postgres.table)
    assert_no_leak(on_duckdb, secrets, sql)


def test_hashed_emails_join_across_products_and_engines(
    duckdb_engine: QueryEngine, postgres_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    sql = (
        "SELECT a.email AS audience, c.email AS customer FROM marketing.campaign_audience a "
        "JOIN customer.customers c ON c.customer_id = a.client_id ORDER BY 1 LIMIT 50"
    )
    for engine in (duckdb_engine, postgres_engine):
        outcome = run(gateway, engine, sql)
        assert outcome.table is not None, outcome.error
        rows = outcome.table.to_pylist()
        assert rows
        assert all(r["audience"] == r["customer"] for r in rows if r["audience"])
        assert {r["customer"] for r in rows} <= {keyed_hash(e) for e in secrets.eu_emails}
