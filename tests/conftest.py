"""Shared fixtures. Services that are absent skip with a reason, unless CI requires them."""

from __future__ import annotations

import os
from pathlib import Path

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
