"""NATS JetStream behind ``meshgov.brokers.base.Broker`` (nats-py).

Streams hold the events; a durable pull consumer is the relay's position (acknowledged events are
not redelivered, the rest are, across restarts); ``Nats-Msg-Id`` lets JetStream drop a republished
duplicate within the stream's ``duplicate_window``. The hot path takes a thin way of its own over
nats-py's connection: pull requests and their deliveries go through one inbox subscription of
the consumer (``NatsSubscription``); a batch's acknowledgements, and a batch's publishes (each
with a reply subject under one inbox of this broker), are each written in one piece
(``nats_protocol.Writer``), then every publish acknowledgement is awaited: nothing is reported
published that JetStream did not persist; deliveries and publish acknowledgements are taken from
the connection's reads in bulk (``nats_protocol.BulkParser``). The client reconnects by itself;
operations during an outage fail with ``BrokerError`` and the caller retries (the raw events stay
unacknowledged).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from meshgov.brokers.base import (
    NO_HEADERS,
    BrokerError,
    BrokerMessage,
    OutgoingMessage,
    PublishReceipt,
)
from meshgov.brokers.nats_migration import recreate_from_ack_floor
from meshgov.brokers.nats_protocol import BulkHandler, Writer, header_lines, install_bulk_parser

log = logging.getLogger("meshgov.brokers.nats")
MSG_ID_HEADER = "Nats-Msg-Id"
# Replies to meshgov come under this prefix, not NATS's shared ``_INBOX``: pull deliveries carry
# raw events, so a user allowed ``_INBOX.>`` (as NATS clients usually are) must not see them.
# Grant subscribe on it to meshgov's own user only (docs/enforcement.md, "NATS permissions").
INBOX_PREFIX = "_MESHGOV_INBOX"
_NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    nats.js.errors.Error,
    asyncio.TimeoutError,
    OSError,
)


def _stream_sequence(reply: bytes) -> int:
    """The stream sequence from the reply subject (``$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>...``, or with domain and account hash first)."""
    if reply.startswith(b"$JS.ACK."):
        dots = reply.count(b".")
        if dots == 8:
            return int(reply.split(b".", 6)[5])
        if dots >= 11:
            return int(reply.split(b".", 8)[7])
    raise BrokerError(f"not a JetStream delivery (reply subject {reply!r})")


_SUBJECT = re.compile(r"[^\s*>]+(\.[^\s*>]+)*")
_HEADER_KEY = re.compile(r"[!-9;-~]+")  # printable ASCII without ':'


class _Batch:
    """The acknowledgements awaited for one ``publish_many``."""

    __slots__ = ("future", "receipts", "remaining")

    def __init__(self, size: int, future: asyncio.Future[None]) -> None:
        self.future = future
        self.receipts: list[PublishReceipt | None] = [None] * size
        self.remaining = size

    def done(self, index: int, receipt: PublishReceipt) -> None:
        if 0 <= index < len(self.receipts) and self.receipts[index] is None:
            self.receipts[index] = receipt
            self.remaining -= 1
            if self.remaining == 0 and not self.future.done():
                self.future.set_result(None)

    def fail(self, error: BrokerError) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def result(self) -> list[PublishReceipt]:
        self.future.result()  # raises the first refusal
        return [r for r in self.receipts if r is not None]


_CRLF = "\r\n"
# JetStream's publish acknowledgement as nats-server writes it (its PubAck's fields in order;
# 2.9 puts a space after some commas and colons); anything else is read by the JSON parser.
_PUB_ACK = re.compile(
    rb'\{"stream": ?"[^"\\]*", ?"seq": ?(\d+)(?:, ?"domain": ?"[^"\\]*")?(, ?"duplicate": ?true)?\}'
)
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
# What a subscription queues: subject, reply, payload, and the headers (the raw header block
# from the bulk parser, nats-py's parsed dict on its own path, None without).
_Queued = tuple[bytes, bytes, bytes, "bytes | Mapping[str, str] | None"]


def _headers(raw: bytes | Mapping[str, str] | None) -> Mapping[str, str]:
    if not raw:
        return NO_HEADERS
    return header_lines(raw) if isinstance(raw, bytes) else raw


def _from_nats_py(msg: Msg) -> _Queued:
    return (msg.subject.encode(), (msg.reply or "").encode(), msg.data, msg.headers)


class NatsSubscription:
    """A pull consumer read through this broker's own inbox: each pull request
    (``$JS.API.CONSUMER.MSG.NEXT``) has a reply subject of its own under one subscription, whose
    messages are only queued as they arrive (in bulk, from ``BulkParser``); ``fetch`` takes the
    queued deliveries in order and ends a request at its status (404 no messages, 408 expired) or
    when the batch is full. (nats-py's ``fetch`` awaits every message through a task and a
    timeout of its own.) Deliveries of an earlier request that arrive late are kept for the next
    fetch, never dropped."""

    def __init__(self, broker: NatsBroker, stream: str, consumer: str, ephemeral: bool) -> None:
        self._broker = broker
        self._client = broker._client
        self._stream = stream
        self._consumer = consumer
        self._ephemeral = ephemeral
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = self._client.new_inbox()
        self._requests = itertools.count()
        self._queue: collections.deque[_Queued] = collections.deque()
        self._wake: asyncio.Future[None] | None = None
        self._sub: Any = None
        self._prefetch: str | None = None  # the reply subject of a request sent ahead
        self._prefetching = not ephemeral
        self._subjects: dict[bytes, str] = {}

    async def open(self) -> None:
        self._sub = await self._client.subscribe(
            f"{self._inbox}.*",
            cb=self._arrived,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        self._broker._bulk(self._sub, self._delivered)

    async def _arrived(self, msg: Msg) -> None:
        """nats-py's own path (no bulk parser)."""
        self._delivered([_from_nats_py(msg)])

    def _delivered(self, messages: list[Any]) -> None:
        self._queue.extend(messages)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _request(self, batch: int, *, expires: float | None) -> str:
        reply = f"{self._inbox}.{next(self._requests)}"
        request: dict[str, Any] = {"batch": batch}
        if expires is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(expires * 1e9)
        await self._client.publish(self._next, json.dumps(request).encode(), reply=reply)
        return reply

    def _message(self, subject: bytes, reply: bytes, data: bytes, headers: Any) -> BrokerMessage:
        """A delivery; its handle is its acknowledgement subject (bytes, as written back)."""
        text = self._subjects.get(subject)
        if text is None:
            text = subject.decode(errors="replace")
            if len(self._subjects) < 1024:  # a consumer's few subjects, decoded once
                self._subjects[subject] = text
        return BrokerMessage(
            text, data, _headers(headers), _stream_sequence(reply), self._broker, reply
        )

    async def _collect(
        self,
        out: list[BrokerMessage],
        batch: int,
        reply: str | None,
        deadline: float,
        *,
        eager: bool = False,
    ) -> bool:
        """Take queued deliveries into ``out`` until ``batch``, the status of request ``reply``
        (True), or ``deadline`` (loop time); statuses of earlier requests are dropped. With
        ``eager``, return as soon as something came and nothing more is queued (the request
        stays open on the server: what it delivers later is kept for the next fetch)."""
        loop = asyncio.get_running_loop()
        queue = self._queue
        request = reply.encode() if reply is not None else None
        while len(out) < batch:
            while queue and len(out) < batch:
                item = queue.popleft()
                subject, ack_subject, data, headers = item
                if ack_subject:
                    try:
                        out.append(self._message(subject, ack_subject, data, headers))
                    except BrokerError as exc:
                        # Not JetStream's (nothing to acknowledge): skipped, never the
                        # deliveries taken already, which would be lost to this relay.
                        log.warning("NATS consumer %s: %s; skipped", self._consumer, exc)
                    continue
                status = _headers(headers)
                code = status.get("Status", "")
                if code == "409":
                    if out:  # the deliveries before it first; the status on the next fetch
                        queue.appendleft(item)
                        return False
                    description = status.get("Description", "")
                    raise BrokerError(f"NATS consumer {self._consumer}: {description or code}")
                if subject == request and code in ("404", "408"):
                    return True
            if len(out) >= batch or reply is None or (eager and out):
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wake = loop.create_future()
            try:
                await asyncio.wait_for(self._wake, remaining)
            except TimeoutError:
                break
            finally:
                self._wake = None
        return False

    async def fetch(self, batch: int, timeout: float) -> list[BrokerMessage]:
        loop = asyncio.get_running_loop()
        out: list[BrokerMessage] = []
        try:
            if self._sub is None:
                await self.open()
            prefetch, self._prefetch = self._prefetch, None
            # Deliveries already here, and those of the request sent after the last full batch
            # (they came while that batch was being processed).
            await self._collect(out, batch, prefetch, loop.time() + (timeout if prefetch else 0))
            if len(out) < batch:
                # What the stream holds now, at once; only when nothing is there, a request
                # that waits on the server for new events (up to ``timeout``).
                reply = await self._request(batch - len(out), expires=None)
                await self._collect(out, batch, reply, loop.time() + timeout + 1.0)
            if not out:
                reply = await self._request(batch, expires=timeout)
                await self._collect(out, batch, reply, loop.time() + timeout + 0.05, eager=True)
            if len(out) >= batch and self._prefetching:
                # A full batch: more are likely waiting; ask for the next batch now, so that it
                # arrives while this one is processed.
                self._prefetch = await self._request(batch, expires=None)
        except _NATS_ERRORS as exc:
            if out:
                return out
            raise BrokerError(f"NATS fetch failed ({type(exc).__name__})") from None
        return out

    async def ack_many(self, messages: list[BrokerMessage]) -> None:
        writer = self._broker._writer
        try:
            if writer.fast:
                await writer.write([b"PUB %s 0\r\n\r\n" % _reply_of(m) for m in messages])
            else:
                for message in messages:
                    await message.ack()
        except _NATS_ERRORS as exc:
            raise BrokerError(f"NATS acknowledgement failed ({type(exc).__name__})") from None

    async def close(self) -> None:
        with contextlib.suppress(*_NATS_ERRORS):
            if self._sub is not None:
                self._broker._unbulk(self._sub)
                await self._sub.unsubscribe()
            if self._ephemeral:
                await self._broker._js.delete_consumer(self._stream, self._consumer)


