"""Helpers: log in to the console over plain HTTP and read the CSRF token of a page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from console_server import TOKENS, ConsoleServer

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@contextmanager
def logged_in(console: ConsoleServer, who: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url, timeout=30) as client:
        response = client.post("/ui/login", data={"token": TOKENS[who]})
        assert response.status_code == 303, response.text
        yield client


def csrf_of(client: httpx.Client, page: str = "/ui/query") -> str:
    found = CSRF_FIELD.search(client.get(page).text)
    assert found is not None
    return found.group(1)
