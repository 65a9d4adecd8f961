"""Differential test: the same query, read in each dialect, run through the gateway on each engine,
against what the read dialect means.

The reference answer of a case, for a read dialect:
- duckdb and postgres: the query as written, run natively on that engine (no gateway);
- trino, snowflake, bigquery, spark: computed in Python from the fixture's CSV by that dialect's
  documented semantics (the oracles below), never from meshgov's output.
A reference may be ``ERROR`` (the read dialect fails the query): then the gateway must fail too.
Each case names the pairs on which the gateway refuses it (a denial naming the construct, the rows
of docs/enforcement.md); anywhere else a refusal is a failure, and so is any answer other than the
reference.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from meshgov.catalog import Catalog, load_catalog
from meshgov.core.principal import Principal
from meshgov.engines.base import QueryEngine
from meshgov.errors import AccessDenied, MeshgovError
from meshgov.execution import execute_query

MESH = Path(__file__).resolve().parents[1] / "fixtures" / "dialects" / "mesh"
ROOT = Path(__file__).resolve().parents[2]
HASH_KEY = b"dialect-differential-key"
READS = ("duckdb", "postgres", "trino", "snowflake", "bigquery", "spark")
ENGINES = ("duckdb", "postgres")
ERROR = "<error>"
ANALYST = Principal(id="lab-analyst", groups=("analysts",), purpose="analytics")

Row = dict[str, Any]
Oracle = Callable[[list[Row]], list[tuple[Any, ...]] | str]


def _samples() -> list[Row]:
    """The fixture rows with their declared types, ordered by id."""
    rows: list[Row] = []
    with (MESH / "data" / "samples.csv").open(newline="") as handle:
        for raw in csv.DictReader(handle):

            def value(name: str, convert: Callable[[str], Any], raw: dict[str, str] = raw) -> Any:
                text = raw[name]
                return None if text == "" else convert(text)

            rows.append(
                {
                    "id": int(raw["id"]),
                    "n": value("n", int),
                    "m": value("m", int),
                    "price": value("price", Decimal),
                    "ratio": value("ratio", float),
                    "label": raw["label"],
                    "code": raw["code"],
                    "day": dt.date.fromisoformat(raw["day"]),
                    "flag": value("flag", lambda t: t == "true"),
                    "doc": raw["doc"],
                }
            )
    return sorted(rows, key=lambda r: r["id"])


# --- the dialects' semantics, stated independently of any engine --------------------------------


def trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero (Trino, PostgreSQL, BigQuery DIV, Spark div)."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def half_away(x: float | Decimal) -> int:
    """Round half away from zero (Trino, Snowflake and BigQuery casts to integers)."""
    return int(Decimal(str(x)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def sunday_first(day: dt.date, base: int) -> int:
    return day.isoweekday() % 7 + base


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def sunday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.isoweekday() % 7)


def months_between(start: dt.date, end: dt.date) -> int:
    """Whole months from ``start`` to ``end`` (Trino's date_diff, Java's ChronoUnit.MONTHS)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if end.day < start.day else months


def per_row(function: Callable[[Row], Any]) -> Oracle:
    return lambda rows: [(function(r),) for r in rows]


def fails_if(condition: Callable[[Row], bool], function: Callable[[Row], Any]) -> Oracle:
    """An answer per row, or ERROR when any row makes the read dialect fail."""
    return lambda rows: ERROR if any(condition(r) for r in rows) else per_row(function)(rows)


def null_if_any(function: Callable[[list[Any]], Any]) -> Callable[..., Any]:
    """NULL when any argument is NULL (Trino, Snowflake, BigQuery GREATEST/LEAST)."""
    return lambda *args: None if any(a is None for a in args) else function(list(args))


def skipping_nulls(function: Callable[[list[Any]], Any]) -> Callable[..., Any]:
    """NULL arguments skipped (Spark GREATEST/LEAST, as PostgreSQL and DuckDB)."""

    def apply(*args: Any) -> Any:
        present = [a for a in args if a is not None]
        return function(present) if present else None

    return apply


