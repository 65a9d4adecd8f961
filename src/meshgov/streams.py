"""Governed event streams: each raw event of an ``events`` port relayed per grant, governed.

A ``Relay`` reads the port's raw stream with a durable consumer, in micro-batches. Each batch is
decoded against the port's columns (the event schema) into one Arrow table; each subscriber
(a principal and a purpose) gets the port's secure SQL (``meshgov.governed``: the gateway's
decision, the grant's row filter as parsed by sqlglot, the masks of ``core/sql/masks.py``) run by
DuckDB over that table, and every surviving event is published, masked and without hidden fields,
to ``<gov>.<purpose>.<principal>.<domain>.<name>.<port>``.

Guarantees (docs/enforcement.md):
- at-least-once: a raw event is acknowledged only after every governed (and dead-letter) publish
  of its batch was persisted; otherwise the batch is kept and retried before any newer event
  (should the relay die, the broker redelivers it after ``ack_wait``). Each governed event
  carries ``Nats-Msg-Id`` = raw stream, raw sequence and subscriber, so a republish is dropped
  by the broker within its duplicate window, and a consumer can still detect one by that id.
- each governed event says which policy revision governed it (``Meshgov-Policy-Revision``);
  decisions are taken per batch, so a policy change applies from the next batch on.
- nothing is forwarded raw: an event that is not JSON, not an object, misses a required field, has
  a value of the wrong type or exceeds the port's ``maxEventBytes`` goes to
  ``<dlq>.<domain>.<name>.<port>`` with the reason (``Meshgov-Reason``), for the owners only.
- when the policy engine fails, nothing is published and nothing acknowledged: the batch is
  retried after ``retry_delay``.

Decoding and encoding events, and the pull API's reader, are in ``meshgov.event_batches``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshgov.brokers.base import (
    Broker,
    BrokerError,
    BrokerMessage,
    OutgoingMessage,
    PendingPublish,
)
from meshgov.errors import AccessDenied, BackendUnavailable, InputError
from meshgov.event_batches import SEQ_COLUMN, decode_events, events_port, governed_events

if TYPE_CHECKING:
    from meshgov.core.principal import Principal
    from meshgov.gateway import Gateway
    from meshgov.governed import GovernedPort, GovernedRunner

log = logging.getLogger("meshgov.streams")

REVISION_HEADER = "Meshgov-Policy-Revision"
VERSION_HEADER = "Meshgov-Product-Version"
RAW_SEQ_HEADER = "Meshgov-Raw-Sequence"
REASON_HEADER = "Meshgov-Reason"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
# Room left for a message's headers under the broker's payload limit.
_HEADER_ROOM = 4096


@dataclass(frozen=True)
class RelayConfig:
    governed_prefix: str = "gov"
    dead_letter_prefix: str = "dlq"
    stream_prefix: str = "MESHGOV"
    batch: int = (
        4000  # events per micro-batch: per-batch costs (the SQL run, a pull request) amortised
    )
    fetch_timeout: float = 0.02
    retry_delay: float = 1.0
    duplicate_window: float = 120.0
    # A fetched event not acknowledged within this time is delivered again (a relay that died
    # or lost its connection mid-batch).
    ack_wait: float = 30.0

    @classmethod
    def in_namespace(cls, namespace: str, **options: Any) -> RelayConfig:
        """The prefixes of ``MESHGOV_STREAM_NAMESPACE`` (the service and `meshgov stream serve`)."""
        return cls(
            governed_prefix=f"{namespace}gov",
            dead_letter_prefix=f"{namespace}dlq",
            stream_prefix=f"{namespace.upper()}MESHGOV",
            **options,
        )


@dataclass(frozen=True)
class Subscriber:
    """Who receives a governed stream: a principal, for one purpose."""

    principal: Principal
    purpose: str

    def __post_init__(self) -> None:
        for label, value in (("principal id", self.principal.id), ("purpose", self.purpose)):
            if not _TOKEN.match(value):
                raise InputError(
                    f"{label} {value!r} cannot name a subject: letters, digits, '_' and '-' only"
                )


@dataclass
class RelayStats:
    batches: int = 0
    events: int = 0
    published: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    retried_batches: int = 0
    duplicates: int = 0
    revisions: set[str] = field(default_factory=set)


# ------------------------------------------------------------------------------ the relay


def _token(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)


class Relay:
    """Relays one events port to its governed subjects; ``run`` until ``stop`` is set."""

    def __init__(
        self,
        broker: Broker,
        gateway: Callable[[], Gateway],
        runner: GovernedRunner,
        product: str,
        port: str,
        subscribers: list[Subscriber],
        config: RelayConfig | None = None,
        *,
        on_decision: Callable[[Subscriber, GovernedPort | None, str | None], None] | None = None,
    ) -> None:
        self.broker = broker
        self.gateway = gateway
        self.runner = runner
        self.product = product
        self.port = port
        self.subscribers = subscribers
        self.config = config or RelayConfig()
        self.stats = RelayStats()
        self._on_decision = on_decision
        self._logged: dict[tuple[str, str], str] = {}
        manifest, declared = events_port(gateway(), product, port)
        assert declared.stream is not None
        self.raw_subject = declared.stream.subject
        self.raw_stream = declared.stream.name
        domain, name = manifest.metadata.domain, manifest.metadata.name
        self._path = f"{domain}.{name}.{port}"
        stem = _token(f"{domain}_{name}_{port}").upper()
        self.governed_stream = f"{self.config.stream_prefix}_GOV_{stem}"
        self.dead_letter_stream = f"{self.config.stream_prefix}_DLQ_{stem}"
        self.dead_letter_subject = f"{self.config.dead_letter_prefix}.{self._path}"
        self.consumer = f"{self.config.stream_prefix}_relay_{stem}".lower()
        self._subscription: Any = None
        # Fetched batches not yet written (a failed one first), and the one written whose
        # receipts are awaited.
        self._unpublished: collections.deque[list[BrokerMessage]] = collections.deque()
        self._inflight: tuple[list[BrokerMessage], PendingPublish] | None = None

    def subject_for(self, subscriber: Subscriber) -> str:
        return (
            f"{self.config.governed_prefix}.{subscriber.purpose}.{subscriber.principal.id}."
            f"{self._path}"
        )

    async def start(self) -> None:
        """Create the governed and dead-letter streams and the durable consumer of the raw one."""
        stream = self.raw_stream or await self.broker.stream_of(self.raw_subject)
        if stream is None:
            raise BrokerError(f"no stream captures {self.raw_subject} (create it first)")
        self.raw_stream = stream
        window = self.config.duplicate_window
        await self.broker.ensure_stream(
            self.governed_stream,
            [f"{self.config.governed_prefix}.*.*.{self._path}"],
            duplicate_window=window,
        )
        await self.broker.ensure_stream(
            self.dead_letter_stream, [self.dead_letter_subject], duplicate_window=window
        )
        self._subscription = await self.broker.durable(
            stream,
            self.raw_subject,
            self.consumer,
            ack_wait=self.config.ack_wait,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop``, pipelined: a batch's governed events are written, then the next
        batch is fetched and governed while the broker persists them; the earlier batch's
        receipts are awaited (and its raw events acknowledged) before the next one is written.
        Publishes stay in raw order; a failed batch is retried before any later one."""
        try:
            while not stop.is_set():
                try:
                    if self._subscription is None:
                        await self.start()
                    handled = await self._step(pipelined=True)
                    if not handled and self._unpublished:
                        await _sleep_or_stop(stop, self.config.retry_delay)
                except BackendUnavailable as exc:
                    log.warning("relay %s:%s: %s; retrying", self.product, self.port, exc.message)
                    await _sleep_or_stop(stop, self.config.retry_delay)
        finally:
            with contextlib.suppress(BackendUnavailable):
                await self._confirm_inflight()

    async def run_once(self) -> int:
        """Fetch, govern and publish one micro-batch and acknowledge its raw events; returns the
        number of raw events handled.

        A batch that fails (policy engine, broker) is kept and retried first on the next call,
        before any newer event; none of its events is acknowledged until all its governed and
        dead-letter publishes were persisted.
        """
        return await self._step(pipelined=False)

    async def _step(self, *, pipelined: bool) -> int:
        if not self._unpublished:
            messages = await self._subscription.fetch(self.config.batch, self.config.fetch_timeout)
            if not messages:
                await self._confirm_inflight()  # nothing new: finish the batch in flight now
                return 0
            self._unpublished.append(messages)
        messages = self._unpublished[0]
        try:
            outgoing = self._govern(messages)
        except BackendUnavailable as exc:
            # The policy engine failed: nothing forwarded, nothing acknowledged; retried.
            self.stats.retried_batches += 1
            log.warning("relay %s:%s: %s; batch retried", self.product, self.port, exc.message)
            await self._confirm_inflight()
            return 0
        await self._confirm_inflight()
        try:
            receipts = await self.broker.start_publish(outgoing)
        except BrokerError:
            # Republished on retry with the same message ids: the broker drops what it has.
            self.stats.retried_batches += 1
            raise
        self._inflight = (self._unpublished.popleft(), receipts)
        if not pipelined:
            await self._confirm_inflight()
        return len(messages)

    async def _confirm_inflight(self) -> None:
        """Await the receipts of the batch in flight, then acknowledge its raw events; if the
        broker did not persist all of it, it goes back first in line (``BrokerError``)."""
        if self._inflight is None:
            return
        messages, pending = self._inflight
        self._inflight = None
        try:
            receipts = await pending.receipts()
        except BrokerError:
            self.stats.retried_batches += 1
            self._unpublished.appendleft(messages)
            raise
        except BaseException:
            self._unpublished.appendleft(messages)  # cancelled: unconfirmed, so still first
            raise
        self.stats.duplicates += sum(1 for r in receipts if r.duplicate)
        await self._acknowledge(messages)
        self.stats.batches += 1
        self.stats.events += len(messages)

    async def _acknowledge(self, messages: list[BrokerMessage]) -> None:
        """Acknowledge each event of a relayed batch, all in one write. Never by the last event
        alone (``AckPolicy.ALL``): an event delivered but lost on its way (a connection cut
        mid-batch) would be acknowledged by the ones after it and never relayed. A lost
        acknowledgement means a redelivery, whose republish is dropped as a duplicate."""
        try:
            await self._subscription.ack_many(messages)
        except BackendUnavailable as exc:
            log.warning(
                "relay %s:%s: acknowledgement of %d event(s) lost (%s)",
                self.product,
                self.port,
                len(messages),
                exc.message,
            )

    def _govern(self, messages: list[BrokerMessage]) -> list[OutgoingMessage]:
        from meshgov.governed import governed_port

        gateway = self.gateway()
        manifest, declared = events_port(gateway, self.product, self.port)
        assert declared.stream is not None
        table, bad = decode_events(declared, messages, declared.stream.max_event_bytes)
        outgoing: list[OutgoingMessage] = []
        for message, reason in bad:
            outgoing.append(self._dead_letter(message, reason))
        self.stats.dead_lettered += len(bad)
        dead = len(bad)
        limit = self.broker.max_payload - _HEADER_ROOM
        by_sequence: dict[int, BrokerMessage] = {}
        for subscriber in self.subscribers:
            try:
                governed = governed_port(
                    gateway,
                    subscriber.principal,
                    subscriber.purpose,
                    self.product,
                    self.port,
                    extra_columns=(SEQ_COLUMN,),
                )
            except AccessDenied as exc:
                self._note(subscriber, None, exc.message)
                continue
            self._note(subscriber, governed, None)
            self.stats.revisions.add(governed.policy_revision)
            subject = self.subject_for(subscriber)
            headers = {
                REVISION_HEADER: governed.policy_revision,
                VERSION_HEADER: manifest.metadata.version,
            }
            survivors = governed_events(self.runner.run(governed, table), governed)
            self.stats.filtered += table.num_rows - len(survivors)
            for sequence, data in survivors:
                if len(data) > limit:
                    # Masks can lengthen an event past what the broker carries: the owners get
                    # it as a dead letter (never raw to the subscriber), the stream goes on.
                    by_sequence = by_sequence or {m.sequence: m for m in messages}
                    reason = (
                        f"the governed event for {subscriber.principal.id} "
                        f"({subscriber.purpose}) has {len(data)} bytes, over the broker's limit"
                    )
                    outgoing.append(
                        self._dead_letter(by_sequence[sequence], reason, for_whom=subject)
                    )
                    self.stats.dead_lettered += 1
                    dead += 1
                    continue
                outgoing.append(
                    OutgoingMessage(
                        subject=subject,
                        data=data,
                        msg_id=f"{self.raw_stream}:{sequence}:{subscriber.purpose}:"
                        f"{subscriber.principal.id}",
                        headers={**headers, RAW_SEQ_HEADER: str(sequence)},
                    )
                )
        self.stats.published += len(outgoing) - dead
        return outgoing

    def _dead_letter(
        self, message: BrokerMessage, reason: str, *, for_whom: str = ""
    ) -> OutgoingMessage:
        # The payload is kept when the broker can carry it (so nothing is lost); the reason and
        # the raw position always are. The dead-letter subject is the owners', never a consumer's.
        limit = max(self.broker.max_payload - _HEADER_ROOM, 0)
        data = message.data if len(message.data) <= limit else b""
        return OutgoingMessage(
            subject=self.dead_letter_subject,
            data=data,
            msg_id=f"{self.raw_stream}:{message.sequence}:dead-letter{':' if for_whom else ''}"
            f"{for_whom}",
            headers={
                REASON_HEADER: reason,
                RAW_SEQ_HEADER: str(message.sequence),
                "Meshgov-Raw-Subject": message.subject,
            },
        )

    def _note(
        self, subscriber: Subscriber, governed: GovernedPort | None, denied: str | None
    ) -> None:
        """Tell ``on_decision`` (the decision log) once per subscriber and outcome."""
        key = (subscriber.principal.id, subscriber.purpose)
        outcome = governed.policy_revision if governed is not None else f"denied:{denied}"
        if self._logged.get(key) == outcome:
            return
        self._logged[key] = outcome
        if denied is not None:  # expected for most (principal, purpose) pairs: not a warning
            log.info("relay %s:%s: %s gets nothing: %s", self.product, self.port, key, denied)
        if self._on_decision is not None:
            self._on_decision(subscriber, governed, denied)

    async def close(self) -> None:
        with contextlib.suppress(BackendUnavailable):
            await self._confirm_inflight()
        if self._subscription is not None:
            await self._subscription.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# ------------------------------------------------------------------------------ serving
