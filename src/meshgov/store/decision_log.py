"""The decision log: every decision is queued on the request path and written in batches.

A background thread drains the queue into the store every ``flush_seconds`` or ``batch_size``
records. ``close()`` drains what is left, so a clean shutdown loses nothing. If the store fails, the
batch is retried on the next round (records keep their ids, so replays are idempotent). A failed
batch is also written a record at a time, so that one record the store refuses while it takes the
records after it (a value it cannot hold) is written in a reduced form instead of holding back
every later decision.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from meshgov.errors import MeshgovError
from meshgov.store.base import DecisionKind, DecisionRecord, Store

log = logging.getLogger("meshgov.decisions")


# Decision ids: a random per-process prefix and a counter. uuid4 reads the OS entropy source on
# every call, which costs up to half a millisecond on some kernels: too much per request.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


# Failures in a row, none of the records going in, before a round takes the store to be down.
_MAX_FAILURES_IN_A_ROW = 3


def reduced(record: DecisionRecord) -> DecisionRecord:
    """What any store holds of ``record``: its text fields ASCII-escaped, its result kept as the
    ASCII JSON text of the original under ``unstorable_result`` (the decision's id, time, kind,
    outcome and revision unchanged)."""

    def ascii_text(value: str) -> str:
        return json.dumps(value, ensure_ascii=True)[1:-1]

    return DecisionRecord(
        id=record.id,
        time=record.time,
        kind=record.kind,
        principal=ascii_text(record.principal),
        product=None if record.product is None else ascii_text(record.product),
        input_digest=ascii_text(record.input_digest),
        allowed=record.allowed,
        result={"unstorable_result": json.dumps(record.result, ensure_ascii=True, default=str)},
        revision=ascii_text(record.revision),
    )


def _new_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = uuid.uuid4().hex[:16]
    _ID_COUNTER = itertools.count(1)


# A forked worker must not repeat its parent's ids.
os.register_at_fork(after_in_child=_new_prefix)


def next_decision_id() -> str:
    """32 hex characters, unique across processes (prefix) and within one (counter)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def input_digest(document: Any) -> str:
    """sha256 of the canonical JSON of a decision input (the input itself is not stored)."""
    text = json.dumps(document, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class DecisionLog:
    """Records are appended to a deque (atomic, no lock and no thread wake-up per record); a
    writer thread drains it and writes the batch every ``flush_seconds``, or as soon as it holds
    ``batch_size`` records.

    ``engine`` (the policy engine and its version, "regorus 0.13.0") is written into every
    record's result as ``policy_engine``: which engine made a decision is part of its record."""

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 256,
        flush_seconds: float = 0.2,
        engine: str = "",
    ) -> None:
        self._store = store
        self._engine = engine
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._queue: deque[DecisionRecord] = deque()
        self._pending: list[DecisionRecord] = []  # taken from the queue, not yet written
        # Held by the writer while it moves records from the queue to _pending and while it
        # publishes a written batch. Records are written in queue order: ``_taken`` counts those
        # moved to _pending, ``written`` those durable; flush() waits on them.
        self._lock = threading.Lock()
        self._written_cv = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._taken = 0
        self.written = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="meshgov-decision-log", daemon=True)
        self._thread.start()

    def record(
        self,
        *,
        kind: DecisionKind,
        principal: str,
        product: str | None,
        document: Any,
        allowed: bool,
        result: dict[str, Any],
        revision: str,
        digest: str | None = None,
    ) -> str:
        """Queue one decision; returns its id (also given to the caller as ``decision_id``).

        ``digest`` is ``input_digest(document)`` when the caller already has it (then
        ``document`` is not read).
        """
        decision_id = next_decision_id()
        queue = self._queue
        queue.append(
            DecisionRecord(
                id=decision_id,
                time=time.time(),
                kind=kind,
                principal=principal,
                product=product,
                input_digest=digest if digest is not None else input_digest(document),
                allowed=allowed,
                result={**result, "policy_engine": self._engine} if self._engine else result,
                revision=revision,
            )
        )
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()
        return decision_id

    def _run(self) -> None:
        closing_attempts = 0
        while True:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            closing = self._closed.is_set()
            self._write_round()
            if closing:
                closing_attempts += 1
                with self._lock:
                    done = not self._queue and not self._pending
                if done or closing_attempts >= 10:  # a store that stays down: give up
                    return

    def _write_round(self) -> None:
        queue = self._queue
        with self._lock:
            # popleft is atomic: records appended meanwhile stay for the next round.
            taken = len(queue)
            for _ in range(taken):
                self._pending.append(queue.popleft())
            self._taken += taken
        if not self._pending:
            return
        batch = list(self._pending)
        try:
            self._store.append_decisions(batch)
        except MeshgovError as exc:
            self.failures += 1
            left = self._write_singly(batch)
            # Those left stay in _pending with their ids: the next round retries them.
            self._settle(len(batch) - len(left), left)
            if left:
                log.error("decision log write failed, will retry: %s", exc.message)
                if self._closed.is_set():
                    time.sleep(min(self._flush_seconds, 0.5))
            return
        self._settle(len(batch), [])

    def _settle(self, count: int, left: list[DecisionRecord]) -> None:
        """``count`` records of _pending are settled; ``left`` (in order) are still to write."""
        with self._lock:
            self._pending[:] = left + self._pending[count + len(left) :]
            self.written += count
            self._written_cv.notify_all()

    def _write_singly(self, batch: list[DecisionRecord]) -> list[DecisionRecord]:
        """After a failed batch, each record alone; returns those still to write.

        A record that failed before another record went in is one the store refuses (it is up):
        written in a reduced form, or dropped with an error naming it if even that is refused.
        Records that failed after the last one that went in are kept: the store may be down, and
        after ``_MAX_FAILURES_IN_A_ROW`` failures in a row the rest is kept without trying."""
        failed: list[DecisionRecord] = []  # since the last record that went in
        refused: list[DecisionRecord] = []
        for index, record in enumerate(batch):
            try:
                self._store.append_decisions([record])
            except MeshgovError:
                failed.append(record)
                if len(failed) >= _MAX_FAILURES_IN_A_ROW:
                    self._write_reduced(refused)
                    return failed + batch[index + 1 :]
                continue
            refused.extend(failed)
            failed = []
        self._write_reduced(refused)
        return failed

    def _write_reduced(self, refused: list[DecisionRecord]) -> None:
        for record in refused:
            try:  # once more as it is: the store may have come back during the round
                self._store.append_decisions([record])
                continue
            except MeshgovError:
                pass
            try:
                self._store.append_decisions([reduced(record)])
            except MeshgovError as exc:
                log.error("decision log dropped record %s: %s", record.id, exc.message)
            else:
                log.error("decision log wrote record %s reduced: the store refused it", record.id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued before this call is durable; False on timeout.

        Records are written in queue order, so it waits until as many records as were queued so
        far are written; records queued meanwhile do not keep it waiting (a busy service still
        answers promptly).
        """
        end = time.monotonic() + timeout
        with self._lock:
            target = self._taken + len(self._queue)
            if self.written >= target:
                return True
            self._wake.set()
            while self.written < target:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._written_cv.wait(min(remaining, self._flush_seconds))
                self._wake.set()
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is buffered, then stop the writer thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=timeout)
        with self._lock:
            lost = len(self._queue) + len(self._pending)
        if lost:
            log.error("decision log lost %d records at shutdown (store unavailable)", lost)
