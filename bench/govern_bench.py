"""CPU cost per event of the relay's governing stages, without NATS.

The relay (``meshgov.streams.Relay._govern``) decodes a micro-batch of raw JSON events into Arrow
(``decode_events``), runs the subscriber's secure SQL over it (``GovernedRunner.run``: DuckDB, then
the keyed hash in bulk) and encodes each surviving row back to JSON (``governed_events``). This
times each stage on batches of the same events as ``bench/stream_bench.py`` (same port, the EU
analyst: row filter, e-mail hashed, card partial, one column hidden), through the real catalog,
policies and gateway, and prints CPU microseconds per raw event of each (``time.process_time``:
DuckDB's threads included) and the load average beside them.

    python bench/govern_bench.py [--batches 1000,4000] [--events 200000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The same port, events and analyst as the relay's bench (run from bench/, it is importable).
from stream_bench import ANALYST, event, manifest

from meshgov.brokers.base import BrokerMessage
from meshgov.catalog import load_catalog
from meshgov.event_batches import SEQ_COLUMN, decode_events, events_port, governed_events
from meshgov.gateway import Gateway
from meshgov.governed import GovernedRunner, governed_port
from meshgov.policy_backends import load_bundle_dir

ROOT = Path(__file__).resolve().parents[1]
KEY = b"bench-mesh-key"
NS = "benchgov"


class _Unsettled:
    """The governing stages never settle a message."""

    async def ack(self, _message: BrokerMessage) -> None:
        raise AssertionError("not settled here")

    async def nak(self, _message: BrokerMessage, _delay: float) -> None:
        raise AssertionError("not settled here")


def messages(start: int, count: int) -> list[BrokerMessage]:
    settler = _Unsettled()
    return [
        BrokerMessage(f"{NS}.raw", event(n), {}, n + 1, settler)
        for n in range(start, start + count)
    ]


def cpu_us(step: Callable[[], Any], events: int, repeats: int) -> float:
    """CPU microseconds per event of ``step`` (best of ``repeats`` rounds of several calls)."""
    calls = max(1, 50_000 // events)
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            step()
        best = min(best, (time.process_time() - started) / (calls * events) * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1000,4000", help="batch sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "orders.yaml").write_text(manifest(NS), encoding="utf-8")
        gateway = Gateway(load_catalog(root), load_bundle_dir(ROOT / "policies"))
    runner = GovernedRunner(KEY)
    _, declared = events_port(gateway, "bench/orders", "order_events")
    assert declared.stream is not None
    limit = declared.stream.max_event_bytes
    governed = governed_port(
        gateway, ANALYST, "analytics", "bench/orders", "order_events", extra_columns=(SEQ_COLUMN,)
    )
    print(f"load at start {os.getloadavg()[0]:.2f}; best of {args.repeats} rounds (CPU us/event)")
    print(f"{'batch':>6} {'decode':>8} {'run':>8} {'encode':>8} {'total':>8}  survivors  load")
    for size in [int(b) for b in args.batches.split(",")]:
        batch = messages(0, size)
        table, bad = decode_events(declared, batch, limit)
        assert not bad and table.num_rows == size
        result = runner.run(governed, table)
        survivors = governed_events(result, governed)
        decode = cpu_us(lambda b=batch: decode_events(declared, b, limit), size, args.repeats)
        run = cpu_us(lambda t=table: runner.run(governed, t), size, args.repeats)
        encode = cpu_us(lambda r=result: governed_events(r, governed), size, args.repeats)
        total = decode + run + encode
        print(
            f"{size:>6} {decode:8.2f} {run:8.2f} {encode:8.2f} {total:8.2f}  "
            f"{len(survivors):>9}  {os.getloadavg()[0]:.2f}"
        )
    runner.close()


if __name__ == "__main__":
    main()
