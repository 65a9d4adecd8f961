"""Governed relay of JSON events over NATS JetStream, beside raw NATS in the same run.

Needs the NATS server (``MESHGOV_NATS_URL``, default nats://127.0.0.1:4222); every stream it
creates is uniquely named and deleted at the end. Phases:

1. raw: publish N JSON events to a JetStream stream (pipelined, every publish acknowledged),
   then consume them with a durable pull consumer (fetch 1,000, ack each): events/s of both.
2. governed throughput: the relay (``meshgov.streams.Relay.run``, micro-batches of 1,000,
   pipelined as ``meshgov stream serve`` runs it) drains the same N events for one subscriber
   (the EU analyst: row filter, e-mail hashed, card partial, one column hidden), each survivor
   published and acknowledged: raw events/s it handles, measured after two warm-up batches
   (what a running relay has already paid once: imports, the decision, DuckDB's relation).
3. latency: events published at a steady rate while the relay runs in its own process; a
   subscriber on the raw subject and one on the governed subject timestamp each arrival
   against the send time carried in the event: p50/p99 of both, and the added p99.

Targets (issue 16): governed relay >= 50,000 events/s on 2 cores; p99 added latency <= 50 ms.

    python bench/stream_bench.py [--events 100000] [--rate 2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.js import api

from meshgov.brokers.base import OutgoingMessage
from meshgov.brokers.nats import NatsBroker
from meshgov.catalog import load_catalog
from meshgov.core.collection import tune_for_batches
from meshgov.core.principal import Principal
from meshgov.gateway import Gateway
from meshgov.governed import GovernedRunner
from meshgov.policy_backends import load_bundle_dir
from meshgov.streams import Relay, RelayConfig, Subscriber

ROOT = Path(__file__).resolve().parents[1]
URL = os.environ.get("MESHGOV_NATS_URL", "nats://127.0.0.1:4222")
TARGET_EVENTS_PER_S = 50_000
TARGET_ADDED_P99_MS = 50.0
TRANSPORT = "relay transport, no governing, not pipelined (meshgov)"
KEY = b"bench-mesh-key"
ANALYST = Principal(id="analyst-eu", groups=["analysts"], attributes={"region": "EU"})


def manifest(ns: str) -> str:
    return f"""apiVersion: meshgov/v1
kind: DataProduct
metadata: {{domain: bench, name: orders, version: 1.0.0, owner: b@acme.example,
           description: Bench orders., status: active}}
spec:
  outputPorts:
    - name: order_events
      kind: events
      stream: {{subject: {ns}.raw, name: {ns.upper()}_RAW}}
      retention: 7d
      columns:
        - {{name: order_id, type: string, required: true, classification: internal}}
        - {{name: email, type: string, classification: confidential, pii: true,
           piiCategory: email, mask: hash}}
        - {{name: card, type: string, classification: confidential, pii: true,
           piiCategory: card, mask: partial}}
        - {{name: amount, type: number, required: true, classification: internal}}
        - {{name: region, type: string, required: true, classification: internal}}
        - {{name: risk_score, type: integer, classification: restricted}}
        - {{name: sent_ns, type: integer, required: true, classification: internal}}
  access:
    grants:
      - to: {{groups: [analysts]}}
        purposes: [analytics]
        rowFilter: "region = {{principal.region}}"
"""


def event(number: int) -> bytes:
    return json.dumps(
        {
            "order_id": f"O{number:08d}",
            "email": f"buyer{number}@example.com",
            "card": f"4111111111{number % 1_000_000:06d}",
            "amount": 10 + number % 500 * 0.5,
            "region": "EU" if number % 2 else "US",
            "risk_score": number % 100,
            "sent_ns": time.time_ns(),
        }
    ).encode()


def config(ns: str, batch: int) -> RelayConfig:
    return RelayConfig(
        governed_prefix=f"{ns}gov",
        dead_letter_prefix=f"{ns}dlq",
        stream_prefix=ns.upper(),
        batch=batch,
        fetch_timeout=0.01,
    )


async def publish(js: Any, subject: str, count: int) -> float:
    started = time.perf_counter()
    pending = []
    for number in range(count):
        pending.append(await js.publish_async(subject, event(number)))
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return count / (time.perf_counter() - started)


def server_cpu() -> float | None:
    """CPU seconds used so far by the local ``nats-server`` process (None: not on this machine,
    or not readable)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "nats-server":
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


