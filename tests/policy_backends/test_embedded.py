"""The embedded engine: compile errors located, runtime faults deny, compiled plans cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgov.core.policy import PolicyBundle
from meshgov.errors import PolicyCompileError, PolicyEvaluationError
from meshgov.policy_backends.embedded import EmbeddedEngine

MODULE = """package demo

import rego.v1

names contains row.name if {
\tsome row in input.rows
\trow.level >= data.registry.threshold
}

ratio := input.total / input.count
"""


def _bundle(module: str = MODULE, threshold: int = 2) -> PolicyBundle:
    return PolicyBundle.create({"demo/demo.rego": module}, {"registry": {"threshold": threshold}})


ROWS = {"rows": [{"name": "a", "level": 1}, {"name": "b", "level": 3}]}


def test_entrypoint_and_adhoc_queries_agree() -> None:
    prepared = EmbeddedEngine().prepare(_bundle(), entrypoints=["demo/names"])
    assert prepared.evaluate("data.demo.names", ROWS) == ["b"]
    assert prepared.evaluate("data.demo.ratio", {"total": 6, "count": 3}) == 2
    assert prepared.evaluate("data.demo.missing", ROWS) is None


def test_runtime_error_is_an_evaluation_error_not_undefined() -> None:
    prepared = EmbeddedEngine().prepare(_bundle())
    with pytest.raises(PolicyEvaluationError):
        prepared.evaluate("data.demo.ratio", {"total": 1, "count": 0})


def test_compile_error_names_file_and_line() -> None:
    broken = MODULE.replace("ratio := input.total", "ratio := ")
    with pytest.raises(PolicyCompileError) as info:
        EmbeddedEngine().prepare(_bundle(broken), entrypoints=["demo/names"])
    assert info.value.location is not None
    assert info.value.location.file == "demo/demo.rego"
    assert info.value.location.line == 10


def test_compiled_plan_is_cached_and_a_damaged_plan_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHGOV_CACHE_DIR", str(tmp_path))
    first = EmbeddedEngine().prepare(_bundle(), entrypoints=["demo/names"])
    assert first.evaluate("data.demo.names", ROWS) == ["b"]
    plans = list((tmp_path / "plans").iterdir())
    assert len(plans) == 1

    # Same content: the plan on disk is used (no new file), with the same answers.
    second = EmbeddedEngine().prepare(_bundle(), entrypoints=["demo/names"])
    assert second.evaluate("data.demo.names", ROWS) == ["b"]
    assert list((tmp_path / "plans").iterdir()) == plans

    # Different data is a different plan: a cached plan can never answer for stale data.
    lower = EmbeddedEngine().prepare(_bundle(threshold=0), entrypoints=["demo/names"])
    assert sorted(lower.evaluate("data.demo.names", ROWS)) == ["a", "b"]
    assert len(list((tmp_path / "plans").iterdir())) == 2

    # A damaged file is detected by its digest, removed and rebuilt.
    plans[0].write_bytes(b"garbage")
    third = EmbeddedEngine().prepare(_bundle(), entrypoints=["demo/names"])
    assert third.evaluate("data.demo.names", ROWS) == ["b"]
    assert plans[0].read_bytes() != b"garbage"


def test_plan_holds_only_the_modules_an_entrypoint_can_reach() -> None:
    from meshgov.policy_backends.embedded import reachable_modules

    modules = {
        "a/a.rego": (
            "package a\n\nimport data.lib.text\n\n# data[x] in a comment\n"
            'x := text.y\ns := "data[1]"\n'
        ),
        "lib/text.rego": "package lib.text\n\ny := data.registry.n\n",
        "lib/other.rego": "package lib.other\n\nz := 1\n",
        "b/b.rego": "package b\n\nw := data.a.x\n",
    }
    assert sorted(reachable_modules(modules, ["a/x"])) == ["a/a.rego", "lib/text.rego"]
    assert sorted(reachable_modules(modules, ["b/w"])) == ["a/a.rego", "b/b.rego", "lib/text.rego"]
    dynamic = {**modules, "c/c.rego": "package c\n\nv := data[input.pkg]\n"}
    assert reachable_modules(dynamic, ["c/v"]) == dynamic


def test_a_compile_error_outside_the_entrypoints_reach_still_fails_prepare() -> None:
    broken = PolicyBundle.create(
        {"demo/demo.rego": MODULE, "other/other.rego": "package other\n\nx := \n"},
        {"registry": {"threshold": 2}},
    )
    with pytest.raises(PolicyCompileError):
        EmbeddedEngine().prepare(broken, entrypoints=["demo/names"])


def test_plan_cache_keeps_only_the_most_recently_used_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time

    monkeypatch.setenv("MESHGOV_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MESHGOV_PLAN_CACHE_SIZE", "3")
    plans = tmp_path / "plans"
    created: dict[int, Path] = {}

    def prepare(threshold: int) -> None:
        before = set(plans.iterdir()) if plans.exists() else set()
        prepared = EmbeddedEngine().prepare(
            _bundle(threshold=threshold), entrypoints=["demo/names"]
        )
        expected = [row["name"] for row in ROWS["rows"] if int(row["level"]) >= threshold]
        assert sorted(prepared.evaluate("data.demo.names", ROWS)) == expected
        new = set(plans.iterdir()) - before
        if new:
            (created[threshold],) = new

    for age, threshold in enumerate((2, 3, 4)):
        prepare(threshold)
        past = time.time() - 1000 + age  # plan 2 the oldest, then 3, then 4
        os.utime(created[threshold], (past, past))
    assert len(list(plans.iterdir())) == 3

    prepare(2)  # a cache hit: plan 2 becomes the most recently used
    assert set(plans.iterdir()) == set(created.values())
    prepare(5)  # a fourth plan: the least recently used one (plan 3) goes
    assert set(plans.iterdir()) == {created[2], created[4], created[5]}


def test_plan_cache_stays_within_its_byte_budget(tmp_path: Path) -> None:
    import os

    from meshgov.policy_backends.embedded import _BundleCache

    plans = tmp_path / "plans"
    plans.mkdir()
    for age, size in enumerate((300, 300, 300, 500)):  # oldest first
        plan = plans / f"plan{age}"
        plan.write_bytes(b"x" * size)
        os.utime(plan, (1000 + age, 1000 + age))
    (plans / ".plan-staging").mkdir()  # another process's staging directory: left alone
    cache = _BundleCache(plans / "key")
    cache._evict(keep=10, budget=1000)  # newest 500 + 300 fit; the next 300 would not
    assert sorted(p.name for p in plans.iterdir()) == [".plan-staging", "plan2", "plan3"]
    cache._evict(keep=10, budget=100)  # the newest plan stays even when it alone is over budget
    assert sorted(p.name for p in plans.iterdir()) == [".plan-staging", "plan3"]


def test_threads_share_a_bounded_pool_of_evaluators(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("MESHGOV_POLICY_EVALUATORS", "2")
    prepared = EmbeddedEngine().prepare(_bundle(), entrypoints=["demo/names"])

    # One thread after another: the evaluator built at prepare time serves them all.
    for _ in range(4):
        worker = threading.Thread(target=prepared.evaluate, args=("data.demo.names", ROWS))
        worker.start()
        worker.join()
    assert prepared.evaluators == 1

    # Overlapping evaluations on 8 threads: never more than the limit, every answer right.
    start = threading.Barrier(8)

    def evaluate(level: int) -> list[str]:
        start.wait()
        rows = {"rows": [{"name": f"n{i}", "level": 2 + (i % 2)} for i in range(level)]}
        answers = [prepared.evaluate("data.demo.names", rows) for _ in range(50)]
        assert all(answer == answers[0] for answer in answers)
        return sorted(answers[0])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(evaluate, range(1, 9)))
    assert results == [sorted(f"n{i}" for i in range(level)) for level in range(1, 9)]
    assert 1 <= prepared.evaluators <= 2
