"""Fixtures for the red-team findings: the service with the wire protocol, on DuckDB.

Reuses the wire tests' server helper (a real ``meshgov serve`` process app on free ports); the
catalogue databases are created under a prefix unique to this run and dropped afterwards.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wire"))

from wire_server import WireServer, serve


@pytest.fixture(scope="module")
def redteam_wire(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str
) -> Iterator[WireServer]:
    from meshgov.pgwire.catalogue import CatalogueDatabases

    prefix = f"mgrt{uuid.uuid4().hex[:8]}_"
    try:
        yield from serve(tmp_path_factory.mktemp("redteam"), pg_admin_dsn, prefix)
    finally:
        CatalogueDatabases(pg_admin_dsn, prefix).drop_all()