class Rates:
    """Events/s of each baseline, the CPU microseconds per event of this process (client side)
    and of the local NATS server, and the load average when each was measured."""

    def __init__(self) -> None:
        self.rates: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.server: dict[str, float | None] = {}
        self.loads: dict[str, float] = {}
        self._cpu = time.process_time()
        self._server = server_cpu()

    def start(self) -> None:
        self._cpu = time.process_time()
        self._server = server_cpu()

    def add(self, name: str, count: int, seconds: float) -> None:
        self.rates[name] = count / seconds
        self.cpu[name] = (time.process_time() - self._cpu) / count * 1e6
        now = server_cpu()
        before = self._server
        self.server[name] = (now - before) / count * 1e6 if now and before is not None else None
        self.loads[name] = os.getloadavg()[0]


async def core_rate(ns: str, count: int) -> float:
    """Core NATS (no JetStream): nats-py publishing to a subscriber on the same connection."""
    client = await nats.connect(URL)
    received = 0
    done = asyncio.Event()

    async def counted(_: Any) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    await client.subscribe(f"{ns}.core", cb=counted, pending_msgs_limit=-1)
    payload = event(1)
    started = time.perf_counter()
    for _ in range(count):
        await client.publish(f"{ns}.core", payload)
    await client.flush()
    await asyncio.wait_for(done.wait(), 120)
    seconds = time.perf_counter() - started
    await client.close()
    return seconds


async def nats_py_consume(stream: str, subject: str, count: int) -> float:
    """nats-py's own pull API: fetch 1,000, acknowledge each (one publish per ack)."""
    client = await nats.connect(URL)
    sub = await client.jetstream().pull_subscribe(
        subject, durable="natspy", stream=stream, config=api.ConsumerConfig(max_ack_pending=100_000)
    )
    started = time.perf_counter()
    consumed = 0
    while consumed < count:
        messages = await sub.fetch(1000, timeout=1)
        await asyncio.gather(*(m.ack() for m in messages))
        consumed += len(messages)
    seconds = time.perf_counter() - started
    await client.close()
    return seconds


async def broker_publish(broker: NatsBroker, subject: str, count: int) -> float:
    """meshgov's publish path (``publish_many``: batches of 1,000, every PubAck awaited)."""
    started = time.perf_counter()
    for start in range(0, count, 1000):
        await broker.publish_many(
            [
                OutgoingMessage(subject, event(number), msg_id=f"{subject}:{number}")
                for number in range(start, min(count, start + 1000))
            ]
        )
    return time.perf_counter() - started


async def broker_consume(
    broker: NatsBroker, stream: str, subject: str, count: int, forward: str | None, batch: int
) -> float:
    """meshgov's consume path (the relay's fetch of 1,000 and ``ack_many``), optionally
    republishing each event as it is to ``forward`` first (the relay's transport without the
    governing: decode, secure SQL, encode)."""
    sub = await broker.durable(stream, subject, f"transport{int(bool(forward))}")
    started = time.perf_counter()
    consumed = 0
    while consumed < count:
        messages = await sub.fetch(batch, 1.0)
        if forward is not None:
            await broker.publish_many(
                [
                    OutgoingMessage(
                        forward,
                        m.data,
                        msg_id=f"{stream}:{m.sequence}:x",
                        headers={"Meshgov-Raw-Sequence": str(m.sequence)},
                    )
                    for m in messages
                ]
            )
        await sub.ack_many(messages)
        consumed += len(messages)
    seconds = time.perf_counter() - started
    await sub.close()
    return seconds


