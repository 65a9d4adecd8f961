"""Shared fixtures. Services that are absent skip with a reason, unless CI requires them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def policies_dir() -> Path:
    return ROOT / "policies"


@pytest.fixture(scope="session")
def mesh_dir() -> Path:
    return ROOT / "examples" / "mesh"


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    """DSN of a reachable PostgreSQL server (``MESHGOV_PG_DSN``), or skip with the reason.

    With ``MESHGOV_REQUIRE_POSTGRES=1`` (as in CI) an unreachable server fails instead. Tests create
    their own uniquely named database or schema on it and drop it afterwards.
    """
    import psycopg

    dsn = os.environ.get("MESHGOV_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        message = f"PostgreSQL not reachable at MESHGOV_PG_DSN ({type(exc).__name__})"
        if os.environ.get("MESHGOV_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return dsn


@pytest.fixture(scope="session")
def nats_url() -> str:
    """URL of a reachable NATS JetStream server (``MESHGOV_NATS_URL``), or skip with the reason.

    With ``MESHGOV_REQUIRE_NATS=1`` (as in CI) an unreachable server fails instead. Tests create
    their own uniquely named streams and subjects and delete them afterwards.
    """
    import socket
    from urllib.parse import urlparse

    url = os.environ.get("MESHGOV_NATS_URL", "nats://127.0.0.1:4222")
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), 3):
            pass
    except OSError as exc:
        message = f"NATS not reachable at {url} ({type(exc).__name__})"
        if os.environ.get("MESHGOV_REQUIRE_NATS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Spark session (``local[2]``, locked down) for the whole test run, or skip.

    With ``MESHGOV_REQUIRE_SPARK=1`` (as in CI) a missing pyspark or Java fails instead. Spark
    tests run without xdist (``make test`` runs them in a second, single-process pass).
    """
    import importlib.util
    import shutil

    problem = None
    if importlib.util.find_spec("pyspark") is None:
        problem = "pyspark is not installed (pip install 'meshgov[spark]')"
    elif shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        problem = "no Java runtime (Spark needs Java 17)"
    if problem is not None:
        if os.environ.get("MESHGOV_REQUIRE_SPARK") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    from meshgov.engines.spark import start_session

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    # The event log is on here (off by default) so that a test can search it for the hash key.
    session = start_session(
        "local[2]",
        {
            "spark.sql.warehouse.dir": str(warehouse),
            "spark.eventLog.enabled": "true",
            "spark.eventLog.compress": "false",  # searched as text (Spark 4 compresses: zstd)
            "spark.sql.shuffle.partitions": "2",  # small tables, two cores
            "spark.eventLog.dir": _spark_event_log_dir(tmp_path_factory).as_uri(),
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_guard_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """meshgov's Spark guard extension, built once per test run with javac against pyspark's
    jars (``meshgov spark guard-jar``), or skip (fail with MESHGOV_REQUIRE_SPARK=1)."""
    import importlib.util

    from meshgov.engines.spark_guard import build_guard_jar
    from meshgov.errors import BackendUnavailable

    problem = None
    if importlib.util.find_spec("pyspark") is None:
        problem = "pyspark is not installed (pip install 'meshgov[spark]')"
    else:
        try:
            return build_guard_jar(tmp_path_factory.mktemp("spark-guard"))
        except BackendUnavailable as exc:
            problem = str(exc)
    if os.environ.get("MESHGOV_REQUIRE_SPARK") == "1":
        pytest.fail(problem)
    pytest.skip(problem)


_EVENT_LOG: dict[str, Path] = {}


def _spark_event_log_dir(factory: pytest.TempPathFactory) -> Path:
    if "dir" not in _EVENT_LOG:
        _EVENT_LOG["dir"] = factory.mktemp("spark-events")
    return _EVENT_LOG["dir"]


@pytest.fixture(scope="session")
def spark_event_log(spark_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the test session's Spark event log."""
    return _spark_event_log_dir(tmp_path_factory)