@dataclass(frozen=True)
class Case:
    name: str
    sql: dict[str, str]  # read dialect → the query in its own syntax
    oracles: dict[str, Oracle] = field(default_factory=dict)  # for the non-engine dialects
    refused: dict[tuple[str, str], str] = field(default_factory=dict)  # (read, engine) → words
    # Refused by the gateway's allow-list on every pair (not a dialect difference).
    allow_list: bool = False
    # Pairs where the engine fails what the read dialect answers (documented limits, no answer).
    engine_fails: frozenset[tuple[str, str]] = frozenset()


def _all(sql: str, *dialects: str) -> dict[str, str]:
    return dict.fromkeys(dialects or READS, sql)


CROSS = {(read, engine) for read in READS for engine in ENGINES if read != engine}

CASES = [
    Case(
        "integer division",
        _all("SELECT n / 2 AS v FROM lab.samples ORDER BY id"),
        {
            "trino": per_row(lambda r: trunc_div(r["n"], 2)),
            **dict.fromkeys(("snowflake", "bigquery", "spark"), per_row(lambda r: r["n"] / 2)),
        },
    ),
    Case(
        "sum of integer quotients",
        _all("SELECT sum(n / 2) AS v FROM lab.samples"),
        {
            "trino": lambda rows: [(sum(trunc_div(r["n"], 2) for r in rows),)],
            **dict.fromkeys(
                ("snowflake", "bigquery", "spark"), lambda rows: [(sum(r["n"] / 2 for r in rows),)]
            ),
        },
    ),
    Case(
        "division of decimals and doubles",
        _all("SELECT price / 4 AS a, ratio / 4 AS b FROM lab.samples ORDER BY id"),
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            lambda rows: [(r["price"] / 4, r["ratio"] / 4) for r in rows],
        ),
    ),
    Case(
        "division by zero",
        _all("SELECT n / (id - id) AS v FROM lab.samples ORDER BY id"),
        dict.fromkeys(("trino", "snowflake", "bigquery", "spark"), lambda rows: ERROR),
        # DuckDB's `/` gives ±Infinity; PostgreSQL fails ("division by zero").
        engine_fails=frozenset({("duckdb", "postgres")}),
    ),
    Case(
        "DuckDB // on integers, decimals and doubles",
        _all(
            "SELECT n // 2 AS a, price // 2 AS b, ratio // 2 AS c FROM lab.samples ORDER BY id",
            "duckdb",
        ),
    ),
    Case(
        "integer division functions",
        {
            "bigquery": "SELECT DIV(n, 2) AS v FROM lab.samples ORDER BY id",
            "spark": "SELECT n div 2 AS a, price div 2 AS b FROM lab.samples ORDER BY id",
        },
        {
            "bigquery": per_row(lambda r: trunc_div(r["n"], 2)),
            "spark": lambda rows: [(trunc_div(r["n"], 2), int(r["price"] / 2)) for r in rows],
        },
    ),
    Case(
        "modulo of negatives",
        {
            **_all("SELECT n % 3 AS v FROM lab.samples ORDER BY id"),
            "bigquery": "SELECT MOD(n, 3) AS v FROM lab.samples ORDER BY id",
        },
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            per_row(lambda r: int(math.fmod(r["n"], 3))),
        ),
    ),
    Case(
        "GREATEST and LEAST with NULL",
        _all("SELECT GREATEST(n, m) AS g, LEAST(n, m) AS l FROM lab.samples ORDER BY id"),
        {
            **dict.fromkeys(
                ("trino", "snowflake", "bigquery"),
                lambda rows: [
                    (null_if_any(max)(r["n"], r["m"]), null_if_any(min)(r["n"], r["m"]))
                    for r in rows
                ],
            ),
            "spark": lambda rows: [
                (skipping_nulls(max)(r["n"], r["m"]), skipping_nulls(min)(r["n"], r["m"]))
                for r in rows
            ],
        },
    ),
    Case(
        "CONCAT with NULL",
        _all(
            "SELECT CONCAT(label, CASE WHEN m > 2 THEN '+' END) AS v FROM lab.samples ORDER BY id"
        ),
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            per_row(lambda r: r["label"] + "+" if r["m"] is not None and r["m"] > 2 else None),
        ),
    ),
    Case(
        "regular expression match",
        {
            "duckdb": "SELECT regexp_matches(label, 'a.*') AS v FROM lab.samples ORDER BY id",
            "postgres": "SELECT label ~ 'a.*' AS v FROM lab.samples ORDER BY id",
            "trino": "SELECT regexp_like(label, 'a.*') AS v FROM lab.samples ORDER BY id",
            "snowflake": "SELECT REGEXP_LIKE(label, 'a.*') AS v FROM lab.samples ORDER BY id",
            "bigquery": "SELECT REGEXP_CONTAINS(label, 'a.*') AS v FROM lab.samples ORDER BY id",
            "spark": "SELECT label RLIKE 'a.*' AS v FROM lab.samples ORDER BY id",
        },
        {
            # Snowflake's REGEXP_LIKE matches the whole string; the others search in it.
            "snowflake": per_row(lambda r: re.fullmatch("a.*", r["label"]) is not None),
            **dict.fromkeys(
                ("trino", "bigquery", "spark"),
                per_row(lambda r: re.search("a.*", r["label"]) is not None),
            ),
        },
    ),
    Case(
        "Snowflake RLIKE",
        {"snowflake": "SELECT label RLIKE 'a.*' AS v FROM lab.samples ORDER BY id"},
        {"snowflake": per_row(lambda r: re.fullmatch("a.*", r["label"]) is not None)},
    ),
    Case(
        "substring from a positive start",
        {
            **_all("SELECT SUBSTR(label, 2, 3) AS v FROM lab.samples ORDER BY id"),
            "postgres": "SELECT substr(label, 2, 3) AS v FROM lab.samples ORDER BY id",
        },
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"), per_row(lambda r: r["label"][1:4])
        ),
    ),
    Case(
        "substring from a negative start",
        {
            **_all("SELECT SUBSTR(label, -3, 2) AS v FROM lab.samples ORDER BY id"),
            "postgres": "SELECT substr(label, -3, 2) AS v FROM lab.samples ORDER BY id",
        },
        refused=dict.fromkeys(CROSS, "SUBSTR"),
    ),
    Case(
        "substring from zero",
        {
            **_all("SELECT SUBSTR(label, 0, 2) AS v FROM lab.samples ORDER BY id"),
            "postgres": "SELECT substr(label, 0, 2) AS v FROM lab.samples ORDER BY id",
        },
        refused=dict.fromkeys(CROSS, "SUBSTR"),
    ),
    Case(
        "day of week",
        {
            "duckdb": "SELECT dayofweek(day) AS a, isodow(day) AS b FROM lab.samples ORDER BY id",
            "postgres": "SELECT EXTRACT(DOW FROM day) AS a, EXTRACT(ISODOW FROM day) AS b "
            "FROM lab.samples ORDER BY id",
            "trino": "SELECT day_of_week(day) AS a, EXTRACT(DOW FROM day) AS b FROM lab.samples "
            "ORDER BY id",
            "snowflake": "SELECT DAYOFWEEK(day) AS a, DAYOFWEEKISO(day) AS b FROM lab.samples "
            "ORDER BY id",
            "bigquery": "SELECT EXTRACT(DAYOFWEEK FROM day) AS a FROM lab.samples ORDER BY id",
            "spark": "SELECT DAYOFWEEK(day) AS a, EXTRACT(DOW FROM day) AS b FROM lab.samples "
            "ORDER BY id",
        },
        {
            # Trino: ISO (Monday 1); Snowflake DAYOFWEEK: Sunday 0 (WEEK_START 0, the
            # default); BigQuery and Spark: Sunday 1.
            "trino": lambda rows: [(r["day"].isoweekday(), r["day"].isoweekday()) for r in rows],
            "snowflake": lambda rows: [
                (sunday_first(r["day"], 0), r["day"].isoweekday()) for r in rows
            ],
            "bigquery": per_row(lambda r: sunday_first(r["day"], 1)),
            "spark": lambda rows: [
                (sunday_first(r["day"], 1), sunday_first(r["day"], 1)) for r in rows
            ],
        },
    ),
    Case(
        "week start of date_trunc",
        {
            **_all("SELECT date_trunc('week', day) AS v FROM lab.samples ORDER BY id"),
            "bigquery": "SELECT DATE_TRUNC(day, WEEK) AS v FROM lab.samples ORDER BY id",
        },
        {
            **dict.fromkeys(
                ("trino", "snowflake", "spark"), per_row(lambda r: monday_of(r["day"]))
            ),
            "bigquery": per_row(lambda r: sunday_of(r["day"])),
        },
        refused={("bigquery", "postgres"): "WEEK(SUNDAY)"},
    ),
    Case(
        "date difference in days",
        {
            "duckdb": "SELECT date_diff('day', DATE '2024-03-01', day) AS v FROM lab.samples "
            "ORDER BY id",
            "postgres": "SELECT day - DATE '2024-03-01' AS v FROM lab.samples ORDER BY id",
            "trino": "SELECT date_diff('day', DATE '2024-03-01', day) AS v FROM lab.samples "
            "ORDER BY id",
            "snowflake": "SELECT DATEDIFF('day', DATE '2024-03-01', day) AS v FROM lab.samples "
            "ORDER BY id",
            "bigquery": "SELECT DATE_DIFF(day, DATE '2024-03-01', DAY) AS v FROM lab.samples "
            "ORDER BY id",
            "spark": "SELECT datediff(day, DATE '2024-03-01') AS v FROM lab.samples ORDER BY id",
        },
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            per_row(lambda r: (r["day"] - dt.date(2024, 3, 1)).days),
        ),
    ),
    Case(
        "date difference in months",
        {
            "duckdb": "SELECT date_diff('month', DATE '2024-01-31', day) AS v FROM lab.samples "
            "ORDER BY id",
            "trino": "SELECT date_diff('month', DATE '2024-01-31', day) AS v FROM lab.samples "
            "ORDER BY id",
            "snowflake": "SELECT DATEDIFF('month', DATE '2024-01-31', day) AS v "
            "FROM lab.samples ORDER BY id",
            "bigquery": "SELECT DATE_DIFF(day, DATE '2024-01-31', MONTH) AS v FROM lab.samples "
            "ORDER BY id",
        },
        {
            # Trino counts whole months; Snowflake and BigQuery month boundaries crossed.
            "trino": per_row(lambda r: months_between(dt.date(2024, 1, 31), r["day"])),
            **dict.fromkeys(
                ("snowflake", "bigquery"),
                per_row(lambda r: (r["day"].year - 2024) * 12 + r["day"].month - 1),
            ),
        },
        refused={("trino", "duckdb"): "months"},
    ),
    Case(
        "date difference in weeks",
        {
            "duckdb": "SELECT date_diff('week', DATE '2024-03-02', day) AS v FROM lab.samples "
            "ORDER BY id",
            "trino": "SELECT date_diff('week', DATE '2024-03-02', day) AS v FROM lab.samples "
            "ORDER BY id",
            "snowflake": "SELECT DATEDIFF('week', DATE '2024-03-02', day) AS v "
            "FROM lab.samples ORDER BY id",
            "bigquery": "SELECT DATE_DIFF(day, DATE '2024-03-02', WEEK) AS v FROM lab.samples "
            "ORDER BY id",
        },
        refused={
            (read, engine): "weeks"
            for read in ("duckdb", "trino", "snowflake", "bigquery")
            for engine in ENGINES
            if read != engine
        },
    ),
    Case(
        "week numbers",
        {
            "duckdb": "SELECT week(day) AS v FROM lab.samples ORDER BY id",
            "postgres": "SELECT EXTRACT(WEEK FROM day) AS v FROM lab.samples ORDER BY id",
            "trino": "SELECT week(day) AS v FROM lab.samples ORDER BY id",
            "snowflake": "SELECT WEEKOFYEAR(day) AS v FROM lab.samples ORDER BY id",
            "bigquery": "SELECT EXTRACT(WEEK FROM day) AS v FROM lab.samples ORDER BY id",
            "spark": "SELECT weekofyear(day) AS v FROM lab.samples ORDER BY id",
        },
        # ISO weeks (Snowflake: the default WEEK_OF_YEAR_POLICY).
        dict.fromkeys(
            ("trino", "snowflake", "spark"), per_row(lambda r: r["day"].isocalendar()[1])
        ),
        refused={("bigquery", engine): "WEEK" for engine in ENGINES},
    ),
    Case(
        "LEFT with a positive length",
        _all(
            "SELECT LEFT(label, 3) AS v FROM lab.samples ORDER BY id",
            "duckdb",
            "postgres",
            "snowflake",
            "bigquery",
            "spark",
        ),
        dict.fromkeys(("snowflake", "bigquery", "spark"), per_row(lambda r: r["label"][:3])),
    ),
    Case(
        "LEFT with a negative length",
        _all(
            "SELECT LEFT(label, -2) AS v FROM lab.samples ORDER BY id",
            "duckdb",
            "postgres",
            "snowflake",
            "bigquery",
            "spark",
        ),
        refused={
            (read, engine): "LEFT"
            for read in ("snowflake", "bigquery", "spark")
            for engine in ENGINES
        },
    ),
    Case(
        "casts of decimals and doubles to integers",
        {
            **_all(
                "SELECT CAST(price AS INT) AS a, CAST(ratio AS INT) AS b FROM lab.samples "
                "ORDER BY id"
            ),
            "bigquery": "SELECT CAST(price AS INT64) AS a, CAST(ratio AS INT64) AS b "
            "FROM lab.samples ORDER BY id",
        },
        {
            **dict.fromkeys(
                ("trino", "snowflake", "bigquery"),
                lambda rows: [(half_away(r["price"]), half_away(r["ratio"])) for r in rows],
            ),
            "spark": lambda rows: [(int(r["price"]), int(r["ratio"])) for r in rows],
        },
    ),
    Case(
        "cast of a decimal literal to an integer",
        {
            **_all("SELECT CAST(1.7 AS INT) AS a, CAST(-1.7 AS INT) AS b"),
            "bigquery": "SELECT CAST(1.7 AS INT64) AS a, CAST(-1.7 AS INT64) AS b",
        },
        {
            **dict.fromkeys(("trino", "snowflake", "bigquery"), lambda rows: [(2, -2)]),
            "spark": lambda rows: [(1, -1)],
        },
    ),
    Case(
        "cast of scientific-notation text to an integer",
        {**_all("SELECT CAST('1e3' AS INT) AS v"), "bigquery": "SELECT CAST('1e3' AS INT64) AS v"},
        {
            "snowflake": lambda rows: [(1000,)],
            # Trino and BigQuery accept only integer text.
            **dict.fromkeys(("trino", "bigquery"), lambda rows: ERROR),
        },
        refused={
            **dict.fromkeys(
                [("postgres", "duckdb"), ("trino", "duckdb"), ("bigquery", "duckdb")], "'1e3'"
            ),
            ("spark", "duckdb"): "text",
            ("spark", "postgres"): "text",
        },
    ),
    Case(
        "casts of booleans and integer text",
        {
            **_all(
                "SELECT CAST(flag AS INT) AS a, CAST(code AS INT) + 1 AS b FROM lab.samples "
                "ORDER BY id"
            ),
            "bigquery": "SELECT CAST(flag AS INT64) AS a, CAST(code AS INT64) + 1 AS b "
            "FROM lab.samples ORDER BY id",
        },
        dict.fromkeys(
            ("trino", "snowflake", "bigquery"),
            lambda rows: [
                (None if r["flag"] is None else int(r["flag"]), int(r["code"]) + 1) for r in rows
            ],
        ),
        refused={("spark", "duckdb"): "text", ("spark", "postgres"): "text"},
    ),
    Case(
        "ROUND of doubles",
        _all("SELECT ROUND(ratio) AS a, ROUND(ratio, 0) AS b FROM lab.samples ORDER BY id"),
        # Spark's HALF_UP, like the others, rounds half away from zero.
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            lambda rows: [(half_away(r["ratio"]), half_away(r["ratio"])) for r in rows],
        ),
        refused={("postgres", "duckdb"): "ROUND"},
    ),
    Case(
        "casts of integers to booleans",
        _all(
            "SELECT CAST(n AS BOOLEAN) AS a, CAST(m AS BOOLEAN) AS b FROM lab.samples ORDER BY id",
            "duckdb",
            "trino",
            "snowflake",
            "bigquery",
            "spark",
        ),
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            lambda rows: [(r["n"] != 0, None if r["m"] is None else r["m"] != 0) for r in rows],
        ),
    ),
    Case(
        "JSON access",
        {
            "duckdb": "SELECT doc->>'$.a' AS v FROM lab.samples ORDER BY id",
            "postgres": "SELECT doc::json->>'a' AS v FROM lab.samples ORDER BY id",
            "trino": "SELECT json_extract_scalar(doc, '$.a') AS v FROM lab.samples ORDER BY id",
            "snowflake": "SELECT PARSE_JSON(doc):a AS v FROM lab.samples ORDER BY id",
            "bigquery": "SELECT JSON_VALUE(doc, '$.a') AS v FROM lab.samples ORDER BY id",
            "spark": "SELECT get_json_object(doc, '$.a') AS v FROM lab.samples ORDER BY id",
        },
        refused={(read, engine): "JSONPATH" for read in READS for engine in ENGINES},
        allow_list=True,
    ),
    Case(
        "TRY_CAST",
        {
            **_all(
                "SELECT TRY_CAST(label AS INT) AS a, TRY_CAST(n AS VARCHAR) AS b "
                "FROM lab.samples ORDER BY id",
                "duckdb",
                "trino",
                "snowflake",
                "spark",
            ),
            "bigquery": "SELECT SAFE_CAST(label AS INT64) AS a, SAFE_CAST(n AS STRING) AS b "
            "FROM lab.samples ORDER BY id",
        },
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            lambda rows: [(None, str(r["n"])) for r in rows],
        ),
        refused={
            **{
                (read, "postgres"): "CAST"
                for read in ("duckdb", "trino", "snowflake", "bigquery", "spark")
            },
            # Spark truncates fractional text ('1.7' → 1): text to an integer is refused.
            ("spark", "duckdb"): "text",
        },
    ),
    Case(
        "QUALIFY with SELECT *",
        _all(
            "SELECT * FROM lab.samples QUALIFY row_number() OVER (ORDER BY id DESC) = 1",
            "duckdb",
            "snowflake",
            "bigquery",
        ),
        {
            **dict.fromkeys(
                ("snowflake", "bigquery"),
                lambda rows: [tuple(rows[-1].values())],
            )
        },
        refused={(read, "postgres"): "QUALIFY" for read in ("duckdb", "snowflake", "bigquery")},
    ),
    Case(
        "QUALIFY with a column list",
        _all(
            "SELECT id, label FROM lab.samples "
            "QUALIFY row_number() OVER (ORDER BY id DESC) <= 2 ORDER BY id",
            "duckdb",
            "snowflake",
            "bigquery",
        ),
        dict.fromkeys(
            ("snowflake", "bigquery"), lambda rows: [(r["id"], r["label"]) for r in rows[-2:]]
        ),
    ),
    Case(
        "INTERVAL of a column",
        {
            "duckdb": "SELECT day + INTERVAL (n) DAY AS v FROM lab.samples ORDER BY id",
            "postgres": "SELECT day + n * INTERVAL '1 day' AS v FROM lab.samples ORDER BY id",
        },
    ),
    Case(
        "byte-order collation",
        _all('SELECT label FROM lab.samples ORDER BY label COLLATE "C"', "duckdb", "postgres"),
    ),
    Case(
        "string order and case-sensitive comparison",
        _all(
            "SELECT label, label = 'banana' AS b, lower(label) = 'banana' AS c "
            "FROM lab.samples ORDER BY label"
        ),
        dict.fromkeys(
            ("trino", "snowflake", "bigquery", "spark"),
            lambda rows: sorted(
                (r["label"], r["label"] == "banana", r["label"].lower() == "banana") for r in rows
            ),
        ),
    ),
]