async def raw_phase(ns: str, count: int, batch: int) -> Rates:
    rates = Rates()
    rates.add("core NATS publish -> subscriber (nats-py)", count, await core_rate(ns, count))
    client = await nats.connect(URL)
    js = client.jetstream()
    base, copy = f"{ns.upper()}_BASE", f"{ns.upper()}_COPY"
    await js.add_stream(name=base, subjects=[f"{ns}.base"])
    await js.add_stream(name=copy, subjects=[f"{ns}.copy"])
    rates.start()
    rate = await publish(js, f"{ns}.base", count)
    rates.add("JetStream publish, publish_async (nats-py)", count, count / rate)
    await client.close()
    rates.start()
    seconds = await nats_py_consume(base, f"{ns}.base", count)
    rates.add("JetStream fetch 1,000 + ack each (nats-py)", count, seconds)
    broker = await NatsBroker.connect(URL)
    rates.start()
    seconds = await broker_publish(broker, f"{ns}.copy", count)
    rates.add("JetStream publish_many (meshgov broker)", count, seconds)
    rates.start()
    seconds = await broker_consume(broker, base, f"{ns}.base", count, None, batch)
    rates.add("JetStream fetch + ack_many (meshgov broker)", count, seconds)
    rates.start()
    seconds = await broker_consume(broker, base, f"{ns}.base", count, f"{ns}.copy", batch)
    rates.add(TRANSPORT, count, seconds)
    await broker.close()
    return rates


async def governed_phase(
    ns: str, root: Path, count: int, batch: int
) -> tuple[float, float, int, float, float | None]:
    """(raw events/s warm, raw events/s from a cold start, governed events published, CPU
    microseconds per raw event of this process (the relay's own cost, DuckDB's threads included,
    whatever the load) and of the local NATS server)."""
    # The first batches pay once for what a running relay has already done (imports, the
    # decision, DuckDB's prepared relation): 2 batches of warm-up events are relayed first, and
    # the measure runs from when they are done until ``count`` more are.
    warm_up = 2 * batch
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_stream(name=f"{ns.upper()}_RAW", subjects=[f"{ns}.raw"])
    await publish(js, f"{ns}.raw", warm_up + count)
    await client.close()
    broker = await NatsBroker.connect(URL)
    gateway = Gateway(load_catalog(root), load_bundle_dir(ROOT / "policies"))
    runner = GovernedRunner(KEY)
    tune_for_batches()  # as `meshgov stream serve` does for its process
    relay = Relay(
        broker,
        lambda: gateway,
        runner,
        "bench/orders",
        "order_events",
        [Subscriber(ANALYST, "analytics")],
        config(ns, batch),
    )
    await relay.start()
    # As `meshgov stream serve` runs it (``Relay.run``: pipelined batches) until all are relayed.
    stop = asyncio.Event()
    marks: list[tuple[int, float, float, float | None]] = []

    async def watch() -> None:
        for target in (warm_up, warm_up + count):
            while relay.stats.events < target:
                await asyncio.sleep(0.001)
            marks.append(
                (relay.stats.events, time.perf_counter(), time.process_time(), server_cpu())
            )
        stop.set()

    started = time.perf_counter()
    watcher = asyncio.ensure_future(watch())
    await relay.run(stop)
    await watcher
    (events0, wall0, cpu0, server0), (events1, wall1, cpu1, server1) = marks
    cold = events1 / (wall1 - started)
    handled = events1 - events0
    rate = handled / (wall1 - wall0)
    cpu_per_event = (cpu1 - cpu0) / handled * 1e6
    server_per_event = (
        (server1 - server0) / handled * 1e6 if server1 and server0 is not None else None
    )
    published = relay.stats.published
    await relay.close()
    await broker.close()
    runner.close()
    return rate, cold, published, cpu_per_event, server_per_event


def relay_process(ns: str, root: str, ready: Any, stop_after: float, batch: int) -> None:
    async def main() -> None:
        broker = await NatsBroker.connect(URL)
        gateway = Gateway(load_catalog(root), load_bundle_dir(ROOT / "policies"))
        runner = GovernedRunner(KEY)
        tune_for_batches()  # as `meshgov stream serve` does for its process
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "bench/orders",
            "order_events",
            [Subscriber(ANALYST, "analytics")],
            config(ns, batch),
        )
        await relay.start()
        # Warm the decision, the secure SQL and DuckDB before the measured events.
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(stop_after, stop.set)
        ready.set()
        await relay.run(stop)
        await relay.close()
        await broker.close()

    asyncio.run(main())