def events_ports(gateway: Gateway) -> list[tuple[str, str]]:
    """Every ``events`` port of the catalogue that declares its stream, as (product, port)."""
    return sorted(
        (manifest.id, port.name)
        for manifest in gateway.catalog.manifests.values()
        for port in manifest.spec.output_ports
        if port.stream is not None
    )


async def run_relays(
    broker_url: str,
    gateway: Callable[[], Gateway],
    hash_key: bytes,
    ports: list[tuple[str, str]],
    subscribers: list[Subscriber],
    stop: asyncio.Event,
    config: RelayConfig | None = None,
    *,
    on_decision: Callable[[Subscriber, GovernedPort | None, str | None], None] | None = None,
    on_started: Callable[[list[Relay]], None] | None = None,
) -> None:
    """Relay ``ports`` to their governed subjects until ``stop`` is set (one task per port)."""
    from meshgov.brokers import open_broker
    from meshgov.governed import GovernedRunner

    broker = await open_broker(broker_url)
    runner = GovernedRunner(hash_key)
    relays = [
        Relay(broker, gateway, runner, product, port, subscribers, config, on_decision=on_decision)
        for product, port in ports
    ]
    try:
        for relay in relays:
            await relay.start()
        if on_started is not None:
            on_started(relays)
        await asyncio.gather(*(relay.run(stop) for relay in relays))
    finally:
        for relay in relays:
            await relay.close()
        await broker.close()
        runner.close()


