"""Governed event streams: each raw event of an ``events`` port relayed per grant, governed.

A ``Relay`` reads the port's raw stream with a durable consumer, in micro-batches. Each batch is
decoded against the port's columns (the event schema) into one Arrow table; each subscriber
(a principal and a purpose) gets the port's secure SQL (``meshgov.governed``: the gateway's
decision, the grant's row filter as parsed by sqlglot, the masks of ``core/sql/masks.py``) run by
DuckDB over that table, and every surviving event is published, masked and without hidden fields,
to ``<gov>.<purpose>.<principal>.<domain>.<name>.<port>``.

Guarantees (docs/enforcement.md):
- at-least-once: a raw event is acknowledged only after every governed (and dead-letter) publish
  of its batch was persisted; otherwise the batch is redelivered. Each governed event carries
  ``Nats-Msg-Id`` = raw stream, raw sequence and subscriber, so a republish is dropped by the
  broker within its duplicate window, and a consumer can still detect one by that id.
- each governed event says which policy revision governed it (``Meshgov-Policy-Revision``);
  decisions are taken per batch, so a policy change applies from the next batch on.
- nothing is forwarded raw: an event that is not JSON, not an object, misses a required field, has
  a value of the wrong type or exceeds the port's ``maxEventBytes`` goes to
  ``<dlq>.<domain>.<name>.<port>`` with the reason (``Meshgov-Reason``), for the owners only.
- when the policy engine fails, nothing is published and nothing acknowledged: the batch is
  retried after ``retry_delay``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import decimal
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshgov.brokers.base import Broker, BrokerError, BrokerMessage, OutgoingMessage
from meshgov.core.manifest import LogicalType
from meshgov.errors import AccessDenied, BackendUnavailable, InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from meshgov.core.manifest import Manifest, OutputPort
    from meshgov.core.principal import Principal
    from meshgov.gateway import Gateway
    from meshgov.governed import GovernedPort, GovernedRunner

log = logging.getLogger("meshgov.streams")

SEQ_COLUMN = "__meshgov_seq"
REVISION_HEADER = "Meshgov-Policy-Revision"
VERSION_HEADER = "Meshgov-Product-Version"
RAW_SEQ_HEADER = "Meshgov-Raw-Sequence"
REASON_HEADER = "Meshgov-Reason"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class RelayConfig:
    governed_prefix: str = "gov"
    dead_letter_prefix: str = "dlq"
    stream_prefix: str = "MESHGOV"
    batch: int = 1000
    fetch_timeout: float = 0.02
    retry_delay: float = 1.0
    duplicate_window: float = 120.0
    # A fetched event not acknowledged within this time is delivered again (a relay that died
    # or lost its connection mid-batch).
    ack_wait: float = 30.0
    # Acknowledge a batch by its last event (one acknowledgement per batch instead of one per
    # event). Only for a single relay per port: several relays sharing the durable consumer
    # must acknowledge each event (`meshgov serve` with several workers does).
    ack_all: bool = True


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


# ------------------------------------------------------------------------------ decoding
def _arrow_type(kind: LogicalType) -> pa.DataType:
    import pyarrow as pa

    return {
        LogicalType.string: pa.string(),
        LogicalType.integer: pa.int64(),
        LogicalType.number: pa.float64(),
        LogicalType.decimal: pa.decimal128(38, 9),
        LogicalType.boolean: pa.bool_(),
        LogicalType.date: pa.date32(),
        LogicalType.timestamp: pa.timestamp("us"),
        LogicalType.binary: pa.binary(),
        # Nested values travel as their JSON text (masks on them are `null`/`redact`).
        LogicalType.array: pa.string(),
        LogicalType.struct: pa.string(),
    }[kind]


class BadEvent(ValueError):
    """Why an event cannot be governed (goes to the dead-letter subject with this reason)."""


def _convert(kind: LogicalType, name: str, value: Any) -> Any:
    def wrong(expected: str) -> BadEvent:
        return BadEvent(f"field {name!r}: expected {expected}, got {type(value).__name__}")

    if kind is LogicalType.string:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if kind is LogicalType.integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        if not -(2**63) <= value < 2**63:
            raise BadEvent(f"field {name!r}: integer out of range")
        return value
    if kind is LogicalType.number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    if kind is LogicalType.decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise wrong("a decimal number")
        try:
            number = decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise BadEvent(f"field {name!r}: {value!r} is not a decimal number") from None
        if not number.is_finite():
            raise BadEvent(f"field {name!r}: {value!r} is not a finite decimal number")
        return number
    if kind is LogicalType.boolean:
        if not isinstance(value, bool):
            raise wrong("a boolean")
        return value
    if kind is LogicalType.date:
        if not isinstance(value, str):
            raise wrong("an ISO date string")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise BadEvent(f"field {name!r}: {value!r} is not an ISO date") from None
    if kind is LogicalType.timestamp:
        if not isinstance(value, str):
            raise wrong("an ISO timestamp string")
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            raise BadEvent(f"field {name!r}: {value!r} is not an ISO timestamp") from None
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
        return stamp
    if kind is LogicalType.binary:
        if not isinstance(value, str):
            raise wrong("base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise BadEvent(f"field {name!r}: not base64") from None
    if kind is LogicalType.array:
        if not isinstance(value, list):
            raise wrong("an array")
        return json.dumps(value, separators=(",", ":"))
    if not isinstance(value, dict):
        raise wrong("an object")
    return json.dumps(value, separators=(",", ":"))


def decode_events(
    port: OutputPort, messages: list[BrokerMessage], max_bytes: int
) -> tuple[pa.Table, list[tuple[BrokerMessage, str]]]:
    """The well-formed events as one Arrow table (port columns + ``SEQ_COLUMN``), and the
    others with the reason each was refused."""
    import pyarrow as pa

    columns = [(c.name, c.type, c.required) for c in port.columns]
    values: list[list[Any]] = [[] for _ in columns]
    sequences: list[int] = []
    bad: list[tuple[BrokerMessage, str]] = []
    for message in messages:
        try:
            if len(message.data) > max_bytes:
                raise BadEvent(f"event of {len(message.data)} bytes exceeds the limit {max_bytes}")
            try:
                event = json.loads(message.data)
            except (ValueError, UnicodeDecodeError):
                raise BadEvent("not JSON") from None
            if not isinstance(event, dict):
                raise BadEvent(f"not a JSON object (a {type(event).__name__})")
            row: list[Any] = []
            for name, kind, required in columns:
                value = event.get(name)
                if value is None:
                    if required:
                        raise BadEvent(f"missing required field {name!r}")
                    row.append(None)
                    continue
                row.append(_convert(kind, name, value))
        except BadEvent as exc:
            bad.append((message, str(exc)))
            continue
        for index, value in enumerate(row):
            values[index].append(value)
        sequences.append(message.sequence)
    arrays = [
        pa.array(column_values, type=_arrow_type(kind))
        for column_values, (_, kind, _) in zip(values, columns, strict=True)
    ]
    arrays.append(pa.array(sequences, type=pa.int64()))
    names = [name for name, _, _ in columns] + [SEQ_COLUMN]
    return pa.Table.from_arrays(arrays, names=names), bad


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")  # 26.79, not the column scale's 26.790000000
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def governed_events(table: pa.Table, governed: GovernedPort) -> list[tuple[int, bytes]]:
    """(raw sequence, governed event as JSON) of the rows the secure SQL returned."""
    names = list(governed.columns)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    sequences = columns[-1]
    rows = zip(*columns[:-1], strict=True)
    out: list[tuple[int, bytes]] = []
    for sequence, row in zip(sequences, rows, strict=True):
        text = json.dumps(
            dict(zip(names, row, strict=True)), default=_json_default, separators=(",", ":")
        )
        out.append((int(sequence), text.encode()))
    return out


# ------------------------------------------------------------------------------ the relay
def events_port(gateway: Gateway, product: str, port: str) -> tuple[Manifest, OutputPort]:
    from meshgov.governed import find_port

    manifest, declared = find_port(gateway.catalog, product, port)
    if declared.stream is None:
        raise InputError(f"{product}:{port} declares no `stream:` (subject) to relay")
    return manifest, declared


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
        self._pending: list[BrokerMessage] | None = None

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
            ack_all=self.config.ack_all,
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self._subscription is None:
                    await self.start()
                handled = await self.run_once()
                if not handled and self._pending is not None:
                    await _sleep_or_stop(stop, self.config.retry_delay)
            except BackendUnavailable as exc:
                log.warning("relay %s:%s: %s; retrying", self.product, self.port, exc.message)
                await _sleep_or_stop(stop, self.config.retry_delay)

    async def run_once(self) -> int:
        """Fetch, govern and publish one micro-batch; returns the number of raw events handled.

        A batch that fails (policy engine, broker) is kept and retried first on the next call,
        before any newer event: acknowledgements stay in stream order, so acknowledging the last
        event of a batch (``ack_all``) never covers an event that was not relayed.
        """
        messages = self._pending
        if messages is None:
            messages = await self._subscription.fetch(self.config.batch, self.config.fetch_timeout)
            if not messages:
                return 0
        self._pending = messages
        try:
            outgoing = self._govern(messages)
        except BackendUnavailable as exc:
            # The policy engine failed: nothing forwarded, nothing acknowledged; retried.
            self.stats.retried_batches += 1
            log.warning("relay %s:%s: %s; batch retried", self.product, self.port, exc.message)
            return 0
        try:
            receipts = await self.broker.publish_many(outgoing)
        except BrokerError:
            # Republished on retry with the same message ids: the broker drops what it has.
            self.stats.retried_batches += 1
            raise
        self._pending = None
        self.stats.duplicates += sum(1 for r in receipts if r.duplicate)
        await self._acknowledge(messages)
        self.stats.batches += 1
        self.stats.events += len(messages)
        return len(messages)

    async def _acknowledge(self, messages: list[BrokerMessage]) -> None:
        """Acknowledge a relayed batch (its last event when the consumer acknowledges all up to
        it); a lost acknowledgement means a redelivery, whose republish is dropped as a
        duplicate."""
        chosen = [max(messages, key=lambda m: m.sequence)] if self.config.ack_all else messages
        results = await asyncio.gather(*(m.ack() for m in chosen), return_exceptions=True)
        failures = sum(1 for r in results if isinstance(r, BaseException))
        if failures:
            log.warning(
                "relay %s:%s: %d acknowledgement(s) lost", self.product, self.port, failures
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
                outgoing.append(
                    OutgoingMessage(
                        subject=subject,
                        data=data,
                        msg_id=f"{self.raw_stream}:{sequence}:{subscriber.purpose}:"
                        f"{subscriber.principal.id}",
                        headers={**headers, RAW_SEQ_HEADER: str(sequence)},
                    )
                )
        self.stats.published += len(outgoing) - len(bad)
        return outgoing

    def _dead_letter(self, message: BrokerMessage, reason: str) -> OutgoingMessage:
        # The payload is kept when the broker can carry it (so nothing is lost); the reason and
        # the raw position always are. The dead-letter subject is the owners', never a consumer's.
        limit = max(self.broker.max_payload - 4096, 0)
        data = message.data if len(message.data) <= limit else b""
        return OutgoingMessage(
            subject=self.dead_letter_subject,
            data=data,
            msg_id=f"{self.raw_stream}:{message.sequence}:dead-letter",
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
        if self._subscription is not None:
            await self._subscription.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# ------------------------------------------------------------------------------ pull API
@dataclass(frozen=True)
class PulledEvent:
    sequence: int
    event: bytes  # governed JSON
    revision: str


async def pull_events(
    broker: Broker,
    gateway: Gateway,
    runner: GovernedRunner,
    principal: Principal,
    purpose: str | None,
    product: str,
    port: str,
    *,
    start: int,
    limit: int,
    wait: float,
    batch: int = 256,
) -> AsyncIterator[PulledEvent]:
    """The principal's governed events of ``product:port`` from raw stream position ``start``.

    Same decision and secure SQL as the relay (and SQL); malformed events are skipped (the
    relay dead-letters them). Stops after ``limit`` governed events, or when no event came for
    ``wait`` seconds. Raises ``AccessDenied`` before reading anything if the decision denies.
    """
    from meshgov.governed import governed_port

    _, declared = events_port(gateway, product, port)
    assert declared.stream is not None
    governed = governed_port(
        gateway, principal, purpose, product, port, extra_columns=(SEQ_COLUMN,)
    )
    stream = declared.stream.name or await broker.stream_of(declared.stream.subject)
    if stream is None:
        raise BrokerError(f"no stream captures {declared.stream.subject}")
    reader = await broker.reader(stream, declared.stream.subject, start)
    sent = 0
    deadline = time.monotonic() + wait
    try:
        while sent < limit and time.monotonic() < deadline:
            messages = await reader.fetch(min(batch, limit - sent), min(0.5, wait))
            if not messages:
                continue
            deadline = time.monotonic() + wait
            table, _bad = decode_events(declared, messages, declared.stream.max_event_bytes)
            for sequence, data in governed_events(runner.run(governed, table), governed):
                yield PulledEvent(sequence, data, governed.policy_revision)
                sent += 1
                if sent >= limit:
                    break
    finally:
        await reader.close()


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
