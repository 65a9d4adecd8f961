"""The streams tests' world: a generated mesh with an events port, on its own uniquely named
JetStream streams of the real NATS server, deleted after each test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from stream_world import World, cleanup, make_world


@pytest.fixture
def world(tmp_path: Path, nats_url: str) -> Iterator[World]:
    made = make_world(tmp_path, nats_url)
    yield made
    asyncio.run(cleanup(made))
