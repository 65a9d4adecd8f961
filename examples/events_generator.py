"""Publish example order events of ``commerce/orders:order_events`` to a local NATS JetStream.

    .venv/bin/python examples/events_generator.py [--url nats://127.0.0.1:4222] [--rate 5]
        [--count 0] [--bad-every 0]

Creates the raw stream (COMMERCE_ORDER_EVENTS on ``commerce.orders.events``) when missing, then
publishes ``--rate`` events per second (``--count 0``: until interrupted). With ``--bad-every N``
every Nth event is malformed, to watch the relay dead-letter it. Exits 4 with one line when NATS
is not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys

SUBJECT = "commerce.orders.events"
STREAM = "COMMERCE_ORDER_EVENTS"
STATUSES = ["placed", "shipped", "delivered", "cancelled", "returned"]


def order_event(number: int, rng: random.Random) -> dict[str, object]:
    region = rng.choice(["EU", "US"])
    customer = rng.randrange(1_000_000, 1_002_000)
    return {
        "event_id": f"E{number:010d}",
        "order_id": f"O{rng.randrange(10_000_000, 99_999_999):08d}",
        "customer_id": f"C{customer:07d}",
        "voucher_code": f"VOUCHER-{rng.randrange(100_000, 999_999)}"
        if rng.random() < 0.3
        else None,
        "fraud_score": rng.randrange(0, 100),
        "status": rng.choice(STATUSES),
        "amount": round(rng.uniform(5, 500), 2),
        "currency": "EUR" if region == "EU" else "USD",
        "region": region,
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
    }


async def main(url: str, rate: float, count: int, bad_every: int) -> int:
    import nats

    try:
        client = await nats.connect(servers=[url], connect_timeout=2, max_reconnect_attempts=1)
    except Exception as exc:
        print(
            f"events generator: NATS not reachable at {url} ({type(exc).__name__})", file=sys.stderr
        )
        return 4
    js = client.jetstream()
    try:
        await js.stream_info(STREAM)
    except Exception:
        await js.add_stream(name=STREAM, subjects=[SUBJECT])
    rng = random.Random()
    number = 0
    try:
        while count == 0 or number < count:
            number += 1
            payload = json.dumps(order_event(number, rng)).encode()
            if bad_every and number % bad_every == 0:
                payload = b'{"event_id": "broken", "amount": "lots"'  # not JSON
            await js.publish(SUBJECT, payload)
            await asyncio.sleep(1 / rate if rate > 0 else 0)
    finally:
        await client.close()
    print(f"events generator: published {number} event(s) on {SUBJECT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--count", type=int, default=0, help="0: until interrupted")
    parser.add_argument("--bad-every", type=int, default=0)
    args = parser.parse_args()
    try:
        sys.exit(asyncio.run(main(args.url, args.rate, args.count, args.bad_every)))
    except KeyboardInterrupt:
        sys.exit(130)
