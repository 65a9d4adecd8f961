"""Flushing the decision log while the service keeps deciding (GET /v1/decisions under load)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from meshgov.store.base import DecisionFilter, open_store
from meshgov.store.decision_log import DecisionLog


def test_flush_waits_only_for_records_queued_before_it(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'log.db'}")
    log = DecisionLog(store, batch_size=10_000, flush_seconds=0.05)
    stop = threading.Event()

    def keep_deciding() -> None:
        index = 0
        while not stop.is_set():
            log.record(
                kind="authorize",
                principal="p",
                product=None,
                document={"i": index},
                allowed=True,
                result={},
                revision="r",
            )
            index += 1
            if index % 50 == 0:
                time.sleep(0.0005)

    worker = threading.Thread(target=keep_deciding)
    worker.start()
    try:
        time.sleep(0.1)
        for round_ in range(3):
            marker = log.record(
                kind="authorize",
                principal=f"marker-{round_}",
                product=None,
                document={},
                allowed=True,
                result={},
                revision="r",
            )
            started = time.monotonic()
            assert log.flush(timeout=5)
            assert time.monotonic() - started < 2
            durable = store.decisions(DecisionFilter(principal=f"marker-{round_}"))
            assert [d.id for d in durable] == [marker]
    finally:
        stop.set()
        worker.join()
    total = log.written
    log.close()
    assert store.count_decisions() >= total
    store.close()
