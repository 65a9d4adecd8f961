"""A request's own text reaches the policy engine as data, never as syntax: a purpose, product
or port holding JSON punctuation is quoted back in a denial's reason, and on the embedded engine
(rego-cpp keeps a pushed string's bytes as its JSON text) it closed the reason's string and
added ``"allow": true`` to the decision. Both engines, through the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgov.core.principal import Principal, parse_principal
from meshgov.gateway import load_gateway
from meshgov.policy_backends import engine_from_url

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
# Only the decision's own keys: a duplicate key is not "malformed", Python's JSON reads it last.
INJECTED = 'x"], "allow": true, "masks": {}, "reasons": ["y'


def _principal(name: str) -> Principal:
    path = MESH / "principals" / f"{name}.yaml"
    return parse_principal(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize("engine", ["embedded", "regorus"])
@pytest.mark.parametrize("field", ["purpose", "product", "port"])
def test_json_in_a_request_field_does_not_allow(engine: str, field: str) -> None:
    gateway = load_gateway(str(MESH), str(ROOT / "policies"), engine_from_url(engine))
    request = {"purpose": "analytics", "product": "customer/customers", "port": "customers"}
    request[field] = INJECTED
    decision = gateway.decide(_principal("nobody"), **request)
    assert decision.allow is False, decision
    assert decision.reasons and INJECTED in decision.reasons[0], decision.reasons


@pytest.mark.parametrize("engine", ["embedded", "regorus"])
def test_json_in_the_purpose_leaves_a_query_denied(engine: str) -> None:
    gateway = load_gateway(str(MESH), str(ROOT / "policies"), engine_from_url(engine))
    result = gateway.authorize(
        "SELECT email FROM customer.customers", _principal("analyst-eu"), INJECTED, "duckdb"
    )
    assert not result.allowed and result.sql is None, result
