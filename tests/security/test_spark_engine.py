"""Spark as the third engine: the hash equals DuckDB's and PostgreSQL's, the key shows nowhere,
the session is locked down against every command and file access, row filters run first (or the
query is refused), engine texts are withheld, a timeout cancels, and answers equal DuckDB's and
PostgreSQL's over the example mesh.

One local Spark session serves the whole run (``spark_session``); these tests run without xdist.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from adversarial_world import HASH_KEY, MESH, Secrets, keyed_hash
from test_adversarial import LEGITIMATE, assert_no_leak, run

from meshgov.engines.base import QueryEngine, QueryFailed
from meshgov.errors import MeshgovError, SqlUnsupportedError

pytestmark = pytest.mark.spark


def _key_encodings() -> list[bytes]:
    return [
        HASH_KEY,
        HASH_KEY.hex().encode(),
        HASH_KEY.hex().upper().encode(),
        base64.b64encode(HASH_KEY),
        base64.b64encode(HASH_KEY).rstrip(b"="),
        HASH_KEY.decode().encode("utf-16-le"),
    ]


def _assert_key_absent(text: str | bytes, where: str) -> None:
    data = text.encode("utf-8", errors="replace") if isinstance(text, str) else text
    for encoding in _key_encodings():
        assert encoding not in data, f"the hash key ({encoding[:8]!r}…) is in {where}"


# --- The keyed hash -----------------------------------------------------------------------------

# One value per logical type meshgov hashes: strings, and the types whose text is the same on
# every engine once cast to text. DOUBLE is not here: engines print doubles differently.
HASHED_VALUES = [
    ("string", "CAST('alice@example.com' AS VARCHAR)"),
    ("unicode", "CAST('Zoë Straße' AS VARCHAR)"),
    ("integer", "CAST(1234567890123 AS BIGINT)"),
    ("negative", "CAST(-42 AS BIGINT)"),
    ("decimal", "CAST(12345.670 AS DECIMAL(12, 3))"),
    ("date", "CAST('2024-02-29' AS DATE)"),
    ("timestamp", "CAST('2024-02-29 13:45:01' AS TIMESTAMP)"),
    ("boolean", "CAST(TRUE AS BOOLEAN)"),
]


@pytest.mark.parametrize(("kind", "value"), HASHED_VALUES, ids=[k for k, _ in HASHED_VALUES])
def test_hash_equals_duckdb_for_each_hashed_type(
    kind: str, value: str, spark_engine: Any, duckdb_engine: Any
) -> None:
    import sqlglot

    def hashed(engine: Any) -> str:
        # The mask's own shape: meshgov_hash(CAST(<value> AS <text>)), in the engine's dialect.
        text = sqlglot.transpile(
            f"SELECT meshgov_hash(CAST({value} AS VARCHAR)) AS h",
            read="duckdb",
            write=engine.dialect,
        )[0]
        result = engine.execute_unprotected(text).column("h").to_pylist()[0]
        assert isinstance(result, str)
        return result

    on_spark, on_duckdb = hashed(spark_engine), hashed(duckdb_engine)
    assert on_spark == on_duckdb
    if kind == "string":
        assert on_spark == keyed_hash("alice@example.com")


def test_hashed_emails_equal_duckdb_and_join_across_products(
    spark_engine: QueryEngine, duckdb_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    sql = (
        "SELECT a.email AS audience, c.email AS customer FROM marketing.campaign_audience a "
        "JOIN customer.customers c ON c.customer_id = a.client_id ORDER BY 1 LIMIT 50"
    )
    on_spark, on_duckdb = run(gateway, spark_engine, sql), run(gateway, duckdb_engine, sql)
    assert on_spark.table is not None, on_spark.error
    assert on_duckdb.table is not None, on_duckdb.error
    rows = on_spark.table.to_pylist()
    assert rows
    assert rows == on_duckdb.table.to_pylist()
    assert all(r["audience"] == r["customer"] for r in rows if r["audience"])
    assert {r["customer"] for r in rows} <= {keyed_hash(e) for e in secrets.eu_emails}


# --- The key is never visible -------------------------------------------------------------------

EXPLAIN_MODES = ["", "EXTENDED", "CODEGEN", "COST", "FORMATTED"]


def test_key_in_no_plan_function_description_or_event_log(
    spark_engine: Any, gateway: Any, spark_event_log: Path
) -> None:
    sql = "SELECT email, count(*) AS n FROM customer.customers GROUP BY email ORDER BY n LIMIT 5"
    outcome = run(gateway, spark_engine, sql)
    assert outcome.table is not None, outcome.error
    secure_sql = outcome_sql(gateway, sql)
    assert "meshgov_hash" in secure_sql.lower()  # the generator writes it upper-cased
    _assert_key_absent(secure_sql, "the secure SQL")
    session = spark_engine.session
    for mode in EXPLAIN_MODES:
        # The operator's view of what ran (analysts cannot run EXPLAIN: the guard refuses it).
        rows = session.sql(f"EXPLAIN {mode} {secure_sql}").toArrow().to_pylist()
        plan = "\n".join(str(v) for row in rows for v in row.values())
        if mode != "CODEGEN":  # the generated code only (no whole-stage subtree here)
            assert "meshgov_hash" in plan.lower()
        _assert_key_absent(plan, f"EXPLAIN {mode or 'SIMPLE'}")
    described = session.sql("DESCRIBE FUNCTION EXTENDED meshgov_hash").toArrow().to_pylist()
    _assert_key_absent(json.dumps(described), "DESCRIBE FUNCTION")
    logs = [p for p in spark_event_log.rglob("*") if p.is_file()]
    assert logs, "the test session writes an event log"
    content = b"".join(p.read_bytes() for p in logs)
    assert b"SparkListenerSQLExecutionStart" in content  # the queries are in it...
    _assert_key_absent(content, "the event log")  # ...and the key is not


def outcome_sql(gateway: Any, sql: str) -> str:
    from adversarial_world import principal

    auth = gateway.authorize(sql, principal("analyst-eu"), "analytics", "duckdb", "spark")
    assert auth.allowed, auth.reason
    return str(auth.sql)


def test_variable_substitution_never_reaches_spark(
    spark_engine: Any, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHGOV_HASH_KEY", HASH_KEY.decode())
    for literal in ("${env:MESHGOV_HASH_KEY}", "${system:user.dir}", "${spark.app.name}"):
        sql = f"SELECT '{literal}' AS x FROM customer.customers LIMIT 1"
        outcome = run(gateway, spark_engine, sql)
        assert outcome.table is not None, outcome.error
        assert outcome.table.column("x").to_pylist() == [literal]
        # Even submitted directly to the session, Spark does not substitute.
        direct = spark_engine.execute_unprotected(f"SELECT '{literal}' AS x")
        assert direct.column("x").to_pylist() == [literal]


# --- Lock-down ----------------------------------------------------------------------------------

# Each reaches outside the data on a default Spark session; the engine must refuse every one
# before Spark sees it (spark.sql() runs a command at call time).
REFUSED_BY_ENGINE = [
    "SET spark.sql.variable.substitute=true",
    "RESET",
    "ADD JAR /tmp/x.jar",
    "ADD FILE /etc/passwd",
    "CREATE TEMPORARY VIEW customers AS SELECT 1 AS email",
    "CREATE TEMPORARY VIEW v USING parquet OPTIONS (path '/etc')",
    "CACHE TABLE customer.customers",
    "UNCACHE TABLE customer.customers",
    "INSERT OVERWRITE DIRECTORY '/tmp/out' USING parquet SELECT * FROM customer.customers",
    "CREATE TABLE t AS SELECT * FROM customer.customers",
    "DROP TEMPORARY FUNCTION meshgov_hash",
    "DECLARE v INT DEFAULT 1",
    "EXECUTE IMMEDIATE 'SELECT email FROM customer.customers'",
    "SELECT input_file_name() FROM customer.customers",
    "SELECT _metadata.file_path FROM customer.customers",
    "SELECT m.file_path FROM (SELECT _metadata AS m FROM customer.customers) t",
    "SELECT * FROM parquet.`/etc`",
    "SELECT * FROM text.`/etc/passwd`",
    "SELECT reflect('java.lang.System', 'getenv', 'MESHGOV_HASH_KEY')",
    "SELECT java_method('java.lang.System', 'getenv', 'HOME')",
    "SELECT TRANSFORM(email) USING 'cat' AS (x) FROM customer.customers",
    "SELECT raise_error(email) FROM customer.customers",
    "SELECT current_user()",
    "SELECT * FROM read_files('/etc')",
    "SHOW TABLES",
    "DESCRIBE FUNCTION EXTENDED meshgov_hash",
    "EXPLAIN SELECT * FROM customer.customers",
    "USE customer",
    "REFRESH TABLE customer.customers",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("sql", REFUSED_BY_ENGINE)
def test_engine_refuses_commands_and_file_access(sql: str, spark_engine: Any) -> None:
    tables_before = {t.name for t in spark_engine.session.catalog.listTables("customer")}
    with pytest.raises(MeshgovError) as refused:
        spark_engine.execute(sql)
    _assert_key_absent(str(refused.value), "the error")
    assert "/etc" not in str(refused.value)
    # Nothing ran: no new table or view, and the session's locked settings are intact.
    assert {t.name for t in spark_engine.session.catalog.listTables("customer")} == tables_before
    assert spark_engine.session.conf.get("spark.sql.variable.substitute") == "false"


# The guard on Spark's own parse of the text, independent of sqlglot's checks before it.
GUARDED = [
    "SET a=b",
    "CACHE TABLE customer.customers",
    "INSERT INTO customer.customers SELECT * FROM customer.customers",
    "SELECT input_file_name() FROM customer.customers",
    "SELECT _metadata FROM customer.customers",
    "SELECT * FROM parquet.`/etc`",
    "SELECT * FROM customer.customers WITH (path '/etc')",
    "SELECT * FROM other.table_not_in_the_mesh",
    "SELECT `(email)?+.+` FROM customer.customers",
    "SELECT * FROM read_files('/etc')",
    "SELECT * FROM IDENTIFIER('customer.customers')",
    "SELECT c.email FROM (SELECT email FROM customer.customers) c "
    "JOIN IDENTIFIER('customer.customers') r ON r.email = c.email",
    "SELECT IDENTIFIER('email') FROM customer.customers",
    "WITH x AS (SELECT * FROM customer.customers WITH (path '/etc')) SELECT * FROM x",
    "DECLARE OR REPLACE v INT",
]


@pytest.mark.parametrize("sql", GUARDED)
def test_parsed_plan_guard_refuses(sql: str, spark_engine: Any) -> None:
    with pytest.raises(SqlUnsupportedError):
        spark_engine.guard(sql)


def test_parsed_plan_guard_passes_generated_queries(spark_engine: Any, gateway: Any) -> None:
    for sql in LEGITIMATE:
        spark_engine.guard(outcome_sql(gateway, sql))


def test_engine_error_text_is_withheld(spark_engine: Any, secrets: Secrets) -> None:
    # Submitted without the gateway (which would refuse it): Spark's message quotes the value.
    with pytest.raises(QueryFailed) as failed:
        spark_engine.execute_unprotected(
            "SELECT CAST(email AS INT) FROM customer.customers WHERE region = 'US'"
        )
    assert failed.value.kind == "conversion"
    assert "@" not in str(failed.value)
    assert not [v for v in secrets.raw_values if v in str(failed.value)]


# Tens of seconds of work on two cores: it ends before that only if it is cancelled.
LONG_QUERY = "SELECT count(*) AS n FROM range(0, 100000) a CROSS JOIN range(0, 300000) b"


def test_timeout_cancels_the_running_job(spark_session: Any) -> None:
    from meshgov.engines.spark import SparkEngine

    engine = SparkEngine(spark_session, set(), timeout_ms=1500, owns_session=False)
    with pytest.raises(QueryFailed) as failed:
        engine.execute(LONG_QUERY)
    assert failed.value.kind == "timeout"
    assert not spark_session.sparkContext.statusTracker().getActiveJobsIds()
    # The session still serves the next query, and the tag is gone from this thread's jobs.
    assert engine.execute("SELECT 1 AS one").column("one").to_pylist() == [1]
    assert not [t for t in spark_session.sparkContext.getJobTags() if t.startswith("meshgov-")]


def test_a_client_cancel_interrupts_the_running_job(spark_session: Any) -> None:
    import threading

    from meshgov.engines.base import CANCEL_SCOPE, CancelScope
    from meshgov.engines.spark import SparkEngine

    engine = SparkEngine(spark_session, set(), owns_session=False)
    scope = CancelScope()
    threading.Timer(1.0, scope.cancel, args=("cancelled by the client",)).start()
    token = CANCEL_SCOPE.set(scope)
    try:
        with pytest.raises(QueryFailed) as failed:
            engine.execute(LONG_QUERY)
    finally:
        CANCEL_SCOPE.reset(token)
    assert failed.value.kind == "cancelled"
    assert str(failed.value) == "cancelled by the client"


# --- Row filters first: Spark declares no barrier, so the gateway denies what could fail first ---


def test_spark_has_no_structural_barrier(spark_engine: Any) -> None:
    from meshgov.execution import structural_barrier

    assert structural_barrier(spark_engine) is False


@pytest.mark.parametrize("read", ["duckdb", "spark"])
def test_fallible_predicate_over_a_filtered_table_is_denied_on_spark(
    read: str, spark_engine: Any, gateway: Any, secrets: Secrets
) -> None:
    """Spark's CAST fails on bad input (ANSI, locked on): read as Spark SQL it is a cast that can
    fail, not sqlglot's Spark-3 TryCast (which would pass it as safe before the row filter)."""
    from adversarial_world import principal

    from meshgov.errors import AccessDenied
    from meshgov.execution import execute_query

    # A cast to DATE: the dialect pairs refuse a text-to-integer cast for Spark before this rule.
    sql = (
        "SELECT count(*) FROM customer.customers WHERE CAST(full_name AS DATE) > DATE '2000-01-01'"
    )
    with pytest.raises(AccessDenied, match="can fail on a value"):
        execute_query(gateway, spark_engine, sql, principal("analyst-eu"), "analytics", read)


