"""Garbage collection around large, long-lived structures (a catalogue of 10,000 products).

CPython's cyclic collector traverses every object of a generation it collects; while a catalogue
of millions of objects is being built, each full collection walks all of it again, and building
10,000 manifests spent about a third of its time there. What is built to last (parsed manifests,
the gateway's views, the policy data) is moved out of the collector's generations
(``gc.freeze``): reference counting still frees it, only the cycle search skips it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# Items built between two freezes of what survived (see ``FreezeEvery``).
FREEZE_EVERY = 500


@contextmanager
def collection_paused() -> Iterator[None]:
    """Pause the cyclic collector while many small objects are built that are not cyclic
    garbage (a graph's nodes and edges); reference counting still frees what is dropped."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def gc_paused(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` with the collector paused (``collection_paused``): the graph questions
    allocate many small objects while a large graph is alive, and each full collection would
    traverse the whole graph."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with collection_paused():
            return func(*args, **kwargs)

    return wrapper


def freeze_long_lived(*, collect: bool = True) -> None:
    """Collect the young generations, then move every object that survived out of the
    collector's reach: call it once large structures that live on (a catalogue, a gateway) are
    built, so later collections traverse only what is allocated afterwards. ``collect=False``:
    what was just built made no garbage (unpickled with the collector paused)."""
    if collect:
        gc.collect(1)
    gc.freeze()


class FreezeEvery:
    """Freeze what survived every ``every`` items of a bulk build (``tick`` once per item).

    The young garbage of each item (a YAML parser's cycles) is collected first; what is left is
    the structure being built. A small build (fewer than ``every`` items) freezes nothing, so a
    test or a short command keeps the collector's ordinary behaviour.
    """

    def __init__(self, every: int = FREEZE_EVERY) -> None:
        self.every = every
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            freeze_long_lived()

    def done(self) -> None:
        """The build is over: freeze the rest of a large one."""
        if self.count >= self.every:
            freeze_long_lived()


# Young-generation threshold of a process that moves many short-lived objects per batch (the
# event relay): with CPython's default (700) the relay spent ≈ 2.4 µs an event, about an eighth
# of its CPU, in collections of what reference counting frees anyway (bench/stream_bench.py).
BATCH_PROCESS_THRESHOLDS = (50_000, 20, 100)


def tune_for_batches() -> None:
    """For a process whose steady work is batches of many short-lived objects: what is built so
    far (catalogue, policies, caches) leaves the collector's generations, and young collections
    run every 50,000 allocations instead of 700 (each still collects the cyclic garbage there
    is; a pause stays in the milliseconds)."""
    freeze_long_lived()
    gc.set_threshold(*BATCH_PROCESS_THRESHOLDS)


def freeze_if_large(items: int, every: int = FREEZE_EVERY, *, collect: bool = True) -> None:
    """``freeze_long_lived`` after building a structure over ``items`` items, if that many
    (a catalogue's gateway): a small one (tests, the example mesh) changes nothing."""
    if items >= every:
        freeze_long_lived(collect=collect)
