"""NATS JetStream behind ``meshgov.brokers.base.Broker`` (nats-py).

Streams hold the events; a durable pull consumer is the relay's position (acknowledged events are
not redelivered, the rest are, across restarts); ``Nats-Msg-Id`` lets JetStream drop a republished
duplicate within the stream's ``duplicate_window``. Publishes take a thin path of their own: every
message of a batch is written with a reply subject under one inbox of this broker (one
subscription for all acknowledgements) without yielding to the event loop between them, so a
batch leaves in a few socket writes (nats-py's ``publish_async`` yields once per message, and its
flusher then writes each alone); then every acknowledgement is awaited: nothing is reported
published that JetStream did not persist. The client reconnects by itself; operations during an
outage fail with ``BrokerError`` and the caller retries (the raw events stay unacknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from meshgov.brokers.base import (
    BrokerError,
    BrokerMessage,
    OutgoingMessage,
    PublishReceipt,
)

MSG_ID_HEADER = "Nats-Msg-Id"
_NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    nats.js.errors.Error,
    asyncio.TimeoutError,
    OSError,
)


def _stream_sequence(msg: Msg) -> int:
    """The stream sequence from the reply subject (``$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>...``, or with domain and account hash first), without nats-py's metadata
    object; anything else falls back to it."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5])
    if len(tokens) >= 12 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[7])
    return int(msg.metadata.sequence.stream)


def _message(msg: Msg) -> BrokerMessage:
    async def ack() -> None:
        await msg.ack()

    async def nak(delay: float) -> None:
        await msg.nak(delay=delay or None)

    return BrokerMessage(
        subject=msg.subject,
        data=msg.data,
        headers=dict(msg.headers or {}),
        sequence=_stream_sequence(msg),
        ack=ack,
        nak=nak,
    )


class NatsSubscription:
    def __init__(self, subscription: Any) -> None:
        self._subscription = subscription

    async def fetch(self, batch: int, timeout: float) -> list[BrokerMessage]:
        try:
            messages = await self._subscription.fetch(batch, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except _NATS_ERRORS as exc:
            raise BrokerError(f"NATS fetch failed ({type(exc).__name__})") from None
        return [_message(m) for m in messages]

    async def close(self) -> None:
        with contextlib.suppress(*_NATS_ERRORS):
            await self._subscription.unsubscribe()


class NatsBroker:
    """One NATS connection and its JetStream context."""

    def __init__(self, client: Client, publish_timeout: float) -> None:
        self._client = client
        self._js = client.jetstream()
        self._publish_timeout = publish_timeout
        self._inbox = client.new_inbox()
        self._tokens = itertools.count()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ack_subscription: Any = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        connect_timeout: float = 2.0,
        publish_timeout: float = 5.0,
        reconnect_wait: float = 0.25,
    ) -> NatsBroker:
        async def quiet(_: Exception) -> None:
            return None  # outages surface as BrokerError on the operation that meets them

        try:
            # Reconnects are unlimited once connected, so the first connection is bounded here
            # (nats-py would otherwise retry it for ever).
            client = await asyncio.wait_for(
                nats.connect(
                    servers=[url],
                    connect_timeout=connect_timeout,
                    reconnect_time_wait=reconnect_wait,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=quiet,
                ),
                connect_timeout * 2,
            )
        except _NATS_ERRORS as exc:
            raise BrokerError(f"cannot connect to NATS at {url} ({type(exc).__name__})") from None
        return cls(client, publish_timeout)

    @property
    def max_payload(self) -> int:
        return int(self._client.max_payload)

    async def ensure_stream(
        self, name: str, subjects: list[str], *, duplicate_window: float = 120.0
    ) -> None:
        try:
            await self._js.stream_info(name)
            return
        except nats.js.errors.NotFoundError:
            pass
        except _NATS_ERRORS as exc:
            raise BrokerError(f"NATS stream {name}: {type(exc).__name__}") from None
        try:
            await self._js.add_stream(
                name=name, subjects=subjects, duplicate_window=duplicate_window
            )
        except _NATS_ERRORS as exc:
            raise BrokerError(f"cannot create NATS stream {name} ({exc})") from None

    async def delete_stream(self, name: str) -> None:
        try:
            await self._js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            return
        except _NATS_ERRORS as exc:
            raise BrokerError(f"cannot delete NATS stream {name} ({type(exc).__name__})") from None

    async def stream_of(self, subject: str) -> str | None:
        try:
            return str(await self._js.find_stream_name_by_subject(subject))
        except nats.js.errors.NotFoundError:
            return None
        except _NATS_ERRORS as exc:
            raise BrokerError(f"NATS stream lookup failed ({type(exc).__name__})") from None

    async def durable(
        self,
        stream: str,
        subject: str,
        name: str,
        *,
        ack_wait: float = 30.0,
        ack_all: bool = False,
    ) -> NatsSubscription:
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.ALL if ack_all else api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_ack_pending=100_000,
            max_deliver=-1,
        )
        try:
            sub = await self._js.pull_subscribe(subject, durable=name, stream=stream, config=config)
        except _NATS_ERRORS as exc:
            raise BrokerError(f"cannot consume NATS stream {stream} ({exc})") from None
        return NatsSubscription(sub)

    async def reader(self, stream: str, subject: str, start: int) -> NatsSubscription:
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start, 1),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        try:
            sub = await self._js.pull_subscribe(subject, stream=stream, config=config)
        except _NATS_ERRORS as exc:
            raise BrokerError(f"cannot read NATS stream {stream} ({exc})") from None
        return NatsSubscription(sub)

    async def _on_ack(self, msg: Msg) -> None:
        future = self._acks.pop(msg.subject.rpartition(".")[2], None)
        if future is None or future.done():
            return
        try:
            ack = json.loads(msg.data) if msg.data else None
        except ValueError:
            ack = None
        if not isinstance(ack, dict) or "error" in ack or "seq" not in ack:
            # No stream for the subject (a 503 status with no body), or JetStream's error.
            status = (msg.headers or {}).get("Status", "")
            future.set_exception(BrokerError(f"NATS did not persist a message ({status or ack})"))
        else:
            future.set_result(ack)

    async def publish_many(self, messages: list[OutgoingMessage]) -> list[PublishReceipt]:
        if not messages:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[dict[str, Any]]] = []
        tokens: list[str] = []
        try:
            if self._ack_subscription is None:
                self._ack_subscription = await self._client.subscribe(
                    f"{self._inbox}.*", cb=self._on_ack
                )
            publish = self._client.publish
            for message in messages:
                token = str(next(self._tokens))
                future: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._acks[token] = future
                tokens.append(token)
                futures.append(future)
                # Does not yield unless the pending buffer is full (then it flushes).
                await publish(
                    message.subject,
                    message.data,
                    reply=f"{self._inbox}.{token}",
                    headers={**message.headers, MSG_ID_HEADER: message.msg_id},
                )
            acks = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), self._publish_timeout
            )
        except _NATS_ERRORS as exc:
            raise BrokerError(f"NATS publish failed ({type(exc).__name__})") from None
        finally:
            for token in tokens:
                self._acks.pop(token, None)
        receipts: list[PublishReceipt] = []
        for ack in acks:
            if isinstance(ack, BrokerError):
                raise ack
            if isinstance(ack, BaseException):
                raise BrokerError(f"NATS did not persist a message ({type(ack).__name__})")
            receipts.append(PublishReceipt(int(ack["seq"]), bool(ack.get("duplicate"))))
        return receipts

    async def close(self) -> None:
        with contextlib.suppress(*_NATS_ERRORS):
            await self._client.close()
