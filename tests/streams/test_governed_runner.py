"""``GovernedRunner.run`` keeps, per thread, one cursor where the source is registered once and
each SQL text parsed once: every run must still read exactly its own table (its rows, its
schema), in any thread, and the keyed hash must be the one the SQL function gives."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
import pytest

from meshgov.core.sql.model import AccessDecision
from meshgov.governed import SOURCE_RELATION, GovernedPort, GovernedRunner

SQL = f'SELECT "id", "region" FROM "{SOURCE_RELATION}" WHERE "region" = \'EU\' ORDER BY "id"'
HASHED = f'SELECT meshgov_hash("name") AS "name", "id" FROM "{SOURCE_RELATION}" ORDER BY "id"'


def port(sql: str, runner_sql: str = "", hashed: tuple[int, ...] = ()) -> GovernedPort:
    decision = AccessDecision(allow=True)
    return GovernedPort("p/x", "x", "1.0.0", "events", decision, sql, (), runner_sql, hashed)


def table(start: int, count: int) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.table(
        {
            "id": pa.array(ids, type=pa.int64()),
            "region": ["EU" if n % 3 else "US" for n in ids],
            "name": [f"n{n}" if n % 4 else None for n in ids],
        }
    )


def plain(sql: str, source: pa.Table) -> pa.Table:
    connection = duckdb.connect(":memory:")
    connection.register(SOURCE_RELATION, source)
    return connection.sql(sql).to_arrow_table()


@pytest.fixture
def runner() -> GovernedRunner:
    return GovernedRunner(b"runner-test-key")


def test_each_run_reads_its_own_table(runner: GovernedRunner) -> None:
    other = f'SELECT count(*) AS n FROM "{SOURCE_RELATION}"'
    for start, count in [(0, 10), (100, 1000), (5, 0), (7, 3)]:
        source = table(start, count)
        assert runner.run(port(SQL), source) == plain(SQL, source)
        assert runner.run(port(other), source).to_pylist() == [{"n": count}]


def test_a_table_of_another_schema_is_bound_anew(runner: GovernedRunner) -> None:
    assert runner.run(port(SQL), table(0, 5)).num_rows == 3
    narrow = pa.table({"id": pa.array([1, 2], type=pa.int64())})
    with pytest.raises(duckdb.BinderException):
        runner.run(port(SQL), narrow)
    wider = table(0, 6).append_column("extra", pa.array(range(6)))
    renamed = wider.rename_columns(["id", "region", "name", "extra"])
    assert runner.run(port(SQL), renamed) == plain(SQL, renamed)
    typed = pa.table({"id": pa.array(["a", "b"]), "region": ["EU", "EU"]})
    assert runner.run(port(SQL), typed).to_pylist() == [
        {"id": "a", "region": "EU"},
        {"id": "b", "region": "EU"},
    ]


def test_threads_read_their_own_tables(runner: GovernedRunner) -> None:
    results: dict[int, list[bool]] = {}

    def work(start: int) -> None:
        source = table(start, 500)
        expected = plain(SQL, source)
        results[start] = [runner.run(port(SQL), source) == expected for _ in range(30)]

    threads = [threading.Thread(target=work, args=(start,)) for start in (0, 10_000, 20_000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {start: [True] * 30 for start in (0, 10_000, 20_000)}


def test_other_sources_and_bulk_hash(runner: GovernedRunner) -> None:
    source = table(0, 50)
    reader = pa.RecordBatchReader.from_batches(source.schema, source.to_batches(max_chunksize=7))
    assert runner.run(port(SQL), reader) == plain(SQL, source)
    by_sql = runner.run(port(HASHED), source)
    stripped = f'SELECT "name" AS "name", "id" FROM "{SOURCE_RELATION}" ORDER BY "id"'
    in_bulk = runner.run(port(HASHED, stripped, (0,)), source)
    assert in_bulk == by_sql
    assert by_sql.column("name").null_count == len([n for n in range(50) if n % 4 == 0])
    runner.close()
