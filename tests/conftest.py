"""Shared fixtures. Services that are absent skip with a reason, unless CI requires them."""

from __future__ import annotations

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
