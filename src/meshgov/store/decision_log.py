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
import queue
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
    def __init__(self, store: Store, *, batch_size: int = 256, flush_seconds: float = 0.2) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue[DecisionRecord | None] = queue.Queue()
        self._pending: list[DecisionRecord] = []
        self._closed = threading.Event()
        self._idle = threading.Condition()
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
        """Queue one decision; returns its id (also given to the caller as ``decision_id``)."""
        decision_id = next_decision_id()
        with self._idle:
            self._in_flight += 1
        self._queue.put(
            DecisionRecord(
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
        )
        return decision_id

    def _run(self) -> None:
        while True:
            deadline = time.monotonic() + self._flush_seconds
            stop = False
            while len(self._pending) < self._batch_size:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                self._pending.append(item)
            if stop:
                self._drain_queue()
            self._write_pending()
            if stop:
                return

    def _drain_queue(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._pending.append(item)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        batch = list(self._pending)
        try:
            self._store.append_decisions(batch)
        except MeshgovError as exc:
            self.failures += 1
            log.error("decision log write failed, will retry: %s", exc.message)
            return
        self._pending.clear()
        self.written += len(batch)
        with self._idle:
            self._in_flight -= len(batch)
            self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is durable; False on timeout."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._in_flight > 0:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self._pending:
            # Last attempt on the closing thread; report what could not be written.
            self._write_pending()
            if self._pending:
                log.error("decision log lost %d records at shutdown", len(self._pending))
