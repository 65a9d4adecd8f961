"""execute_query: a denial never reaches the engine; results serialise to every format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from meshgov.core.principal import Principal
from meshgov.errors import AccessDenied, InputError
from meshgov.execution import ResultFormat, execute_query, parse_format, serialize


@dataclass
class FakeAuthorization:
    allowed: bool
    sql: str | None
    reason: str | None = None
    code: str | None = None


class RecordingEngine:
    name = "recording"
    dialect = "duckdb"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def execute(self, sql: str) -> pa.Table:
        self.seen.append(sql)
        return pa.table({"a": [1, 2], "b": ["x", None]})

    def close(self) -> None:
        pass


class FixedGateway:
    def __init__(self, authorization: FakeAuthorization) -> None:
        self.authorization = authorization
        self.calls: list[tuple[Any, ...]] = []
        self.barriers: list[bool] = []

    def authorize(
        self,
        sql: str,
        principal: Principal,
        purpose: str | None,
        read: str,
        write: str,
        *,
        engine_barrier: bool = False,
    ) -> FakeAuthorization:
        self.calls.append((sql, principal.id, purpose, read, write))
        self.barriers.append(engine_barrier)
        return self.authorization


PRINCIPAL = Principal(id="analyst-eu", groups=("analysts",), attributes={"region": "EU"})


def test_allowed_query_runs_the_rewritten_sql_in_the_engine_dialect() -> None:
    engine = RecordingEngine()
    gateway = FixedGateway(FakeAuthorization(True, "SELECT secure"))
    result = execute_query(gateway, engine, "SELECT raw", PRINCIPAL, "analytics", "postgres")
    assert engine.seen == ["SELECT secure"]
    assert gateway.calls == [("SELECT raw", "analyst-eu", "analytics", "postgres", "duckdb")]
    # An engine that does not declare a structural barrier has none.
    assert gateway.barriers == [False]
    assert result.table.num_rows == 2
    assert result.engine == "recording"


def test_an_engine_with_a_structural_barrier_says_so_to_the_gateway() -> None:
    engine = RecordingEngine()
    engine.structural_barrier = True  # type: ignore[attr-defined]
    gateway = FixedGateway(FakeAuthorization(True, "SELECT secure"))
    execute_query(gateway, engine, "SELECT raw", PRINCIPAL, "analytics", "postgres")
    assert gateway.barriers == [True]


def test_denial_raises_with_the_reason_and_never_reaches_the_engine() -> None:
    engine = RecordingEngine()
    gateway = FixedGateway(FakeAuthorization(False, None, "column email is hidden"))
    with pytest.raises(AccessDenied, match="column email is hidden"):
        execute_query(gateway, engine, "SELECT email FROM t", PRINCIPAL)
    assert engine.seen == []


def test_allowed_without_sql_is_denied() -> None:
    engine = RecordingEngine()
    with pytest.raises(AccessDenied):
        execute_query(FixedGateway(FakeAuthorization(True, "")), engine, "SELECT 1", PRINCIPAL)
    assert engine.seen == []


def test_serialize_every_format() -> None:
    table = pa.table({"a": [1, 2], "b": ["x", None], "a_dup": [3, 4]}).rename_columns(
        ["a", "b", "a"]
    )
    stream = serialize(table, ResultFormat.arrow)
    assert pa.ipc.open_stream(stream).read_all().equals(table)
    assert json.loads(serialize(table, "json")) == [
        {"a": 1, "b": "x", "a_2": 3},
        {"a": 2, "b": None, "a_2": 4},
    ]
    assert serialize(table, "csv").decode().splitlines()[0] == '"a","b","a"'
    text = serialize(table, "table").decode()
    assert "NULL" in text
    assert "(2 rows)" in text


def test_unknown_format_is_invalid_input() -> None:
    with pytest.raises(InputError, match="unknown format"):
        parse_format("xml")


def test_denial_codes_keep_their_kind() -> None:
    from meshgov.errors import SqlParseError, SqlUnsupportedError

    engine = RecordingEngine()
    parse = FakeAuthorization(False, None, "cannot parse", "invalid_sql")
    with pytest.raises(SqlParseError):
        execute_query(FixedGateway(parse), engine, "SELEC", PRINCIPAL)
    unsupported = FakeAuthorization(False, None, "COPY is not a query", "unsupported_sql")
    with pytest.raises(SqlUnsupportedError) as caught:
        execute_query(FixedGateway(unsupported), engine, "COPY t TO 'x'", PRINCIPAL)
    assert caught.value.exit_code == 3