def _reply_of(message: BrokerMessage) -> bytes:
    reply = message.handle
    if not isinstance(reply, bytes) or not reply:
        raise BrokerError("a message without its NATS acknowledgement subject")
    return reply


class _PendingBatch:
    """A written batch whose acknowledgements are awaited (``NatsBroker.start_publish``)."""

    def __init__(self, broker: NatsBroker, batch_id: str, batch: _Batch, timeout: float) -> None:
        self._broker = broker
        self._batch_id = batch_id
        self._batch = batch
        self._timeout = timeout

    async def receipts(self) -> list[PublishReceipt]:
        if not self._batch.receipts:
            return []
        try:
            # Counted from here, not from the write: until now the caller held the event loop
            # (governing its next batch), and acknowledgements that had come were not yet read.
            await asyncio.wait_for(asyncio.shield(self._batch.future), self._timeout)
        except _NATS_ERRORS as exc:
            raise BrokerError(f"NATS publish failed ({type(exc).__name__})") from None
        finally:
            self._broker._batches.pop(self._batch_id, None)
        return self._batch.result()


class NatsBroker:
    """One NATS connection and its JetStream context."""

    def __init__(self, client: Client, publish_timeout: float) -> None:
        self._client = client
        self._js = client.jetstream()
        self._publish_timeout = publish_timeout
        self._writer = Writer(client)
        self._parser = install_bulk_parser(client)
        self._inbox = client.new_inbox()
        self._batch_ids = itertools.count()
        self._batches: dict[str, _Batch] = {}
        self._ack_subscription: Any = None
        self._checked: set[str] = set()  # subjects and header names known to be well formed

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        connect_timeout: float = 2.0,
        publish_timeout: float = 5.0,
        reconnect_wait: float = 0.25,
        inbox_prefix: str = INBOX_PREFIX,
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
                    inbox_prefix=inbox_prefix,
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
            durable_name=name,
            filter_subject=subject,
            ack_policy=api.AckPolicy.ALL if ack_all else api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_ack_pending=100_000,
            max_deliver=-1,
        )
        try:
            try:
                info = await self._js.consumer_info(stream, name)
                if info.config.ack_policy != config.ack_policy:
                    await recreate_from_ack_floor(self._js, stream, info, config)
            except nats.js.errors.NotFoundError:
                await self._js.add_consumer(stream, config)
            subscription = NatsSubscription(self, stream, name, ephemeral=False)
            await subscription.open()
        except _NATS_ERRORS as exc:
            raise BrokerError(f"cannot consume NATS stream {stream} ({exc})") from None
        return subscription

    async def reader(self, stream: str, subject: str, start: int) -> NatsSubscription:
        config = api.ConsumerConfig(
            filter_subject=subject,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start, 1),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        try:
            info = await self._js.add_consumer(stream, config)
            subscription = NatsSubscription(self, stream, str(info.name), ephemeral=True)
            await subscription.open()
        except _NATS_ERRORS as exc:
            raise BrokerError(f"cannot read NATS stream {stream} ({exc})") from None
        return subscription

    def _bulk(self, subscription: Any, handler: BulkHandler) -> None:
        """Take ``subscription``'s messages in bulk from the parser, when it is installed (else
        they take the subscription's nats-py callback)."""
        sid = getattr(subscription, "_id", None)
        if self._parser is not None and isinstance(sid, int):
            self._parser.handlers[sid] = handler

    def _unbulk(self, subscription: Any) -> None:
        if self._parser is not None:
            self._parser.handlers.pop(getattr(subscription, "_id", -1), None)

    async def ack(self, message: BrokerMessage) -> None:
        await self._client.publish(_reply_of(message).decode(), b"")

    async def nak(self, message: BrokerMessage, delay: float) -> None:
        payload = b"-NAK"
        if delay > 0:
            payload += b" " + json.dumps({"delay": int(delay * 1e9)}).encode()
        await self._client.publish(_reply_of(message).decode(), payload)

    async def _on_ack(self, msg: Msg) -> None:
        self._acked([_from_nats_py(msg)])

    def _acked(self, messages: list[Any]) -> None:
        for subject, _, data, headers in messages:
            self._settle(subject.decode(errors="replace"), data, headers)

    def _settle(self, subject: str, data: bytes, headers: Any) -> None:
        batch_id, _, index = subject.rpartition(".")
        batch = self._batches.get(batch_id.rpartition(".")[2])
        if batch is None or not index.isdigit():
            return  # a batch that already failed or timed out (or not one of ours)
        plain = None if headers else _PUB_ACK.fullmatch(data)
        if plain is not None:
            batch.done(int(index), PublishReceipt(int(plain[1]), plain[2] is not None))
            return
        try:
            ack = json.loads(data) if data else None
        except ValueError:
            ack = None
        status = _headers(headers).get("Status", "")
        if isinstance(ack, dict) and isinstance(ack.get("seq"), int) and "error" not in ack:
            batch.done(int(index), PublishReceipt(ack["seq"], bool(ack.get("duplicate"))))
        elif status or (isinstance(ack, dict) and "error" in ack):
            # No stream for the subject (a 503 status with no body), or JetStream's error.
            batch.fail(BrokerError(f"NATS did not persist a message ({status or ack})"))
        else:
            # Neither JetStream's acknowledgement nor its refusal (a subscriber of the subject
            # answering the reply subject): not a verdict; JetStream's own answer settles it.
            log.warning("ignored a reply that is not JetStream's on %s", subject)

    def _check(self, name: str, pattern: re.Pattern[str], what: str) -> None:
        if name not in self._checked:
            if not pattern.fullmatch(name):
                raise BrokerError(f"cannot publish: {what} {name!r} is not valid in NATS")
            self._checked.add(name)

    def _command(self, message: OutgoingMessage, reply: str) -> bytes:
        """One ``HPUB`` (subject, reply, headers with ``Nats-Msg-Id``, payload), as nats-py
        would write it."""
        checked = self._checked
        subject, data, msg_id, headers = message
        if subject not in checked:
            self._check(subject, _SUBJECT, "subject")
        lines = []
        for key, value in (*headers.items(), (MSG_ID_HEADER, msg_id)):
            if key not in checked:
                self._check(key, _HEADER_KEY, "header")
            if "\r" in value or "\n" in value:
                value = value.translate(_NEWLINES)
            lines.append(f"{key}: {value.strip()}\r\n")
        header = f"NATS/1.0\r\n{''.join(lines)}\r\n".encode()
        size = len(header) + len(data)
        if size > self.max_payload:
            raise BrokerError(
                f"cannot publish to {subject}: {size} bytes exceed the broker's "
                f"limit of {self.max_payload}"
            )
        return f"HPUB {subject} {reply} {len(header)} {size}\r\n".encode() + header + data + b"\r\n"

    async def publish_many(self, messages: list[OutgoingMessage]) -> list[PublishReceipt]:
        return await (await self.start_publish(messages)).receipts()

    async def start_publish(self, messages: list[OutgoingMessage]) -> _PendingBatch:
        """Every message of the batch is written with a reply subject
        ``<inbox>.<batch>.<index>``, in one piece, and is on its way to the server when this
        returns; the batch's receipts are all its acknowledgements (one future per batch, failed
        by the first refusal, or ``publish_timeout`` after they are awaited)."""
        loop = asyncio.get_running_loop()
        batch_id = str(next(self._batch_ids))
        batch = _Batch(len(messages), loop.create_future())
        pending = _PendingBatch(self, batch_id, batch, self._publish_timeout)
        if not messages:
            return pending
        prefix = f"{self._inbox}.{batch_id}."
        try:
            if self._ack_subscription is None:
                self._ack_subscription = await self._client.subscribe(
                    f"{self._inbox}.*.*",
                    cb=self._on_ack,
                    pending_msgs_limit=-1,
                    pending_bytes_limit=-1,
                )
                self._bulk(self._ack_subscription, self._acked)
            self._batches[batch_id] = batch
            if self._writer.fast:
                commands = [
                    self._command(message, f"{prefix}{index}")
                    for index, message in enumerate(messages)
                ]
                # Bounded: during an outage nats-py's flush would wait for the reconnection.
                await asyncio.wait_for(
                    self._writer.write(commands, sent=True), self._publish_timeout
                )
            else:
                for index, message in enumerate(messages):
                    await self._client.publish(
                        message.subject,
                        message.data,
                        reply=f"{prefix}{index}",
                        headers={**message.headers, MSG_ID_HEADER: message.msg_id},
                    )
        except _NATS_ERRORS as exc:
            self._batches.pop(batch_id, None)
            raise BrokerError(f"NATS publish failed ({type(exc).__name__})") from None
        except BaseException:
            self._batches.pop(batch_id, None)
            raise
        return pending

    async def close(self) -> None:
        with contextlib.suppress(*_NATS_ERRORS):
            await self._client.close()
