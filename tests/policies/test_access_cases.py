"""Decision cases of the access policy (policies/cases/access/*.yaml) on both in-process engines
(regopy and regorus); test_engine_equivalence.py also checks that they answer alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshgov.core.policy import PolicyBundle, PreparedPolicy
from meshgov.gateway import catalog_policy_data
from meshgov.policy_backends import engine_from_url, load_bundle_dir

ENGINES = ["embedded", "regorus"]

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "policies" / "cases" / "access"
QUERY = "data.meshgov.access.decision"


def _case_files() -> list[Path]:
    return sorted(CASES_DIR.glob("*.yaml"))


def _cases() -> list[Any]:
    params = []
    for path in _case_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for index, case in enumerate(doc["cases"]):
            params.append(pytest.param(path.name, index, id=f"{path.stem}:{case['title']}"))
    return params


@pytest.fixture(scope="module")
def access_bundle() -> PolicyBundle:
    bundle = load_bundle_dir(ROOT / "policies")
    modules = {p: t for p, t in bundle.modules.items() if p.startswith("meshgov/access/")}
    return PolicyBundle.create(modules, bundle.data)


_prepared: dict[tuple[str, str], PreparedPolicy] = {}


def _with_access_view(data: dict[str, Any]) -> dict[str, Any]:
    """A case's data with ``data.catalog`` derived from its products, as the gateway derives it."""
    products = data.get("catalog", {}).get("products", {})
    return {**data, **catalog_policy_data(products)}


def _policy_for(
    bundle: PolicyBundle, file_name: str, data: dict[str, Any], engine: str
) -> PreparedPolicy:
    if (file_name, engine) not in _prepared:
        _prepared[file_name, engine] = engine_from_url(engine).prepare(
            bundle, _with_access_view(data), entrypoints=["meshgov/access/decision"]
        )
    return _prepared[file_name, engine]


def case_decision(bundle: PolicyBundle, file_name: str, index: int, engine: str) -> Any:
    """The decision of case ``index`` of ``file_name`` on ``engine``, and the case."""
    doc = yaml.safe_load((CASES_DIR / file_name).read_text(encoding="utf-8"))
    case = doc["cases"][index]
    if "data" in case:
        policy = engine_from_url(engine).prepare(
            bundle, _with_access_view(case["data"]), entrypoints=["meshgov/access/decision"]
        )
    else:
        policy = _policy_for(bundle, file_name, doc["data"], engine)
    return policy.evaluate(QUERY, case["input"]), case


def test_there_are_cases() -> None:
    assert len(_cases()) >= 15


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("file_name", "index"), _cases())
def test_access_case(access_bundle: PolicyBundle, file_name: str, index: int, engine: str) -> None:
    decision, case = case_decision(access_bundle, file_name, index, engine)
    expected = case["expected"]
    assert set(decision) == {"allow", "reasons", "row_filters", "masks", "hidden_columns"}
    for key in ("allow", "row_filters", "masks", "hidden_columns"):
        assert decision[key] == expected[key], key
    assert decision["reasons"], "every decision gives at least one reason"
    for fragment in expected.get("reasons", []):
        assert any(fragment in reason for reason in decision["reasons"]), (
            fragment,
            decision["reasons"],
        )


def _rego_tests() -> list[Any]:
    from meshgov.core.policy import discover_tests

    bundle = load_bundle_dir(ROOT / "policies")
    modules = {p: t for p, t in bundle.modules.items() if p.startswith("meshgov/access/")}
    return [
        pytest.param(t.package, t.name, id=t.name)
        for t in discover_tests(PolicyBundle.create(modules, bundle.data))
    ]


@pytest.fixture(scope="module", params=ENGINES)
def access_with_tests(
    access_bundle: PolicyBundle, request: pytest.FixtureRequest
) -> PreparedPolicy:
    return engine_from_url(request.param).prepare(access_bundle, include_tests=True)


@pytest.mark.parametrize(("package", "name"), _rego_tests())
def test_access_rego_test(access_with_tests: PreparedPolicy, package: str, name: str) -> None:
    assert access_with_tests.evaluate(f"data.{package}.{name}", {}) is True
