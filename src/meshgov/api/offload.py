"""CPU-bound request work leaves the event loop: a bounded worker pool with a time budget.

Authorize and rewrite (uncached), Data API evaluation, manifest parsing and checks, query
execution and result encoding run on ``CpuPool``, so ``/health`` and cached decisions keep
answering while an expensive request runs. The pool has ``MESHGOV_CPU_WORKERS`` threads; more
requests wait for a free one. A request that is not done within ``MESHGOV_REQUEST_TIMEOUT_SECONDS``
(waiting included) is answered with ``TimeBudgetExceeded`` (422) at once; its worker cannot be
killed (Python threads cannot), but it carries the deadline (``meshgov.limits``) and stops at the
next check, and the sizes refused before any work bound what is left (docs/enforcement.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from meshgov.errors import BackendUnavailable
from meshgov.limits import budget_exceeded, run_with_deadline

T = TypeVar("T")


class CpuPool:
    """A bounded thread pool whose tasks carry the request's deadline."""

    def __init__(self, workers: int, budget_seconds: float) -> None:
        self.workers = workers
        self.budget_seconds = budget_seconds
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshgov-cpu")

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(*args, **kwargs)`` on a worker, within the time budget.

        Raises ``TimeBudgetExceeded`` when the work started but is not done in time, and
        ``BackendUnavailable`` (503, the service is busy) when no worker was free in time.
        """
        budget = self.budget_seconds
        deadline_at = time.monotonic() + budget
        started = threading.Event()
        context = contextvars.copy_context()
        call = functools.partial(work, *args, **kwargs)

        def task() -> T:
            started.set()
            return context.run(run_with_deadline, deadline_at, budget, call)

        future = asyncio.get_running_loop().run_in_executor(self._executor, task)
        try:
            return await asyncio.wait_for(future, timeout=budget)
        except TimeoutError:
            if not started.is_set():
                raise BackendUnavailable(
                    f"the service is busy: no worker was free within the time budget of "
                    f"{budget:g} s (MESHGOV_CPU_WORKERS={self.workers})"
                ) from None
            raise budget_exceeded(budget) from None

    async def run_to_completion(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on a worker under the deadline, awaited to its end: for work with a
        side effect (publish), which checks the deadline itself before it writes, so that its
        answer always says what happened."""
        budget = self.budget_seconds
        deadline_at = time.monotonic() + budget
        context = contextvars.copy_context()
        call = functools.partial(work, *args)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: context.run(run_with_deadline, deadline_at, budget, call)
        )

    def close(self) -> None:
        # Abandoned work stops at its next deadline check; do not wait for it.
        self._executor.shutdown(wait=False, cancel_futures=True)
