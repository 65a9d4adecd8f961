"""The collector settings of a batch process (``meshgov stream serve``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from meshgov.core.collection import BATCH_PROCESS_THRESHOLDS, tune_for_batches


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_collector")
def test_a_batch_process_collects_young_objects_less_often_and_skips_what_it_built() -> None:
    built = [{"n": n} for n in range(1000)]  # what a relay builds before relaying
    frozen_before = gc.get_freeze_count()
    tune_for_batches()
    assert gc.get_threshold() == BATCH_PROCESS_THRESHOLDS
    assert gc.get_freeze_count() >= frozen_before + len(built)
    # Cyclic garbage is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
