"""Console sessions live in the service's store: a restart or another worker knows them; the store
keeps neither the session id nor the token; logout and revoked tokens end them everywhere."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from pathlib import Path

import httpx
from console_http import csrf_of
from console_server import TOKENS, start_console

from meshgov.console.sessions import SESSION_COOKIE


def _login(url: str, who: str) -> str:
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.post("/ui/login", data={"token": TOKENS[who]})
        assert response.status_code == 303, response.text
        return response.cookies[SESSION_COOKIE]


def _page(url: str, cookie: str, page: str = "/ui/catalogue") -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60, cookies={SESSION_COOKIE: cookie}) as client:
        return client.get(page)


def test_a_session_survives_a_restart_and_is_known_to_another_worker(tmp_path: Path) -> None:
    first = start_console(tmp_path)
    try:
        cookie = _login(first.url, "analyst-eu")
        assert "analyst-eu" in _page(first.url, cookie).text
    finally:
        first.stop()
    # A new process on the same store: the first is gone, the session is not.
    second = start_console(tmp_path)
    other = start_console(tmp_path)  # and a second worker beside it
    try:
        assert _page(second.url, cookie).status_code == 200
        assert 'id="whoami">analyst-eu<' in _page(other.url, cookie).text
        # Logging out on one worker ends the session on the other.
        with httpx.Client(
            base_url=second.url, timeout=60, cookies={SESSION_COOKIE: cookie}
        ) as client:
            assert client.post("/ui/logout", data={"csrf": csrf_of(client)}).status_code == 303
        assert _page(other.url, cookie).status_code == 303
        assert _page(second.url, cookie).status_code == 303
    finally:
        second.stop()
        other.stop()


def test_the_store_holds_digests_only(tmp_path: Path) -> None:
    console = start_console(tmp_path)
    try:
        cookie = _login(console.url, "guild")
        with httpx.Client(
            base_url=console.url, timeout=60, cookies={SESSION_COOKIE: cookie}
        ) as client:
            csrf = csrf_of(client)
    finally:
        console.stop()
    with sqlite3.connect(tmp_path / "meshgov.db") as db:
        rows = db.execute(
            "SELECT digest, principal, token_digest, created_at, expires_at FROM console_sessions"
        ).fetchall()
        dump = "\n".join(db.iterdump())
    assert len(rows) == 1
    digest, principal, token_digest, created, expires = rows[0]
    assert principal == "guild"
    assert digest == hashlib.sha256(cookie.encode()).hexdigest()
    assert token_digest == hashlib.sha256(TOKENS["guild"].encode()).hexdigest()
    assert 8 * 3600 - 1 <= expires - created <= 8 * 3600 + 1
    for secret in (cookie, TOKENS["guild"], csrf):
        assert secret not in dump


def test_expired_sessions_and_revoked_tokens_end_the_session(tmp_path: Path) -> None:
    console = start_console(tmp_path)
    try:
        cookie = _login(console.url, "analyst-us")
        assert _page(console.url, cookie).status_code == 200
        # Revoke the token (a registry without it): the session ends with it.
        tokens = console.app.state.tokens
        revoked = hashlib.sha256(TOKENS["analyst-us"].encode()).hexdigest()
        console.app.state.tokens = dataclasses.replace(
            tokens, principals={k: v for k, v in tokens.principals.items() if k != revoked}
        )
        assert _page(console.url, cookie).status_code == 303
        console.app.state.tokens = tokens
        assert _page(console.url, cookie).status_code == 200
        # Past its expiry, a session is gone (and purged).
        store = console.service.store
        with sqlite3.connect(tmp_path / "meshgov.db") as db:
            db.execute("UPDATE console_sessions SET expires_at = 1")
        assert _page(console.url, cookie).status_code == 303
        assert store.purge_sessions(2.0) == 1
        # A cookie that was never issued, or absurdly long, is no session either.
        assert _page(console.url, "made-up").status_code == 303
        assert _page(console.url, "x" * 10_000).status_code == 303
    finally:
        console.stop()
