"""Governed relay of JSON events over NATS JetStream, beside raw NATS in the same run.

Needs the NATS server (``MESHGOV_NATS_URL``, default nats://127.0.0.1:4222); every stream it
creates is uniquely named and deleted at the end. Phases:

1. raw: publish N JSON events to a JetStream stream (pipelined, every publish acknowledged),
   then consume them with a durable pull consumer (fetch 1,000, ack each): events/s of both.
2. governed throughput: the relay (``meshgov.streams.Relay``, micro-batches of 1,000) drains the
   same N events for one subscriber (the EU analyst: row filter, e-mail hashed, card partial,
   one column hidden), each survivor published and acknowledged: raw events/s it handles.
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

from meshgov.brokers.nats import NatsBroker
from meshgov.catalog import load_catalog
from meshgov.core.principal import Principal
from meshgov.gateway import Gateway
from meshgov.governed import GovernedRunner
from meshgov.policy_backends import load_bundle_dir
from meshgov.streams import Relay, RelayConfig, Subscriber

ROOT = Path(__file__).resolve().parents[1]
URL = os.environ.get("MESHGOV_NATS_URL", "nats://127.0.0.1:4222")
TARGET_EVENTS_PER_S = 50_000
TARGET_ADDED_P99_MS = 50.0
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


def config(ns: str) -> RelayConfig:
    return RelayConfig(
        governed_prefix=f"{ns}gov",
        dead_letter_prefix=f"{ns}dlq",
        stream_prefix=ns.upper(),
        batch=1000,
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


async def raw_phase(ns: str, count: int) -> tuple[float, float]:
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_stream(name=f"{ns.upper()}_BASE", subjects=[f"{ns}.base"])
    publish_rate = await publish(js, f"{ns}.base", count)
    sub = await js.pull_subscribe(
        f"{ns}.base",
        durable="base",
        stream=f"{ns.upper()}_BASE",
        config=api.ConsumerConfig(max_ack_pending=100_000),
    )
    started = time.perf_counter()
    consumed = 0
    while consumed < count:
        messages = await sub.fetch(1000, timeout=1)
        await asyncio.gather(*(m.ack() for m in messages))
        consumed += len(messages)
    consume_rate = count / (time.perf_counter() - started)
    await client.close()
    return publish_rate, consume_rate


async def governed_phase(ns: str, root: Path, count: int) -> tuple[float, int]:
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_stream(name=f"{ns.upper()}_RAW", subjects=[f"{ns}.raw"])
    await publish(js, f"{ns}.raw", count)
    await client.close()
    broker = await NatsBroker.connect(URL)
    gateway = Gateway(load_catalog(root), load_bundle_dir(ROOT / "policies"))
    runner = GovernedRunner(KEY)
    relay = Relay(
        broker,
        lambda: gateway,
        runner,
        "bench/orders",
        "order_events",
        [Subscriber(ANALYST, "analytics")],
        config(ns),
    )
    await relay.start()
    started = time.perf_counter()
    handled = 0
    while handled < count:
        handled += await relay.run_once()
    rate = count / (time.perf_counter() - started)
    published = relay.stats.published
    await relay.close()
    await broker.close()
    runner.close()
    return rate, published


def relay_process(ns: str, root: str, ready: Any, stop_after: float) -> None:
    async def main() -> None:
        broker = await NatsBroker.connect(URL)
        gateway = Gateway(load_catalog(root), load_bundle_dir(ROOT / "policies"))
        runner = GovernedRunner(KEY)
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "bench/orders",
            "order_events",
            [Subscriber(ANALYST, "analytics")],
            config(ns),
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
    ns: str, root: Path, rate: int, seconds: float
) -> tuple[list[float], list[float]]:
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_stream(name=f"{ns.upper()}_RAW", subjects=[f"{ns}.raw"])
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    relay = context.Process(target=relay_process, args=(ns, str(root), ready, seconds + 10))
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
    args = parser.parse_args()
    ns = "bench" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "orders.yaml").write_text(manifest(ns), encoding="utf-8")
        try:
            publish_rate, consume_rate = asyncio.run(raw_phase(ns, args.events))
            relay_rate, published = asyncio.run(governed_phase(ns, root, args.events))
            asyncio.run(cleanup(ns))
            raw, governed = asyncio.run(latency_phase(ns, root, args.rate, args.seconds))
        finally:
            asyncio.run(cleanup(ns))
    print(
        f"events: {args.events:,} JSON events of ~{len(event(1))} bytes; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(f"raw NATS JetStream publish (acked)   : {publish_rate:10,.0f} events/s")
    print(f"raw NATS JetStream consume (fetch+ack): {consume_rate:10,.0f} events/s")
    print(
        f"governed relay (1 subscriber)         : {relay_rate:10,.0f} events/s "
        f"({published:,} governed events published; target >= {TARGET_EVENTS_PER_S:,})"
    )
    print(
        f"relay / raw consume = {relay_rate / consume_rate:.2f}x, relay / raw publish = "
        f"{relay_rate / publish_rate:.2f}x (nats-py's own ceiling, same run)"
    )
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
