"""The decision log: every decision is queued on the request path and written in batches.

A background thread drains the queue into the store every ``flush_seconds`` or ``batch_size``
records. ``close()`` drains what is left, so a clean shutdown loses nothing. If the store fails, the
batch is retried on the next round (records keep their ids, so replays are idempotent).
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
from typing import Any

from meshgov.errors import MeshgovError
from meshgov.store.base import DecisionRecord, Store

log = logging.getLogger("meshgov.decisions")


# Decision ids: a random per-process prefix and a counter. uuid4 reads the OS entropy source on
# every call, which costs up to half a millisecond on some kernels: too much per request.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


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
    """Records go into an in-memory buffer (one lock, no thread wake-up per record); a writer
    thread swaps the buffer out and writes it every ``flush_seconds``, or as soon as it holds
    ``batch_size`` records."""

    def __init__(self, store: Store, *, batch_size: int = 256, flush_seconds: float = 0.2) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._buffer: list[DecisionRecord] = []
        self._pending: list[DecisionRecord] = []  # taken from the buffer, not yet written
        self._lock = threading.Lock()
        self._written_cv = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._in_flight = 0
        self.written = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="meshgov-decision-log", daemon=True)
        self._thread.start()

    def record(
        self,
        *,
        kind: str,
        principal: str,
        product: str | None,
        document: Any,
        allowed: bool,
        result: dict[str, Any],
        revision: str,
    ) -> str:
        """Buffer one decision; returns its id (also given to the caller as ``decision_id``)."""
        decision_id = next_decision_id()
        entry = DecisionRecord(
            id=decision_id,
            time=time.time(),
            kind=kind,
            principal=principal,
            product=product,
            input_digest=input_digest(document),
            allowed=allowed,
            result=result,
            revision=revision,
        )
        with self._lock:
            self._buffer.append(entry)
            self._in_flight += 1
            full = len(self._buffer) >= self._batch_size
        if full:
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
                    done = not self._buffer and not self._pending
                if done or closing_attempts >= 10:  # a store that stays down: give up
                    return

    def _write_round(self) -> None:
        with self._lock:
            self._pending.extend(self._buffer)
            self._buffer = []
        if not self._pending:
            return
        batch = list(self._pending)
        try:
            self._store.append_decisions(batch)
        except MeshgovError as exc:
            # Kept in _pending with their ids: the next round retries (replays are idempotent).
            self.failures += 1
            log.error("decision log write failed, will retry: %s", exc.message)
            if self._closed.is_set():
                time.sleep(min(self._flush_seconds, 0.5))
            return
        self._pending.clear()
        with self._lock:
            self.written += len(batch)
            self._in_flight -= len(batch)
            self._written_cv.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every buffered record is durable; False on timeout."""
        end = time.monotonic() + timeout
        self._wake.set()
        with self._lock:
            while self._in_flight > 0:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._written_cv.wait(min(remaining, self._flush_seconds))
                if self._in_flight > 0:
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
            lost = len(self._buffer) + len(self._pending)
        if lost:
            log.error("decision log lost %d records at shutdown (store unavailable)", lost)
