"""The dialect-pair table: documented, silent for a query read in the engine's own dialect, and
refusals named and classed as denials (exit 3 / HTTP 403) by the CLI and the service."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from typer.testing import CliRunner

from meshgov.cli import app
from meshgov.core.sql.dialect_pairs import RULES, rules_for, translate
from meshgov.errors import SqlUnsupportedError

ROOT = Path(__file__).resolve().parents[3]


def test_every_rule_is_in_the_documented_table() -> None:
    docs = (ROOT / "docs" / "enforcement.md").read_text(encoding="utf-8")
    for rule in RULES:
        row = f"| {rule.construct} | {rule.read} | {rule.engine} | {rule.action} |"
        assert row in docs, f"docs/enforcement.md lacks the row of {rule.construct}"


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_nothing_changes_when_the_read_dialect_is_the_engines(engine: str) -> None:
    sql = "SELECT n / 2, SUBSTR(s, -3, 2), TRY_CAST(s AS INT), GREATEST(a, NULL) FROM t"
    statement = sqlglot.parse_one(sql, read=engine)
    before = statement.sql(dialect=engine)
    assert not translate(statement, engine, engine)
    assert statement.sql(dialect=engine) == before
    assert rules_for(engine, engine) == []


def test_a_refusal_names_the_construct_and_the_pair() -> None:
    statement = sqlglot.parse_one("SELECT TRY_CAST(s AS INT) FROM t", read="trino")
    with pytest.raises(SqlUnsupportedError) as caught:
        translate(statement, "trino", "postgres")
    assert "TRY_CAST" in caught.value.message
    assert "trino" in caught.value.message and "postgres" in caught.value.message


def test_rules_for_a_pair_are_the_rows_that_name_it() -> None:
    constructs = {rule.construct for rule in rules_for("snowflake", "postgres")}
    assert "`REGEXP_LIKE`/`RLIKE` (full match)" in constructs
    assert "integer `/`" not in constructs  # only postgres and trino divide integers so
    assert "integer `/`" in {rule.construct for rule in rules_for("trino", "duckdb")}


def test_the_cli_refuses_with_exit_3_naming_the_construct() -> None:
    mesh = ROOT / "examples" / "mesh"
    result = CliRunner().invoke(
        app,
        [
            "query", "--catalog", str(mesh),
            "--principal", str(mesh / "principals" / "analyst-eu.yaml"),
            "--purpose", "analytics", "--policies", str(ROOT / "policies"),
            "--dialect", "bigquery",
            "SELECT SUBSTR(currency, -2, 2) AS c FROM commerce.orders",
        ],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "SUBSTR" in result.stderr and "bigquery" in result.stderr
    assert result.stdout == ""


def test_greatest_over_a_subquery_is_refused_rather_than_copied() -> None:
    statement = sqlglot.parse_one("SELECT GREATEST(a, (SELECT max(b) FROM u)) FROM t", "trino")
    with pytest.raises(SqlUnsupportedError) as caught:
        translate(statement, "trino", "postgres")
    assert "GREATEST of a subquery" in caught.value.message


# --- Spark as the engine (the answers are compared on a real Spark session in
# tests/security/test_spark_dialect_parity.py) ---------------------------------------------------


def _on_spark(sql: str, read: str = "duckdb") -> str:
    from meshgov.core.manifest import LogicalType
    from meshgov.core.sql.spark_dialect import MeshgovSpark

    types = {
        "x": {LogicalType.number},
        "amount": {LogicalType.decimal},
        "n": {LogicalType.integer},
        "d": {LogicalType.date},
        "e": {LogicalType.date},
        "s": {LogicalType.string},
    }
    statement = sqlglot.parse_one(sql, read=read)
    translate(statement, read, "spark", types)
    return statement.sql(dialect=MeshgovSpark)


@pytest.mark.parametrize(
    ("read", "sql", "expected"),
    [
        ("duckdb", "SELECT CAST(amount AS INT), CAST(x AS INT), CAST(n AS INT) FROM t",
         "SELECT CAST(ROUND(amount) AS INT), CAST(BROUND(x) AS INT), CAST(n AS INT) FROM t"),
        ("duckdb", "SELECT isodow(d), extract(dow FROM d), dayofweek(d) FROM t",
         "SELECT EXTRACT(DOW_ISO FROM d), (EXTRACT(DOW_ISO FROM d) % 7), "
         "(EXTRACT(DOW_ISO FROM d) % 7) FROM t"),
        ("duckdb", "SELECT quantile_cont(x, 0.9), median(n) FROM t",
         "SELECT PERCENTILE(x, 0.9), PERCENTILE(CAST(n AS DOUBLE), 0.5) FROM t"),
        ("postgres", "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM t",
         "SELECT PERCENTILE(CAST(amount AS DOUBLE), 0.5) FROM t"),
        ("duckdb", "SELECT dayname(d), d - e FROM t",
         "SELECT DATE_FORMAT(d, 'EEEE'), DATEDIFF(DAY, e, d) FROM t"),
        ("postgres", "SELECT n / 2, round(x) FROM t", "SELECT n DIV 2, BROUND(x) FROM t"),
        ("duckdb", "SELECT n // 2, amount // 2 FROM t", "SELECT n DIV 2, amount / 2 FROM t"),
        ("duckdb", "SELECT a FROM t QUALIFY row_number() OVER (ORDER BY a) = 1 ORDER BY a LIMIT 3",
         "SELECT a FROM (SELECT a FROM (SELECT a, ROW_NUMBER() OVER (ORDER BY a NULLS LAST) AS "
         "_w FROM t) AS _t WHERE _w = 1) AS _q ORDER BY a NULLS LAST LIMIT 3"),
    ],
)  # fmt: skip
def test_spark_rewrites(read: str, sql: str, expected: str) -> None:
    assert _on_spark(sql, read) == expected


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        ("SELECT ARRAY_AGG(n ORDER BY n)[1] FROM t", "ARRAY_AGG"),
        ("SELECT CAST(s AS INT) FROM t", "CAST to an integer type of text"),
        ("SELECT quantile_cont(amount, 0.5) FROM t", "of a decimal"),
        ("SELECT regexp_replace(s, 'a', 'b') FROM t", "without the flag 'g'"),
        ("SELECT regexp_replace(s, '(a)', '\\1', 'g') FROM t", "replacement"),
        ("SELECT date_diff('month', d, e) FROM t", "in months"),
        ("SELECT left(s, -2) FROM t", "LEFT"),
        ("SELECT * FROM t QUALIFY row_number() OVER (ORDER BY a) = 1", "QUALIFY with SELECT *"),
        ("SELECT list_sort([n]) FROM t", "list_sort"),
    ],
)
def test_spark_refusals_name_the_construct(sql: str, construct: str) -> None:
    with pytest.raises(SqlUnsupportedError) as refused:
        _on_spark(sql)
    assert construct in refused.value.message
    assert "spark engine" in refused.value.message


def test_spark_read_as_databricks_is_not_translated() -> None:
    statement = sqlglot.parse_one("SELECT CAST(s AS INT) FROM t", read="databricks")
    assert not translate(statement, "databricks", "spark")
