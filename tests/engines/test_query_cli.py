"""`meshgov query` and `meshgov load`: stdout carries only the result, exit codes, both engines."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_query import invoke_query
from typer.testing import CliRunner

from meshgov.cli import app

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
POLICIES = ROOT / "policies"
KEY = "cli-test-key"
ISSUE_QUERY = (
    "SELECT c.email, sum(o.amount) AS total FROM customer.customers c "
    "JOIN commerce.orders o USING (customer_id) GROUP BY 1"
)


@pytest.fixture(autouse=True)
def hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGOV_HASH_KEY", KEY)


def query(principal: str, sql: str, *extra: str) -> tuple[int, bytes, str]:
    result = invoke_query(principal, sql, *extra)
    return result.exit_code, result.stdout_bytes, result.stderr


def customers() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(
        MESH / "customer" / "data" / "customers.parquet"
    ).to_pylist()
    return rows


def test_issue_query_returns_hashed_emails_of_eu_customers_only() -> None:
    code, out, err = query("analyst-eu", ISSUE_QUERY, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    eu_hashes = {
        hashlib.sha256(KEY.encode() + str(r["email"]).encode()).hexdigest()
        for r in customers()
        if r["region"] == "EU"
    }
    raw = {str(r["email"]) for r in customers()}
    assert rows
    assert {r["email"] for r in rows} <= eu_hashes
    assert not any(email in out.decode() for email in raw)
    assert "row(s)" in err  # messages go to stderr, never into the result


def test_arrow_format_is_an_ipc_stream_on_stdout() -> None:
    code, out, err = query(
        "analyst-eu", "SELECT region, count(*) AS n FROM customer.customers GROUP BY region",
        "--format", "arrow",
    )  # fmt: skip
    assert code == 0, err
    table = pa.ipc.open_stream(out).read_all()
    assert table.column_names == ["region", "n"]
    assert table.column("region").to_pylist() == ["EU"]


def test_csv_and_table_formats() -> None:
    sql = "SELECT product_id, category FROM commerce.products ORDER BY product_id LIMIT 2"
    code, out, _ = query("analyst-eu", sql, "--format", "csv")
    assert code == 0
    assert out.decode().splitlines()[0] == '"product_id","category"'
    code, out, _ = query("analyst-eu", sql)
    assert code == 0
    assert "(2 rows)" in out.decode()


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT * FROM read_parquet('x.parquet')", "read_parquet"),
        ("DROP TABLE customer.customers", "DROP"),
        ("SELECT * FROM information_schema.tables", "information_schema"),
        ("SELECT * FROM nowhere.unknown", "unknown"),
        (
            "SELECT segment, avg(failed_payment_count) FROM marketing.customer_360 GROUP BY 1",
            "column 'failed_payment_count' of table 'marketing.customer_360'",
        ),
    ],
)
def test_denial_exits_3_naming_what_and_why(sql: str, fragment: str) -> None:
    code, out, err = query("analyst-eu", sql)
    assert code == 3
    assert out == b""
    assert fragment.lower() in err.lower()


def test_star_leaves_the_hidden_column_out() -> None:
    code, out, err = query(
        "analyst-eu", "SELECT * FROM marketing.customer_360 LIMIT 1", "-f", "csv"
    )
    assert code == 0, err
    header = out.decode().splitlines()[0]
    assert "segment" in header
    assert "failed_payment_count" not in header


def test_principal_without_grants_is_denied() -> None:
    code, out, err = query("nobody", "SELECT count(*) FROM customer.customers")
    assert code == 3
    assert out == b""
    assert "customer" in err


def test_engine_failure_withholds_the_engine_text() -> None:
    code, out, err = query("analyst-eu", "SELECT CAST(email AS INT) FROM customer.customers")
    assert code in {2, 3}
    assert out == b""
    assert "@" not in err


def test_a_mistyped_column_is_named_exit_3() -> None:
    # The gateway resolves every name before the engine sees it: an unknown name is a denial.
    code, out, err = query("analyst-eu", "SELECT emial FROM customer.customers")
    assert code == 3
    assert out == b""
    assert "column 'emial' does not exist" in err
    assert "@" not in err


def test_bad_principal_file_and_format_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("id: [unclosed\n")
    result = CliRunner().invoke(
        app, ["query", "--catalog", str(MESH), "--principal", str(bad), "SELECT 1"]
    )
    assert result.exit_code == 2
    assert str(bad) in result.stderr
    code, _, err = query("analyst-eu", "SELECT 1", "--format", "xml")
    assert code == 2
    assert "unknown format" in err


def test_unknown_engine_exits_2() -> None:
    code, _, err = query("analyst-eu", "SELECT 1", "--engine", "mysql://x")
    assert code == 2
    assert "unknown engine" in err


def test_unreachable_postgres_exits_4() -> None:
    code, _, err = query(
        "analyst-eu", "SELECT 1", "--engine", "postgresql://nobody@127.0.0.1:1/none"
    )
    assert code == 4
    assert "unavailable" in err or "connect" in err


def test_load_needs_a_postgres_url() -> None:
    result = CliRunner().invoke(app, ["load", "--catalog", str(MESH), "--engine", "duckdb"])
    assert result.exit_code == 2


def test_load_then_query_on_postgres(pg_admin_dsn: str) -> None:
    from meshgov.engines import postgres

    name = f"meshgov_cli_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    try:
        loaded = CliRunner().invoke(app, ["load", "--catalog", str(MESH), "--engine", dsn])
        assert loaded.exit_code == 0, loaded.stderr
        assert "customer.customers: 3000 rows" in loaded.stderr
        assert loaded.stdout == ""
        code, out, err = query("analyst-eu", ISSUE_QUERY, "--format", "json", "--engine", dsn)
        assert code == 0, err
        on_postgres = sorted(json.dumps(r, sort_keys=True) for r in json.loads(out))
        code, out, err = query("analyst-eu", ISSUE_QUERY, "--format", "json")
        assert code == 0, err
        on_duckdb = sorted(json.dumps(r, sort_keys=True) for r in json.loads(out))
        assert on_postgres == on_duckdb
    finally:
        postgres.drop_database(pg_admin_dsn, name)
