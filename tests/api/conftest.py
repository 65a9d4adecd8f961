"""Fixtures: a shared server, and a fresh one for tests that change state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_server import RunningServer, settings_for, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One shared read-mostly server; tests that change state start their own."""
    handle = start_server(settings_for(tmp_path_factory.mktemp("shared")))
    try:
        yield handle.running
    finally:
        handle.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh server with its own store, for tests that publish or activate."""
    handle = start_server(settings_for(tmp_path))
    try:
        yield handle.running
    finally:
        handle.stop()
