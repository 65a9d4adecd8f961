"""Engine resource limits: set before any query can run, enforced while fetching."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgov.catalog import Catalog
from meshgov.engines.base import QueryFailed
from meshgov.engines.duckdb import DuckDBEngine
from meshgov.errors import LimitExceeded, ResultTooLarge
from meshgov.limits import ResultLimits


def test_duckdb_limits_are_set_before_the_lock(engine_catalog: Catalog, tmp_path: Path) -> None:
    limits = ResultLimits(memory_mb=300, threads=1, temp_dir=tmp_path / "spill", temp_mb=500)
    duck = DuckDBEngine.from_catalog(engine_catalog, b"k", limits=limits)
    try:
        settings = duck.execute_unprotected(
            "SELECT current_setting('memory_limit') AS memory, current_setting('threads') AS "
            "threads, current_setting('temp_directory') AS spill"
        ).to_pylist()[0]
        assert settings["threads"] == 1
        assert settings["memory"].startswith("286") or "300" in settings["memory"]
        assert settings["spill"] == str(tmp_path / "spill")
        # Locked: no query raises them.
        with pytest.raises(QueryFailed):
            duck.execute_unprotected("SET memory_limit = '10GB'")
        after = duck.execute_unprotected("SELECT current_setting('memory_limit') AS memory")
        assert after.to_pylist()[0]["memory"] == settings["memory"]
    finally:
        duck.close()


def test_duckdb_private_spill_directory_is_removed_on_close(engine_catalog: Catalog) -> None:
    duck = DuckDBEngine.from_catalog(engine_catalog, b"k")
    spill = Path(
        duck.execute_unprotected("SELECT current_setting('temp_directory') AS d")[0][0].as_py()
    )
    assert spill.is_dir() and spill.name.startswith("meshgov-duckdb-")
    duck.close()
    assert not spill.exists()


def test_duckdb_caps_and_memory(engine_catalog: Catalog) -> None:
    duck = DuckDBEngine.from_catalog(
        engine_catalog, b"k", limits=ResultLimits(max_rows=100, max_bytes=4096, memory_mb=64)
    )
    try:
        assert duck.execute("SELECT unnest(generate_series(1, 100)) AS x").num_rows == 100
        with pytest.raises(ResultTooLarge, match="more than 100 rows"):
            duck.execute("SELECT unnest(generate_series(1, 101)) AS x")
        with pytest.raises(ResultTooLarge, match="MESHGOV_RESULT_MAX_BYTES"):
            duck.execute("SELECT repeat('x', 100) || i AS s FROM range(90) AS t(i)")
        with pytest.raises(LimitExceeded, match="MESHGOV_ENGINE_MEMORY_MB"):
            duck.execute(
                "WITH RECURSIVE t(x) AS (SELECT [1] UNION ALL SELECT x || x FROM t "
                "WHERE len(x) < 1000000000) SELECT max(len(x)) AS n FROM t"
            )
        assert duck.execute("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        duck.close()


@pytest.mark.postgres
def test_postgres_limits_are_set_per_transaction(
    engine_catalog: Catalog, engine_pg_dsn: str
) -> None:
    from meshgov.engines.postgres import PostgresEngine

    pg = PostgresEngine(
        engine_pg_dsn,
        engine_catalog,
        limits=ResultLimits(max_rows=100, max_bytes=4096, work_mem_mb=7, temp_mb=123),
    )
    try:
        settings = pg.execute_unprotected(
            "SELECT current_setting('work_mem') AS w, current_setting('temp_file_limit') AS t"
        ).to_pylist()
        # The test server's role is a superuser: both are settable.
        assert settings == [{"w": "7MB", "t": "123MB"}]
        assert pg.execute_unprotected("SELECT generate_series(1, 100) AS x").num_rows == 100
        with pytest.raises(ResultTooLarge, match="more than 100 rows"):
            pg.execute_unprotected("SELECT generate_series(1, 100000000) AS x")
        with pytest.raises(ResultTooLarge, match="MESHGOV_RESULT_MAX_BYTES"):
            pg.execute_unprotected("SELECT repeat('x', 100) AS s FROM generate_series(1, 90)")
        assert pg.execute("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        pg.close()