async def latency_phase(
    ns: str, root: Path, rate: int, seconds: float, batch: int
) -> tuple[list[float], list[float]]:
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_stream(name=f"{ns.upper()}_RAW", subjects=[f"{ns}.raw"])
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    relay = context.Process(target=relay_process, args=(ns, str(root), ready, seconds + 10, batch))
    relay.start()
    while not ready.is_set():
        await asyncio.sleep(0.05)
    raw_latency: list[float] = []
    governed_latency: list[float] = []

    def timed(into: list[float]) -> Any:
        async def handler(message: Any) -> None:
            sent = json.loads(message.data)["sent_ns"]
            into.append((time.time_ns() - sent) / 1e6)

        return handler

    await client.subscribe(f"{ns}.raw", cb=timed(raw_latency))
    await client.subscribe(
        f"{ns}gov.analytics.analyst-eu.bench.orders.order_events", cb=timed(governed_latency)
    )
    interval = 1 / rate
    started = time.perf_counter()
    number = 0
    while time.perf_counter() - started < seconds:
        number += 1
        await js.publish_async(f"{ns}.raw", event(number))
        # Steady rate: sleep until this event's slot.
        delay = started + number * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(2)
    await client.close()
    relay.terminate()
    relay.join(5)
    # Warm-up: the first second is not counted.
    skip = rate
    return raw_latency[skip:], governed_latency[skip // 2 :]


def per_event(micros: float | None) -> str:
    return "n/a" if micros is None else f"{micros:5.1f} us"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


async def cleanup(ns: str) -> None:
    client = await nats.connect(URL)
    js = client.jetstream()
    for info in await js.streams_info():
        if info.config.name and info.config.name.startswith(ns.upper()):
            await js.delete_stream(info.config.name)
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=2000, help="events/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--batch", type=int, default=RelayConfig.batch, help="relay micro-batch (its default)"
    )
    args = parser.parse_args()
    ns = "bench" + uuid.uuid4().hex[:8]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "orders.yaml").write_text(manifest(ns), encoding="utf-8")
        try:
            baselines = asyncio.run(raw_phase(ns, args.events, args.batch))
            relay_rate, relay_cold, published, relay_cpu, relay_server = asyncio.run(
                governed_phase(ns, root, args.events, args.batch)
            )
            relay_load = os.getloadavg()[0]
            asyncio.run(cleanup(ns))
            raw, governed = asyncio.run(
                latency_phase(ns, root, args.rate, args.seconds, args.batch)
            )
        finally:
            asyncio.run(cleanup(ns))
    print(
        f"events: {args.events:,} JSON events of ~{len(event(1))} bytes; load at start {load0:.1f}"
    )
    for name, rate in baselines.rates.items():
        print(
            f"{name:<60}: {rate:9,.0f} events/s, {baselines.cpu[name]:5.1f} us CPU/event, "
            f"server {per_event(baselines.server[name])} (load {baselines.loads[name]:.1f})"
        )
    print(
        f"{'governed relay, 1 subscriber':<60}: {relay_rate:9,.0f} events/s (load {relay_load:.1f};"
        f" {published:,} governed events published, warm-up included; target >= "
        f"{TARGET_EVENTS_PER_S:,})"
    )
    print(
        f"{'governed relay from a cold start (warm-up included)':<60}: {relay_cold:9,.0f} events/s"
    )
    print(
        f"relay CPU: {relay_cpu:.1f} us per raw event ({1e6 / relay_cpu:,.0f} events per "
        f"CPU-second of the relay process; micro-batches of {args.batch:,}); NATS server CPU: "
        f"{per_event(relay_server)} per raw event"
    )
    for name in (TRANSPORT, "JetStream fetch 1,000 + ack each (nats-py)"):
        print(f"relay / {name}: {relay_rate / baselines.rates[name]:.2f}x")
    raw_p50, raw_p99 = percentile(raw, 50), percentile(raw, 99)
    gov_p50, gov_p99 = percentile(governed, 50), percentile(governed, 99)
    print(
        f"latency at {args.rate:,} events/s for {args.seconds:.0f} s: raw p50 {raw_p50:.1f} ms "
        f"p99 {raw_p99:.1f} ms ({len(raw):,}); governed p50 {gov_p50:.1f} ms p99 {gov_p99:.1f} "
        f"ms ({len(governed):,})"
    )
    added = gov_p99 - raw_p99
    print(f"added p99 latency: {added:.1f} ms (target <= {TARGET_ADDED_P99_MS:.0f} ms)")
    ok = relay_rate >= TARGET_EVENTS_PER_S and added <= TARGET_ADDED_P99_MS
    print("PASS" if ok else "MISS")


if __name__ == "__main__":
    main()
