"""What the export and events routes share: the governed runner and the broker, one per app.

Both are created on first use (a service without exports or events never starts them) and
closed with the app (``close_streaming``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from fastapi import Request

from meshgov.errors import BackendUnavailable, InputError

if TYPE_CHECKING:
    from meshgov.brokers.base import Broker
    from meshgov.config import Settings
    from meshgov.governed import GovernedPort, GovernedRunner
    from meshgov.service import Service
    from meshgov.streams import RelayThread

log = logging.getLogger("meshgov.api")

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


def start_relay(settings: Settings, service: Service) -> RelayThread | None:
    """With ``nats_url`` and ``stream_relay``: relay every events port to the governed subjects
    of each principal the service knows (its tokens) for each registered purpose. Decisions
    are the current state's (a policy activation applies from the next batch) and are logged
    (kind ``stream``) once per subscriber and revision."""
    if not settings.nats_url or not settings.stream_relay:
        return None
    from meshgov.gateway import registered_purposes
    from meshgov.streams import RelayConfig, RelayThread, Subscriber

    def subscribers() -> list[Subscriber]:
        purposes = sorted(registered_purposes(service.state.bundle))
        chosen: list[Subscriber] = []
        for principal in service.principals:
            for purpose in purposes:
                try:
                    chosen.append(Subscriber(principal, purpose))
                except InputError as exc:  # an id that cannot be a subject token
                    log.warning("no governed stream for %s: %s", principal.id, exc.message)
        return chosen

    def logged(subscriber: Subscriber, governed: GovernedPort | None, denied: str | None) -> None:
        service.record(
            kind="stream",
            principal=subscriber.principal.id,
            product=governed.product if governed is not None else None,
            document=None,
            allowed=governed is not None,
            result={
                "purpose": subscriber.purpose,
                "port": governed.port if governed is not None else None,
                "reason": denied,
            },
            revision=service.state.revision,
        )

    config = RelayConfig.in_namespace(settings.stream_namespace)
    relay = RelayThread(
        settings.nats_url,
        lambda: service.state.gateway,
        settings.hash_key(),
        subscribers,
        config,
        on_decision=logged,
    )
    relay.start()
    return relay