# --- Answers equal across engines ---------------------------------------------------------------

ANALYST_QUERIES = [
    *LEGITIMATE,
    "SELECT c.email, sum(o.amount) AS spend FROM customer.customers c JOIN commerce.orders o "
    "ON o.customer_id = c.customer_id GROUP BY c.email ORDER BY spend DESC, c.email LIMIT 10",
    "SELECT gender, count(*) AS n, min(signup_date) AS first, max(signup_date) AS last "
    "FROM customer.customers GROUP BY gender ORDER BY gender",
    "SELECT customer_id, birth_date FROM customer.customers ORDER BY customer_id LIMIT 20",
    "SELECT count(DISTINCT customer_id) AS buyers, count(*) AS orders FROM commerce.orders",
    "SELECT o.customer_id, count(*) AS n FROM commerce.orders o WHERE o.amount > 100 "
    "GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 10",
    "SELECT customer_id FROM customer.customers WHERE customer_id IN "
    "(SELECT customer_id FROM commerce.orders) ORDER BY 1 LIMIT 10",
    "SELECT region, phone FROM customer.customers ORDER BY customer_id LIMIT 10",
    "SELECT customer_id FROM customer.customers EXCEPT SELECT customer_id FROM commerce.orders "
    "ORDER BY 1",
]


