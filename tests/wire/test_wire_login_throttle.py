"""Failed logins through the wire are delayed, then refused with the wrong-password 28P01.

A server of its own with small limits (3 failures per user name, 5 per address, a 2.5 s window,
delays 0.1 s doubling to 0.2 s); each test starts with the throttle cleared.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from wire_server import WireServer, serve

from meshgov.pgwire.server import PgListener
from meshgov.pgwire.throttle import FailureCounter, LoginThrottle

pytestmark = pytest.mark.postgres
asyncpg = pytest.importorskip("asyncpg")

WINDOW = 2.5
DELAY, MAX_DELAY = 0.1, 0.2
UNKNOWN = "no-such-principal"


@pytest.fixture(scope="module")
def throttled(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str, catalogue_prefix: str
) -> Iterator[WireServer]:
    yield from serve(
        tmp_path_factory.mktemp("wire-throttle"),
        pg_admin_dsn,
        catalogue_prefix,
        pg_login_max_failures=3,
        pg_login_max_failures_per_address=5,
        pg_login_window_seconds=WINDOW,
        pg_login_delay_seconds=DELAY,
        pg_login_max_delay_seconds=MAX_DELAY,
        pg_login_tracked=32,
    )


@pytest.fixture
def server(throttled: WireServer) -> WireServer:
    _listener(throttled).login_throttle.clear()
    return throttled


def _listener(server: WireServer) -> PgListener:
    (listener,) = server.app.state.listeners  # type: ignore[attr-defined]
    assert isinstance(listener, PgListener)
    return listener


def _login(server: WireServer, user: str, password: str) -> tuple[str, str, float]:
    """(SQLSTATE or "ok", the message with the user name replaced, seconds taken)."""

    async def attempt() -> tuple[str, str]:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1",
                port=server.pg_port,
                user=user,
                password=password,
                database="analytics",
                ssl=False,
            )
        except asyncpg.PostgresError as exc:
            return str(exc.sqlstate), str(exc).replace(user, "<user>")
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        return "ok", ""

    started = time.perf_counter()
    state, message = asyncio.run(attempt())
    return state, message, time.perf_counter() - started


WRONG = ("28P01", 'password authentication failed for user "<user>"')


def test_wrong_passwords_are_delayed_then_refused_and_others_unaffected(server: WireServer) -> None:
    first = time.monotonic()
    attempts = [_login(server, "analyst-eu", "not-the-token") for _ in range(3)]
    assert [a[:2] for a in attempts] == [WRONG] * 3
    # The 2nd waited the first delay, the 3rd twice that (a login here takes a few ms).
    assert attempts[1][2] >= DELAY
    assert attempts[2][2] >= 2 * DELAY
    # Past the limit even the right token is refused, with the same answer.
    assert _login(server, "analyst-eu", "dev-analyst-eu")[:2] == WRONG
    # Another user from the same address (3 failures < 5) logs in, after the address's delay.
    other = _login(server, "analyst-us", "dev-analyst-us")
    assert other[0] == "ok"
    assert other[2] >= MAX_DELAY
    # After the window the user may log in again.
    time.sleep(max(0.0, first + WINDOW + 0.1 - time.monotonic()))
    again = _login(server, "analyst-eu", "dev-analyst-eu")
    assert again[0] == "ok"
    assert again[2] < MAX_DELAY


def test_a_successful_login_resets_the_users_failures(server: WireServer) -> None:
    for _ in range(2):
        assert _login(server, "analyst-eu", "wrong")[:2] == WRONG
    assert _login(server, "analyst-eu", "dev-analyst-eu")[0] == "ok"
    for _ in range(2):  # 4 failures in the window, 2 since the success: under the limit of 3
        assert _login(server, "analyst-eu", "wrong")[:2] == WRONG
    assert _login(server, "analyst-eu", "dev-analyst-eu")[0] == "ok"
    # The address's failures are not reset by a success (4 of 5): one more and it is refused.
    assert _login(server, "analyst-us", "wrong")[:2] == WRONG
    assert _login(server, "analyst-us", "dev-analyst-us")[:2] == WRONG


def test_failures_from_one_address_under_many_names_are_refused(server: WireServer) -> None:
    first = time.monotonic()
    for n in range(5):  # one failure per name: no name reaches its own limit
        assert _login(server, f"guess-{n}", "wrong")[:2] == WRONG
    assert _login(server, "guild", "dev-guild")[:2] == WRONG
    time.sleep(max(0.0, first + WINDOW + 0.1 - time.monotonic()))
    assert _login(server, "guild", "dev-guild")[0] == "ok"


def test_unknown_and_known_users_are_throttled_alike(server: WireServer) -> None:
    listener = _listener(server)
    seen: dict[str, list[tuple[str, str, float]]] = {}
    for user in ("analyst-eu", UNKNOWN):
        listener.login_throttle.addresses.clear()  # each user alone against its own limit
        seen[user] = [_login(server, user, "wrong") for _ in range(4)]
        assert listener.login_throttle.refused(user, "127.0.0.1")
    known, unknown = seen["analyst-eu"], seen[UNKNOWN]
    assert [a[:2] for a in known] == [a[:2] for a in unknown] == [WRONG] * 4
    for attempts in (known, unknown):  # the same growing delays for both
        assert attempts[1][2] >= DELAY
        assert attempts[2][2] >= 2 * DELAY
        assert attempts[3][2] >= MAX_DELAY


def test_a_flood_of_distinct_names_stays_bounded(server: WireServer) -> None:
    listener = _listener(server)
    limits = dataclasses.replace(listener.settings.login_limits, max_failures_per_address=0)
    listener.login_throttle = LoginThrottle(limits, time.monotonic)
    try:
        for n in range(80):
            assert _login(server, f"flood-{n}-" + "x" * 200, "wrong")[:2] == WRONG
        assert len(listener.login_throttle.users) == 32
        assert len(listener.login_throttle.addresses) == 0
    finally:
        listener.login_throttle = LoginThrottle(listener.settings.login_limits, time.monotonic)


def test_failure_counter_forgets_old_and_excess_keys() -> None:
    now = [0.0]
    counter = FailureCounter(3, 10.0, 1000, lambda: now[0])
    for n in range(100_000):
        counter.record(f"user-{n}")
        now[0] += 1e-5  # 100,000 names within one window
    assert len(counter) == 1000
    assert counter.count("user-99999") == 1
    assert counter.count("user-0") == 0  # evicted
    now[0] += 10.0
    counter.record("late")
    assert len(counter) == 1  # the whole stale window was dropped
    assert counter.record("late") is False
    assert counter.record("late") is True  # the 3rd failure reaches the limit
    assert counter.exceeded("late")
    now[0] += 10.5
    assert not counter.exceeded("late")


def test_failures_that_end_during_a_login_refuse_it(server: WireServer) -> None:
    """Concurrent attempts all pass the check on arrival: a right token is accepted only if the
    name is still under its limit when its exchange ends. The failures of concurrent attempts
    (from another address) are recorded between the arrival check and the exchange."""
    listener = _listener(server)
    authenticate = listener._authenticate

    async def with_concurrent_failures(*args: Any) -> Any:
        for _ in range(3):
            listener.login_throttle.failed("analyst-eu", "192.0.2.1")
        return await authenticate(*args)

    listener._authenticate = with_concurrent_failures  # type: ignore[method-assign]
    try:
        assert _login(server, "analyst-eu", "dev-analyst-eu")[:2] == WRONG
    finally:
        del listener._authenticate
    assert _login(server, "analyst-us", "dev-analyst-us")[0] == "ok"