# --- running -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_catalog() -> Catalog:
    return load_catalog(MESH)


@pytest.fixture(scope="module")
def lab_gateway(lab_catalog: Catalog) -> Any:
    from meshgov.gateway import Gateway
    from meshgov.policy_backends import load_bundle_dir

    return Gateway(lab_catalog, load_bundle_dir(ROOT / "policies"))


@pytest.fixture(scope="module")
def lab_duckdb(lab_catalog: Catalog) -> Iterator[QueryEngine]:
    from meshgov.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine.from_catalog(lab_catalog, HASH_KEY)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def lab_postgres(pg_admin_dsn: str, lab_catalog: Catalog) -> Iterator[QueryEngine]:
    """The fixture in a uniquely named database of this run, dropped afterwards."""
    from meshgov.engines import postgres

    name = f"meshgov_dialects_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    engine: QueryEngine | None = None
    try:
        postgres.load(lab_catalog, dsn, HASH_KEY)
        engine = postgres.PostgresEngine(dsn, lab_catalog)
        yield engine
    finally:
        if engine is not None:
            engine.close()
        postgres.drop_database(pg_admin_dsn, name)


def _engine(request: pytest.FixtureRequest, name: str) -> QueryEngine:
    engine: QueryEngine = request.getfixturevalue(f"lab_{name}")
    return engine


