"""The batched decision log: nothing lost under concurrency, at shutdown, or on a store fault."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from meshgov.errors import BackendUnavailable
from meshgov.store.base import DecisionRecord, Store
from meshgov.store.decision_log import DecisionLog, input_digest, next_decision_id


def _record(log: DecisionLog, index: int) -> str:
    return log.record(
        kind="authorize",
        principal=f"p{index % 3}",
        product=None,
        document={"sql": f"SELECT {index}"},
        allowed=index % 2 == 0,
        result={"i": index},
        revision="rev",
    )


def test_concurrent_records_are_all_written_and_close_drains(store: Store) -> None:
    log = DecisionLog(store, batch_size=50, flush_seconds=5.0)  # flushes by size, then at close
    ids: list[str] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        for i in range(125):
            decision_id = _record(log, offset + i)
            with lock:
                ids.append(decision_id)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert len(set(ids)) == 1000
    assert store.count_decisions() == 1000


def test_flush_waits_until_durable(store: Store) -> None:
    log = DecisionLog(store, batch_size=1000, flush_seconds=0.05)
    for i in range(10):
        _record(log, i)
    assert log.flush(timeout=10)
    assert store.count_decisions() == 10
    log.close()


class FlakyStore:
    """Fails the first write, then delegates."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.failures_left = 1

    def append_decisions(self, records: Sequence[DecisionRecord]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise BackendUnavailable("store down")
        self.inner.append_decisions(records)


def test_a_failed_write_is_retried(store: Store) -> None:
    flaky = FlakyStore(store)
    log = DecisionLog(flaky, batch_size=10, flush_seconds=0.05)  # type: ignore[arg-type]
    for i in range(5):
        _record(log, i)
    assert log.flush(timeout=10)
    log.close()
    assert log.failures == 1
    assert store.count_decisions() == 5


def test_ids_and_digests() -> None:
    first, second = next_decision_id(), next_decision_id()
    assert first != second
    assert len(first) == 32
    assert input_digest({"b": 1, "a": 2}) == input_digest({"a": 2, "b": 1})
    assert len(input_digest({})) == 64
