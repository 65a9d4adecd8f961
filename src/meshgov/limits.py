"""Per-request budgets: sizes checked before any work, a time budget checked during it.

Pure-Python work in a thread cannot be killed, so meshgov bounds it in three ways (see
docs/enforcement.md, "Limits"):

1. **sizes first**: query text, Data API input and manifest sizes are refused before parsing
   (``check_size``), so the work a request can cause is bounded by its size and by passes that are
   linear in it;
2. **a deadline**: the faces run CPU-bound work on a bounded worker pool and stop waiting at the
   request's time budget, answering with ``TimeBudgetExceeded``; the worker keeps the deadline in
   a context variable, and long passes call ``check_deadline()`` (a clock read) between steps so
   the abandoned work stops at the next step instead of running to its end;
3. **engines stop themselves**: statement timeouts, memory limits and row/byte caps on fetching
   (``ResultLimits``) end a query inside the engine, never the process.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from meshgov.errors import RequestTooLarge, TimeBudgetExceeded

if TYPE_CHECKING:
    from meshgov.config import Settings

T = TypeVar("T")

# Defaults; each is a ``MESHGOV_*`` setting of ``meshgov.config.Settings``.
DEFAULT_MAX_SQL_CHARS = 100_000
DEFAULT_MAX_DATA_INPUT_BYTES = 64 * 1024
DEFAULT_MAX_MANIFEST_BYTES = 1024 * 1024
DEFAULT_RESULT_MAX_ROWS = 1_000_000
DEFAULT_RESULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_ENGINE_MEMORY_MB = 2048
DEFAULT_ENGINE_THREADS = 2
DEFAULT_ENGINE_TEMP_MB = 4096
DEFAULT_ENGINE_WORK_MEM_MB = 64


@dataclass(frozen=True)
class ResultLimits:
    """What one query may cost an engine: rows and bytes fetched, memory, threads, temp space.

    ``setting`` names say which environment variable raises each limit (for messages).
    """

    max_rows: int = DEFAULT_RESULT_MAX_ROWS
    max_bytes: int = DEFAULT_RESULT_MAX_BYTES
    memory_mb: int = DEFAULT_ENGINE_MEMORY_MB
    threads: int = DEFAULT_ENGINE_THREADS
    temp_dir: Path | None = None  # DuckDB spill directory; None = a private temporary directory
    temp_mb: int = DEFAULT_ENGINE_TEMP_MB
    work_mem_mb: int = DEFAULT_ENGINE_WORK_MEM_MB  # PostgreSQL per-operation memory

    @classmethod
    def from_settings(cls, settings: Settings) -> ResultLimits:
        return cls(
            max_rows=settings.result_max_rows,
            max_bytes=settings.result_max_bytes,
            memory_mb=settings.engine_memory_mb,
            threads=settings.engine_threads,
            temp_dir=settings.engine_temp_dir,
            temp_mb=settings.engine_temp_mb,
            work_mem_mb=settings.engine_work_mem_mb,
        )


def check_size(size: int, limit: int, what: str, setting: str, unit: str = "bytes") -> None:
    """Refuse ``what`` (``RequestTooLarge``, 413) when ``size`` is over ``limit``: before work."""
    if size > limit:
        raise RequestTooLarge(
            f"{what} is {size:,} {unit}, over the limit of {limit:,} {unit} ({setting})"
        )


# The deadline of the work running in this context (a worker thread inherits it from the task
# that submitted the work): (monotonic deadline, budget in seconds); None = no budget (the CLI).
_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "meshgov_deadline", default=None
)


@contextmanager
def deadline(seconds: float, *, at: float | None = None) -> Iterator[None]:
    """Run the block with a time budget of ``seconds`` (ending at ``at``, a ``time.monotonic()``
    value, when the budget started earlier); ``check_deadline`` raises past it."""
    token = _DEADLINE.set((time.monotonic() + seconds if at is None else at, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_deadline() -> None:
    """Raise ``TimeBudgetExceeded`` when the current work is past its deadline (a clock read)."""
    current = _DEADLINE.get()
    if current is not None and time.monotonic() > current[0]:
        raise budget_exceeded(current[1])


def budget_exceeded(seconds: float) -> TimeBudgetExceeded:
    return TimeBudgetExceeded(
        f"the request exceeded its time budget of {seconds:g} s "
        "(MESHGOV_REQUEST_TIMEOUT_SECONDS) and was stopped; make the query or input smaller"
    )


def run_with_deadline(at: float, seconds: float, work: Callable[[], T]) -> T:
    """``work()`` under the deadline ``at`` (the worker side of ``meshgov.api.offload``)."""
    with deadline(seconds, at=at):
        check_deadline()  # waited past it for a free worker: do not start
        return work()
