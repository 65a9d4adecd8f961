"""regopy and regorus must decide alike: any difference fails the build.

Compared on the same policies and data, output for output (reasons included, sets compared
without their order, which is each engine's own):
- every access decision case of policies/cases/access;
- a sweep of principals × purposes × ports over the example mesh, unknown principals, purposes,
  ports and products included;
- the release gate over every manifest of examples/mesh and examples/broken (the raw violations
  the policy returns, and the findings the report makes of them).
The Rego tests themselves run under both engines in test_rego_suite.py and test_access_cases.py.
"""

from __future__ import annotations

import json
import threading
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from test_access_cases import _cases, case_decision

from meshgov.catalog import load_catalog
from meshgov.core.policy import PolicyBundle, PreparedPolicy
from meshgov.core.principal import Principal, parse_principal
from meshgov.core.sql.model import ports_of
from meshgov.gate import Gate
from meshgov.gateway import ACCESS_QUERY, Gateway, registered_purposes
from meshgov.policy_backends import engine_from_url, load_bundle_dir

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
MESH = ROOT / "examples" / "mesh"
BROKEN = ROOT / "examples" / "broken"
PREVIOUS = ROOT / "examples" / "previous"
ENGINES = ("embedded", "regorus")


def _canonical(value: Any) -> str:
    """JSON with object keys sorted; arrays that stand for a Rego set are compared sorted by the
    callers that know them (``violations``)."""
    return json.dumps(value, sort_keys=True)


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle_dir(POLICIES)


@pytest.fixture(scope="module")
def access_bundle(bundle: PolicyBundle) -> PolicyBundle:
    modules = {p: t for p, t in bundle.modules.items() if p.startswith("meshgov/access/")}
    return PolicyBundle.create(modules, bundle.data)


@pytest.mark.parametrize(("file_name", "index"), _cases())
def test_decision_cases_are_identical(
    access_bundle: PolicyBundle, file_name: str, index: int
) -> None:
    regopy, _ = case_decision(access_bundle, file_name, index, "embedded")
    regorus, _ = case_decision(access_bundle, file_name, index, "regorus")
    assert _canonical(regorus) == _canonical(regopy)


def _principals() -> list[Principal]:
    people = [
        parse_principal(path.read_text(encoding="utf-8"), str(path))
        for path in sorted((MESH / "principals").glob("*.yaml"))
    ]
    people += [
        Principal(id="stranger"),
        Principal(id="cleared", groups=("analysts",), attributes={"clearances": ["pii"]}),
        Principal(
            id="restricted-cleared",
            groups=("analysts", "fraud"),
            domain="payments",
            attributes={"clearances": ["pii", "restricted"], "region": "EU"},
        ),
        Principal(id="other-domain", groups=("unknown-group",), domain="marketing"),
    ]
    return people


def test_sweep_over_the_example_mesh_is_identical(bundle: PolicyBundle) -> None:
    catalog = load_catalog(MESH)
    gateways = {name: Gateway(catalog, bundle, engine_from_url(name)) for name in ENGINES}
    ports = [(p.product, p.port) for p in ports_of(catalog.manifests)]
    ports += [("customer/customers", "no-such-port"), ("nowhere/nothing", "x"), ("bad", "x")]
    purposes: list[str | None] = [*sorted(registered_purposes(bundle)), "no-such-purpose", None]
    principals = _principals()
    compared = 0
    allowed = 0
    for principal, purpose, (product_id, port) in product(principals, purposes, ports):
        request = {
            "principal": principal.policy_document(),
            "purpose": purpose,
            "product": product_id,
            "port": port,
        }
        regopy = gateways["embedded"].policy.evaluate(ACCESS_QUERY, request)
        regorus = gateways["regorus"].policy.evaluate(ACCESS_QUERY, request)
        assert _canonical(regorus) == _canonical(regopy), request
        compared += 1
        allowed += bool(regopy and regopy.get("allow"))
    # The sweep reaches both outcomes, on many inputs.
    assert compared >= 500
    assert 0 < allowed < compared


class _Recording:
    """A prepared policy that keeps every (input, output) pair it evaluates."""

    def __init__(self, inner: PreparedPolicy) -> None:
        self.inner = inner
        self.outputs: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def revision(self) -> str:
        return self.inner.revision

    def evaluate(self, query: str, input_document: Any) -> Any:
        output = self.inner.evaluate(query, input_document)
        # The violations are a set: each engine lists it in its own order.
        members = output if isinstance(output, list) else [output]
        with self._lock:
            self.outputs[_canonical(input_document)] = _canonical(
                sorted(_canonical(member) for member in members)
            )
        return output


def _gate_run(bundle: PolicyBundle, engine: str) -> tuple[dict[str, str], list[str]]:
    gate = Gate(bundle, engine_from_url(engine))
    recording = _Recording(gate.prepared)
    gate.prepared = recording
    manifests = sorted(MESH.rglob("*.yaml")) + sorted(BROKEN.glob("*.yaml"))
    manifests = [p for p in manifests if "principals" not in p.parts]
    report = gate.check_paths(manifests, against=str(PREVIOUS), catalog_dir=MESH)
    findings = sorted(_canonical(f.as_dict()) for f in report.findings())
    gate.close()
    return recording.outputs, findings


def test_gate_over_every_example_and_broken_manifest_is_identical(bundle: PolicyBundle) -> None:
    regopy_outputs, regopy_findings = _gate_run(bundle, "embedded")
    regorus_outputs, regorus_findings = _gate_run(bundle, "regorus")
    assert len(regopy_outputs) >= 50  # every manifest reached the policy
    assert regorus_outputs.keys() == regopy_outputs.keys()
    for key, value in regopy_outputs.items():
        assert regorus_outputs[key] == value, key[:300]
    assert regorus_findings == regopy_findings
    assert any('"severity": "error"' in finding for finding in regopy_findings)
