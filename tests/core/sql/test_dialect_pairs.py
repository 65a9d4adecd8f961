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