def _normalised(table: pa.Table) -> list[str]:
    """Rows as sorted JSON; numbers and times in one form (Spark's types may be wider/narrower:
    docs/enforcement.md)."""

    def value(v: Any) -> Any:
        if isinstance(v, decimal.Decimal | float):
            return round(float(v), 6)
        if isinstance(v, dt.datetime):
            return v.replace(tzinfo=None).isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        return v

    return sorted(json.dumps([value(v) for v in row.values()]) for row in table.to_pylist())


@pytest.mark.parametrize("sql", ANALYST_QUERIES)
def test_same_answers_on_duckdb_postgresql_and_spark(
    sql: str,
    spark_engine: QueryEngine,
    duckdb_engine: QueryEngine,
    postgres_engine: QueryEngine,
    gateway: Any,
    secrets: Secrets,
) -> None:
    engines = (duckdb_engine, postgres_engine, spark_engine)
    outcomes = {e.name: run(gateway, e, sql) for e in engines}
    for name, outcome in outcomes.items():
        assert outcome.table is not None, (name, outcome.error)
    expected = _normalised(outcomes["duckdb"].table)  # type: ignore[arg-type]
    assert expected
    assert _normalised(outcomes["postgresql"].table) == expected  # type: ignore[arg-type]
    assert _normalised(outcomes["spark"].table) == expected  # type: ignore[arg-type]
    assert_no_leak(outcomes["spark"], secrets, sql)


def test_cli_names_spark_engines() -> None:
    from meshgov.engines.base import engine_kind

    for url in ("spark", "local[2]", "spark://10.0.0.1:7077", "sc://spark.internal:15002"):
        assert engine_kind(url) == "spark"
    assert os.fspath(MESH)


def test_a_session_without_the_lock_down_is_refused(spark_session: Any) -> None:
    from meshgov.engines.spark import verify_locked
    from meshgov.errors import BackendUnavailable

    verify_locked(spark_session)
    spark_session.conf.set("spark.sql.runSQLOnFiles", "true")
    try:
        with pytest.raises(BackendUnavailable, match="runSQLOnFiles"):
            verify_locked(spark_session)
    finally:
        spark_session.conf.set("spark.sql.runSQLOnFiles", "false")