def _normal(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        # date_trunc of a date is a timestamp (PostgreSQL: with the session's time zone, UTC).
        return value.date() if value.time() == dt.time(0) else value
    if isinstance(value, int | float | Decimal):
        return round(float(value), 6)
    return value


def _rows(table: Any) -> list[tuple[Any, ...]]:
    return [tuple(_normal(v) for v in row.values()) for row in table.to_pylist()]


def _reference(
    case: Case, read: str, request: pytest.FixtureRequest
) -> list[tuple[Any, ...]] | str:
    if read in ENGINES:
        try:
            return _rows(_engine(request, read).execute(case.sql[read]))
        except MeshgovError:
            return ERROR
    answer = case.oracles[read](_samples())
    return answer if answer == ERROR else [tuple(_normal(v) for v in row) for row in answer]


PAIRS = [
    pytest.param(case, read, engine, id=f"{case.name}-{read}-on-{engine}")
    for case in CASES
    for read in READS
    if read in case.sql
    for engine in ENGINES
]


@pytest.mark.parametrize(("case", "read", "engine_name"), PAIRS)
def test_answer_is_what_the_read_dialect_means(
    case: Case, read: str, engine_name: str, request: pytest.FixtureRequest, lab_gateway: Any
) -> None:
    engine = _engine(request, engine_name)
    refusal: AccessDenied | None = None
    failure: MeshgovError | None = None
    try:
        result = execute_query(lab_gateway, engine, case.sql[read], ANALYST, None, read)
    except AccessDenied as exc:  # a refusal (SqlUnsupportedError is one)
        refusal = exc
    except MeshgovError as exc:  # the engine failed the query
        failure = exc
    words = case.refused.get((read, engine_name))
    if refusal is not None:
        assert words is not None, f"refused where it should run: {refusal.message}"
        assert words.lower() in refusal.message.lower(), refusal.message
        if not case.allow_list:
            assert read in refusal.message and engine_name in refusal.message, refusal.message
        return
    assert words is None, "answered where the table says it is refused"
    if failure is not None:
        allowed = (read, engine_name) in case.engine_fails
        assert allowed or _reference(case, read, request) == ERROR, f"failed: {failure}"
        return
    assert (read, engine_name) not in case.engine_fails, "ran where the table says it fails"
    assert _rows(result.table) == _reference(case, read, request)


def test_every_case_has_a_reference_wherever_it_runs() -> None:
    for case in CASES:
        for read in case.sql:
            refused_everywhere = all((read, engine) in case.refused for engine in ENGINES)
            assert read in ENGINES or read in case.oracles or refused_everywhere, (case.name, read)
