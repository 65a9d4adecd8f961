"""`meshgov rewrite` and `meshgov query`: invalid input exits 2, a denial exits 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.cli import app
from meshgov.core.sql.parse import DIALECTS

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
PRINCIPAL = MESH / "principals" / "analyst-eu.yaml"
COMMON = [
    "--catalog",
    str(MESH),
    "--principal",
    str(PRINCIPAL),
    "--policies",
    str(ROOT / "policies"),
]


def _run(command: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [command, *COMMON, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("command", "option"), [("rewrite", "--dialect"), ("rewrite", "--to"), ("query", "--dialect")]
)
def test_an_unknown_dialect_is_a_usage_error(command: str, option: str) -> None:
    code, out, err = _run(command, option, "klingon", "SELECT 1")
    assert code == 2
    assert out == ""  # refused before any work: nothing on stdout
    assert "invalid_dialect" in err
    assert f"{option}: unknown SQL dialect 'klingon'" in err
    assert all(name in err for name in DIALECTS)


def test_postgresql_is_an_alias_of_postgres() -> None:
    code, out, _ = _run("rewrite", "--dialect", "PostgreSQL", "--to", "trino", "SELECT 1")
    assert code == 0
    assert json.loads(out)["allowed"] is True


@pytest.mark.parametrize("command", ["rewrite", "query"])
def test_unparseable_sql_exits_2_and_a_denial_exits_3(command: str) -> None:
    code, _, err = _run(command, "--purpose", "analytics", "SELEC 1")
    assert code == 2
    assert "invalid_sql" in err
    hidden = "SELECT segment, failed_payment_count FROM marketing.customer_360"
    code, _, err = _run(command, "--purpose", "analytics", hidden)
    assert code == 3
    assert "failed_payment_count" in err


def test_a_result_over_the_row_cap_exits_2_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGOV_RESULT_MAX_ROWS", "10")
    sql = "SELECT unnest(generate_series(1, 100)) AS x"
    code, out, err = _run("query", "--purpose", "analytics", sql)
    assert code == 2
    assert out == ""
    assert "result_too_large" in err and "MESHGOV_RESULT_MAX_ROWS" in err
    code, out, _ = _run("query", "--purpose", "analytics", "--format", "csv", sql + " LIMIT 10")
    assert code == 0
    assert out.split() == ['"x"', *(str(i) for i in range(1, 11))]
