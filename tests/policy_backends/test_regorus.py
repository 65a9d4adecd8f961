"""The regorus engine: fails closed, compile errors located, engines bound to their threads."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import meshgov.policy_backends.regorus as backend
from meshgov.catalog import load_catalog
from meshgov.cli import app
from meshgov.core.policy import PolicyBundle
from meshgov.core.principal import Principal
from meshgov.errors import InputError, PolicyCompileError, PolicyEvaluationError
from meshgov.gateway import Gateway
from meshgov.policy_backends import engine_from_url, engine_label, load_bundle_dir
from meshgov.policy_backends.regorus import RegorusEngine

ROOT = Path(__file__).resolve().parents[2]

MODULE = """package demo

import rego.v1

names contains row.name if {
\tsome row in input.rows
\trow.level >= data.registry.threshold
}

ratio := input.total / input.count

number := to_number(input.text)
"""
ROWS = {"rows": [{"name": "a", "level": 1}, {"name": "b", "level": 3}]}


def _bundle(module: str = MODULE) -> PolicyBundle:
    return PolicyBundle.create({"demo/demo.rego": module}, {"registry": {"threshold": 2}})


def test_rules_packages_and_undefined() -> None:
    prepared = RegorusEngine().prepare(_bundle(), entrypoints=["demo/names"])
    assert prepared.evaluate("data.demo.names", ROWS) == ["b"]
    assert prepared.evaluate("data.demo.ratio", {"total": 6, "count": 3}) == 2
    # A package is not a rule path: evaluated as a query.
    assert prepared.evaluate("data.demo", ROWS)["names"] == ["b"]
    assert prepared.evaluate("data.demo.ratio", {}) is None
    assert prepared.evaluate("data.demo.missing", ROWS) is None
    assert prepared.evaluate("data.elsewhere.rule", ROWS) is None


@pytest.mark.parametrize(
    ("query", "document", "message"),
    [
        ("data.demo.ratio", {"total": 1, "count": 0}, "divide by zero"),
        ("data.demo.number", {"text": "abc"}, "could not parse string as number"),
    ],
)
def test_runtime_errors_are_evaluation_errors_naming_the_place(
    query: str, document: dict[str, Any], message: str
) -> None:
    prepared = RegorusEngine().prepare(_bundle())
    with pytest.raises(PolicyEvaluationError) as caught:
        prepared.evaluate(query, document)
    assert message in caught.value.message
    assert "demo/demo.rego:" in caught.value.message


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        ("package demo\n\nimport rego.v1\n\nx := 1 +\n", 6, "expecting expression"),
        ("package demo\n\nimport rego.v1\n\nx := nofn(1)\n", 5, "could not find function"),
        ("package demo\n\nimport rego.v1\n\nx := 1\n\nx := 2\n", 7, "conflicts"),
        ("package demo\n\nimport rego.v1\n\nx if {\n\ty > 1\n}\n", 6, "unsafe"),
    ],
)
def test_compile_errors_surface_at_prepare_with_file_and_line(
    module: str, line: int, message: str
) -> None:
    with pytest.raises(PolicyCompileError) as caught:
        RegorusEngine().prepare(_bundle(module))
    assert message in caught.value.message
    assert caught.value.location is not None
    assert caught.value.location.file == "demo/demo.rego"
    assert caught.value.location.line == line


class PanicException(BaseException):
    """Stands for pyo3_runtime.PanicException (a BaseException, matched by name)."""


def _failing(prepared: backend.RegorusPrepared, failure: BaseException) -> None:
    class Failing:
        def set_input_json(self, _: str) -> None:
            raise failure

    backend._THREAD.engines[prepared._token] = (
        backend._THREAD.engines[prepared._token][0],
        Failing(),
    )


def test_a_panic_is_an_evaluation_error_and_the_engine_is_replaced() -> None:
    prepared = RegorusEngine().prepare(_bundle())
    _failing(prepared, PanicException("index out of bounds"))
    with pytest.raises(PolicyEvaluationError, match="index out of bounds"):
        prepared.evaluate("data.demo.names", ROWS)
    # The next evaluation on this thread builds a fresh engine.
    assert prepared.evaluate("data.demo.names", ROWS) == ["b"]


def test_an_interrupt_is_not_swallowed() -> None:
    prepared = RegorusEngine().prepare(_bundle())
    _failing(prepared, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        prepared.evaluate("data.demo.names", ROWS)


def test_a_panicking_engine_denies_at_the_gateway() -> None:
    catalog = load_catalog(ROOT / "examples" / "mesh")
    gateway = Gateway(catalog, load_bundle_dir(ROOT / "policies"), RegorusEngine())
    prepared = gateway.policy
    assert isinstance(prepared, backend.RegorusPrepared)
    _failing(prepared, PanicException("boom"))
    analyst = Principal(id="a", groups=("analysts",), attributes={"region": "EU"})
    decision = gateway.decide(analyst, "analytics", "customer/customers", "customers")
    assert not decision.allow
    assert "policy evaluation failed" in decision.reasons[0]


def test_engines_are_bounded_and_each_thread_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGOV_POLICY_EVALUATORS", "2")
    prepared = RegorusEngine().prepare(_bundle())  # this thread's engine: 1 of 2
    threads = 6
    start = threading.Barrier(threads)
    answers: list[Any] = []
    lock = threading.Lock()

    def ask() -> None:
        start.wait()
        for _ in range(20):
            value = prepared.evaluate("data.demo.names", ROWS)
            with lock:
                answers.append(value)

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert answers == [["b"]] * threads * 20
    # The main thread's engine, one more thread's, and the overflow thread's.
    assert prepared.evaluators <= 3


def test_engines_of_a_dropped_policy_are_freed_by_their_thread() -> None:
    first = RegorusEngine().prepare(_bundle())
    token = first._token
    assert token in backend._THREAD.engines
    del first
    gc.collect()
    second = RegorusEngine().prepare(_bundle())
    assert second.evaluate("data.demo.names", ROWS) == ["b"]
    assert token not in backend._THREAD.engines


def test_absent_package_is_an_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "regorus", None)
    with pytest.raises(InputError, match=r"pip install 'meshgov\[regorus\]'"):
        engine_from_url("regorus")
    result = CliRunner().invoke(
        app, ["check", str(ROOT / "examples" / "mesh"), "--policy-engine", "regorus"]
    )
    assert result.exit_code == 2
    assert "meshgov[regorus]" in result.output


def test_label_names_engine_and_version() -> None:
    assert engine_label(RegorusEngine()) == "regorus 0.13.0"
    assert engine_label(engine_from_url("embedded")).startswith("embedded regopy ")


def test_auto_picks_regorus_when_installed_else_regopy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_from_url("auto").name == "regorus"
    monkeypatch.setattr(backend, "regorus", None)
    assert engine_from_url("auto").name == "embedded"
