"""Event brokers behind one small interface (``meshgov.brokers.base.Broker``), one file each.

``nats.py`` speaks NATS JetStream. A Kafka adapter is one more file implementing the same
interface (topics for subjects, consumer-group offsets for durable consumers, idempotent producer
for message ids); nothing else in meshgov names a broker.
"""

from __future__ import annotations

from typing import Any

from meshgov.brokers.base import Broker, BrokerError, BrokerMessage, OutgoingMessage

__all__ = ["Broker", "BrokerError", "BrokerMessage", "OutgoingMessage", "open_broker"]


async def open_broker(url: str, **options: Any) -> Broker:
    """A connected broker for ``url`` (``nats://host:port``)."""
    if url.startswith(("nats://", "tls://")):
        from meshgov.brokers.nats import NatsBroker

        return await NatsBroker.connect(url, **options)
    from meshgov.errors import InputError

    raise InputError(f"unknown broker URL {url!r}: use nats://host:port")
