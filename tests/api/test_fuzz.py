"""Fuzz the API with schemathesis against its own OpenAPI document: no input is a server error.

Marked ``slow`` (run with ``pytest -m slow tests/api/test_fuzz.py``; CI runs it). Every
operation is called with generated valid and invalid data, as the guild (who may do most things)
and as an analyst; any 5xx fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_server import TOKENS, settings_for, start_server
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    handle = start_server(settings_for(Path(tmp_path_factory.mktemp("fuzz"))))
    try:
        yield handle.running.url
    finally:
        handle.stop()


FUZZ_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _fuzz(url: str, who: str) -> None:
    """Every operation of the OpenAPI document, with generated data, as ``who``."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = {"Authorization": f"Bearer {TOKENS[who]}"}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=url, headers=headers, checks=[not_a_server_error], timeout=60
            )

        call()
    assert operations >= 20


@pytest.mark.slow
def test_no_input_from_the_guild_causes_a_server_error(fuzz_url: str) -> None:
    _fuzz(fuzz_url, "guild")


@pytest.mark.slow
def test_no_input_from_an_analyst_causes_a_server_error(fuzz_url: str) -> None:
    _fuzz(fuzz_url, "analyst-eu")
