"""Fixtures: a console server per module (tests that change policies get their own)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_server import ConsoleServer, start_console


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    handle = start_console(tmp_path_factory.mktemp("console"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def own_console(tmp_path: Path) -> Iterator[ConsoleServer]:
    handle = start_console(tmp_path)
    try:
        yield handle
    finally:
        handle.stop()


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (its own browser download does not work here).

    Module-scoped: while Playwright's sync API is open, the thread has a running event loop, and
    other modules' tests that call ``asyncio.run`` (the wire clients) must not meet it.

    Skips when either is missing, unless ``MESHGOV_REQUIRE_BROWSER=1`` (as in CI): then it fails.
    """
    required = os.environ.get("MESHGOV_REQUIRE_BROWSER") == "1"
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        reason = "chromium not installed" if executable is None else "playwright not installed"
        if required:
            pytest.fail(f"{reason} (MESHGOV_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()
