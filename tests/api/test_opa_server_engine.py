"""The OPA-server policy engine (opa-python-client).

Against a real OPA (``MESHGOV_OPA_URL``, e.g. ``http://127.0.0.1:8181``) it uploads the policies
and runs the same access decision cases as the embedded engine; without one those tests skip.
meshgov's own Data API is OPA-compatible, so evaluation is also tested against a meshgov server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_server import ROOT, TOKENS, RunningServer, free_port

from meshgov.core.policy import PolicyBundle
from meshgov.errors import BackendUnavailable
from meshgov.gateway import catalog_policy_data
from meshgov.policy_backends import engine_from_url, load_bundle_dir
from meshgov.policy_backends.embedded import EmbeddedEngine
from meshgov.policy_backends.opa_server import OpaServerEngine

QUERY = "data.meshgov.access.decision"
CASES = sorted((ROOT / "policies" / "cases" / "access").glob("*.yaml"))


def _cases() -> list[Any]:
    params = []
    for path in CASES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for index, case in enumerate(doc["cases"]):
            params.append(pytest.param(path, index, id=f"{path.stem}:{case['title']}"))
    return params


@pytest.fixture(scope="module")
def opa_url() -> str:
    url = os.environ.get("MESHGOV_OPA_URL")
    if not url:
        pytest.skip("no OPA server: set MESHGOV_OPA_URL=http://host:port to run these cases")
    return url


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle_dir(ROOT / "policies")


@pytest.mark.opa_server
@pytest.mark.parametrize(("path", "index"), _cases())
def test_access_cases_on_an_opa_server(
    opa_url: str, bundle: PolicyBundle, path: Path, index: int
) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    case = doc["cases"][index]
    data = case.get("data", doc["data"])
    # As the gateway prepares it: the catalogue with its access view (data.catalog.access).
    data = {**data, **catalog_policy_data(data.get("catalog", {}).get("products", {}))}
    remote = OpaServerEngine(opa_url).prepare(bundle, data).evaluate(QUERY, case["input"])
    local = EmbeddedEngine().prepare(bundle, data).evaluate(QUERY, case["input"])
    for key in ("allow", "row_filters", "masks", "hidden_columns"):
        assert remote[key] == case["expected"][key], key
        assert remote[key] == local[key], key


@pytest.mark.opa_server
def test_undefined_is_none_on_an_opa_server(opa_url: str, bundle: PolicyBundle) -> None:
    prepared = OpaServerEngine(opa_url).prepare(bundle, {})
    assert prepared.evaluate("data.meshgov.no_such_package.rule", {}) is None


def test_engine_from_url_builds_the_opa_engine() -> None:
    engine = engine_from_url("opa+http://127.0.0.1:8181")
    assert isinstance(engine, OpaServerEngine)
    assert engine.url == "http://127.0.0.1:8181"


def test_evaluates_through_a_meshgov_data_api(server: RunningServer) -> None:
    """meshgov speaks OPA's Data API: the OPA engine evaluates against it (no upload)."""
    engine = OpaServerEngine(server.url, token=TOKENS["analyst-eu"], upload=False)
    prepared = engine.prepare(server.service.state.bundle)
    document = {
        "principal": {
            "id": "analyst-eu",
            "groups": ["analysts"],
            "domain": "analytics",
            "attributes": {"region": "EU", "clearances": []},
        },
        "purpose": "analytics",
        "product": "customer/customers",
        "port": "customers",
    }
    remote = prepared.evaluate(QUERY, document)
    local = server.service.state.prepared.evaluate(QUERY, document)
    assert remote == local
    assert remote["allow"] is True
    assert prepared.evaluate("data.meshgov.nothing.here", {}) is None


def test_an_unreachable_server_is_backend_unavailable() -> None:
    engine = OpaServerEngine(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(BackendUnavailable, match="unavailable"):
        engine.prepare(PolicyBundle.create({"a.rego": "package a\n"}, {}))
    prepared = OpaServerEngine(f"http://127.0.0.1:{free_port()}", upload=False).prepare(
        PolicyBundle.create({}, {})
    )
    with pytest.raises(BackendUnavailable):
        prepared.evaluate(QUERY, {})