class RelayThread:
    """``run_relays`` on its own event loop in a daemon thread (``meshgov serve``).

    When the broker is unreachable it logs one clear warning and tries again every
    ``retry_seconds``; the rest of the service is served meanwhile.
    """

    def __init__(
        self,
        broker_url: str,
        gateway: Callable[[], Gateway],
        hash_key: bytes,
        subscribers: Callable[[], list[Subscriber]],
        config: RelayConfig | None = None,
        *,
        on_decision: Callable[[Subscriber, GovernedPort | None, str | None], None] | None = None,
        retry_seconds: float = 5.0,
    ) -> None:
        import threading

        self._args = (broker_url, gateway, hash_key, subscribers, config, on_decision)
        self._retry = retry_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.relays: list[Relay] = []
        self._thread = threading.Thread(target=self._main, name="meshgov-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        url, gateway, hash_key, subscribers, config, on_decision = self._args
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        warned = False
        while not self._stop.is_set():
            ports = events_ports(gateway())
            if not ports:
                await _sleep_or_stop(self._stop, self._retry)
                continue
            try:
                await run_relays(
                    url,
                    gateway,
                    hash_key,
                    ports,
                    subscribers(),
                    self._stop,
                    config,
                    on_decision=on_decision,
                    on_started=self._started,
                )
            except BackendUnavailable as exc:
                if not warned:
                    log.warning(
                        "event streams are not relayed: %s (retrying every %.0f s; everything "
                        "else is served)",
                        exc.message,
                        self._retry,
                    )
                    warned = True
                await _sleep_or_stop(self._stop, self._retry)

    def _started(self, relays: list[Relay]) -> None:
        self.relays = relays
        for relay in relays:
            log.info(
                "relaying %s to %s.<purpose>.<principal>.%s (dead letters: %s)",
                relay.raw_subject,
                relay.config.governed_prefix,
                relay._path,
                relay.dead_letter_subject,
            )

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
