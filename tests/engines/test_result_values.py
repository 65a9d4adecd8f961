"""Results Python or JSON cannot hold: out-of-range dates and timestamps, NaN and infinities.

They used to crash ``records()`` (``OverflowError: date value out of range``, exit 4) or give JSON
with bare ``NaN``/``Infinity`` literals that strict parsers reject. Each format now renders them,
the same way in the text grid, CLI JSON and HTTP JSON (tests/api/test_query_result_values.py).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cli_query import invoke_query

from meshgov.results import column_values, json_bytes, records, serialize

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"

ODD_DATES = (
    "SELECT CAST('infinity' AS DATE) AS d_inf, CAST('-infinity' AS DATE) AS d_ninf, "
    "DATE '20000-01-01' AS d_big, DATE '0044-03-15 (BC)' AS d_bc, "
    "CAST('infinity' AS TIMESTAMP) AS t_inf, TIMESTAMP '20000-01-01 10:00:00' AS t_big, "
    "TIMESTAMPTZ '20000-01-01 10:00:00.5+00' AS tz_big, "
    "TIMESTAMP_NS '2020-01-01 00:00:00.123456789' AS t_ns, DATE '2020-01-02' AS d_ok"
)
EXPECTED = {
    "d_inf": "infinity",
    "d_ninf": "-infinity",
    "d_big": "20000-01-01",
    "d_bc": "-0043-03-15",
    "t_inf": "infinity",
    "t_big": "20000-01-01 10:00:00",
    "tz_big": "20000-01-01 10:00:00.500000+00:00",
    "t_ns": "2020-01-01 00:00:00.123456789",
    "d_ok": "2020-01-02",
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def strict_json(text: str | bytes) -> Any:
    """RFC 8259 JSON only: Python's json accepts NaN and Infinity unless told not to."""
    return json.loads(text, parse_constant=_reject_constant)


def query(principal: str, sql: str, *extra: str) -> tuple[int, str, str]:
    result = invoke_query(principal, sql, *extra)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGOV_HASH_KEY", "results-test-key")


def test_strict_parser_rejects_bare_constants() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        strict_json('[{"n": NaN}]')


def test_json_out_of_range_dates_are_text() -> None:
    code, out, err = query("nobody", ODD_DATES, "-f", "json")
    assert code == 0, err
    assert strict_json(out) == [EXPECTED]


def test_table_out_of_range_dates_are_the_same_text() -> None:
    code, out, err = query("nobody", ODD_DATES, "-f", "table")
    assert code == 0, err
    row = [cell.strip() for cell in out.splitlines()[2].split(" | ")]
    assert row == list(EXPECTED.values())


def test_csv_writes_infinity_not_an_arrow_placeholder() -> None:
    code, out, err = query("nobody", ODD_DATES, "-f", "csv")
    assert code == 0, err
    assert "out of range" not in out
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["d_inf"] == "infinity" and row["d_ninf"] == "-infinity"
    assert row["t_inf"] == "infinity"
    assert row["d_big"] == "20000-01-01" and row["d_ok"] == "2020-01-02"


def test_date_arithmetic_past_year_9999_on_a_product() -> None:
    sql = "SELECT birth_date + INTERVAL 3000000 DAY AS d FROM customer.customers LIMIT 1"
    for fmt in ("table", "json"):
        code, _out, err = query("analyst-eu", sql, "-f", fmt)
        assert code == 0, err
        assert "Traceback" not in err and "internal_error" not in err
    rows = strict_json(query("analyst-eu", sql, "-f", "json")[1])
    assert len(rows) == 1 and int(rows[0]["d"].split("-")[0]) > 9999


def test_nested_values_with_out_of_range_dates() -> None:
    sql = "SELECT [DATE '20000-01-01', NULL] AS l, {'a': CAST('infinity' AS DATE), 'b': 1} AS s"
    code, out, err = query("nobody", sql, "-f", "json")
    assert code == 0, err
    assert strict_json(out) == [{"l": ["20000-01-01", None], "s": {"a": "infinity", "b": 1}}]


def test_json_nan_and_infinities_are_strings() -> None:
    code, out, err = query(
        "nobody",
        "SELECT 1/0, -1/0 AS m, 0/0 AS n, CAST(1.5 AS DOUBLE) AS x, NULL AS z",
        "-f",
        "json",
    )
    assert code == 0, err
    assert strict_json(out) == [
        {"(1 / 0)": "Infinity", "m": "-Infinity", "n": "NaN", "x": 1.5, "z": None}
    ]


def test_results_module_directly() -> None:
    table = pa.table(
        {
            "d": pa.array([2**31 - 1, -(2**31 - 1), 0, None], type=pa.int32()).cast(pa.date32()),
            "f": pa.array([float("nan"), float("inf"), -float("inf"), 2.0]),
            "t": pa.array([2**63 - 1, 0, 253402300800 * 10**6, None], type=pa.timestamp("us")),
        }
    )
    rows = records(table)
    assert [r["d"] for r in rows][:2] == ["infinity", "-infinity"]
    assert str(rows[2]["d"]) == "1970-01-01" and rows[3]["d"] is None
    assert rows[2]["t"] == "10000-01-01 00:00:00"
    assert strict_json(serialize(table, "json"))[0] == {
        "d": "infinity",
        "f": "NaN",
        "t": "infinity",
    }
    assert strict_json(json_bytes({"a": [float("nan"), {"b": float("-inf")}]})) == {
        "a": ["NaN", {"b": "-Infinity"}]
    }
    chunked = pa.chunked_array([pa.array([0], pa.date32()), pa.array([2**31 - 1], pa.date32())])
    assert [str(v) for v in column_values(chunked)] == ["1970-01-01", "infinity"]
    # Arrow IPC keeps the stored values untouched.
    stream = pa.ipc.open_stream(serialize(table, "arrow")).read_all()
    assert stream.select(["d", "t"]).equals(table.select(["d", "t"]))  # NaN != NaN


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (0, "1970-01-01"),
        (-719162, "0001-01-01"),
        (-719163, "0000-12-31"),
        (2932896, "9999-12-31"),
        (2932897, "10000-01-01"),
        (6585322, "20000-01-01"),
        (-735160, "-0043-03-15"),
    ],
)
def test_day_counts_render_as_proleptic_gregorian(days: int, text: str) -> None:
    table = pa.table({"d": pa.array([days], pa.int32()).cast(pa.date32())})
    assert str(records(table)[0]["d"]) == text
