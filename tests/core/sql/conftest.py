"""Shared by the rewriter tests: a gateway over the fixture mesh and the real policies."""

from __future__ import annotations

from pathlib import Path

import pytest
from rewrite_cases import MESH

from meshgov.gateway import Gateway, load_gateway


@pytest.fixture(scope="session")
def gateway(policies_dir: Path) -> Gateway:
    return load_gateway(str(MESH), str(policies_dir))
