"""What the export and events routes share: the governed runner and the broker, one per app.

Both are created on first use (a service without exports or events never starts them) and
closed with the app (``close_streaming``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from fastapi import Request

from meshgov.errors import BackendUnavailable

if TYPE_CHECKING:
    from meshgov.brokers.base import Broker
    from meshgov.governed import GovernedRunner

_LOCK = threading.Lock()


def governed_runner(request: Request) -> GovernedRunner:
    state: Any = request.app.state
    runner: GovernedRunner | None = getattr(state, "governed_runner", None)
    if runner is None:
        with _LOCK:
            runner = getattr(state, "governed_runner", None)
            if runner is None:
                from meshgov.governed import GovernedRunner

                runner = GovernedRunner(state.settings.hash_key())
                state.governed_runner = runner
    return runner


async def event_broker(request: Request) -> Broker:
    """The app's broker connection (same event loop as the request), or 503 without one."""
    state: Any = request.app.state
    url = state.settings.nats_url
    if not url:
        raise BackendUnavailable("no event broker is configured (MESHGOV_NATS_URL)")
    lock: asyncio.Lock | None = getattr(state, "broker_lock", None)
    if lock is None:  # no await between the check and the set: one lock per app
        lock = state.broker_lock = asyncio.Lock()
    async with lock:
        broker: Broker | None = getattr(state, "event_broker", None)
        if broker is None:
            from meshgov.brokers import open_broker

            broker = await open_broker(url)
            state.event_broker = broker
    return broker


async def close_streaming(state: Any) -> None:
    broker = getattr(state, "event_broker", None)
    if broker is not None:
        await broker.close()
        state.event_broker = None
    runner = getattr(state, "governed_runner", None)
    if runner is not None:
        runner.close()
        state.governed_runner = None
