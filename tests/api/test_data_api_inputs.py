"""The Data API: client input is 400, the service's own faults 5xx (rule in api/data_inputs.py)."""

from __future__ import annotations

from typing import Any

import pytest
from api_server import RunningServer

from meshgov.api.data_inputs import blame, check_input, contract_for
from meshgov.errors import InputError, PolicyEvaluationError

PRINCIPAL = {
    "id": "analyst-eu",
    "groups": ["analysts"],
    "domain": "analytics",
    "attributes": {"region": "EU", "clearances": []},
}
GOOD = {
    "principal": PRINCIPAL,
    "purpose": "analytics",
    "product": "customer/customers",
    "port": "customers",
}


def post(server: RunningServer, path: str, document: Any) -> Any:
    with server.client("analyst-eu") as client:
        return client.post(f"/v1/data/{path}", json={"input": document})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**GOOD, "principal": "x"}, "input.principal: must be an object (got 'x')"),
        ({**GOOD, "principal": {**PRINCIPAL, "attributes": 5}}, "input.principal.attributes"),
        ({**GOOD, "principal": {**PRINCIPAL, "groups": "analysts"}}, "input.principal.groups"),
        ({**GOOD, "principal": {**PRINCIPAL, "id": 5}}, "input.principal.id"),
        (
            {**GOOD, "principal": {**PRINCIPAL, "attributes": {"clearances": "pii"}}},
            "attributes.clearances must be a list of strings",
        ),
        ({**GOOD, "product": 5}, "input.product: must be a string (got 5)"),
        ({**GOOD, "port": ["customers"]}, "input.port: must be a string"),
        ({**GOOD, "purpose": 5}, "input.purpose: must be a string (got 5)"),
        ({**GOOD, "columns": "email"}, "input.columns: must be a list"),
        ({**GOOD, "principle": PRINCIPAL}, "input.principle: unknown key"),
        ("customer/customers", "input: meshgov.access expects an object"),
    ],
)
def test_a_mistyped_access_input_is_400_naming_the_field(
    server: RunningServer, document: Any, message: str
) -> None:
    response = post(server, "meshgov/access/decision", document)
    assert response.status_code == 400, response.text
    body = response.json()
    # OPA's code for a bad parameter; meshgov's own in errors[0].
    assert body["code"] == "invalid_parameter"
    assert body["errors"][0]["code"] == "invalid_input"
    assert message in body["message"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"product": 5}, "input.product: must be an object (got 5)"),
        ({"product": {}, "previous": "1.0.0"}, "input.previous: must be an object"),
        ({"product": {}, "scan": {}}, "input.scan: must be a list"),
        ({"product": {}, "identity_facts": ["x"]}, "input.identity_facts.0: must be an object"),
        ({"prodcut": {}}, "input.prodcut: unknown key"),
    ],
)
@pytest.mark.parametrize("package", ["main", "pii", "identity", "release"])
def test_a_mistyped_gate_input_is_400_naming_the_field(
    server: RunningServer, package: str, document: Any, message: str
) -> None:
    response = post(server, f"meshgov/{package}/violations", document)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_well_formed_inputs_still_answer(server: RunningServer) -> None:
    allowed = post(server, "meshgov/access/decision", GOOD)
    assert allowed.status_code == 200
    assert allowed.json()["result"]["allow"] is True
    partial = post(server, "meshgov/access/decision", {"product": "nope/nope", "port": "x"})
    assert partial.status_code == 200
    assert partial.json()["result"]["allow"] is False
    gate = post(server, "meshgov/main/violations", {"product": {}, "previous": None})
    assert gate.status_code == 200
    assert gate.json()["result"] == []


def test_an_error_on_an_unchecked_input_is_the_callers(server: RunningServer) -> None:
    # A shallow contract: the product document is not checked field by field, so an evaluation
    # error under it is blamed on the input.
    deep = post(server, "meshgov/main/violations", {"product": {"metadata": 5, "spec": 5}})
    # No contract for the whole tree: the input was never checked.
    whole = post(server, "meshgov", {"principal": "x", "product": "customer/customers"})
    for response in (deep, whole):
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_parameter"
        assert response.json()["errors"][0]["code"] == "invalid_input"
        assert "the policy cannot evaluate data." in response.json()["message"]


def test_contracts_are_chosen_by_package() -> None:
    assert contract_for("meshgov/access/decision") is contract_for("meshgov/access")
    assert contract_for("/meshgov/pii/violations/") is contract_for("meshgov/main/violations")
    assert contract_for("meshgov") is None
    assert contract_for("meshgov/lib/result") is None
    assert contract_for("registry/purposes") is None


def test_blame_follows_what_was_checked() -> None:
    fault = PolicyEvaluationError("evaluating data.x: the policy engine reported an error")
    # No input, or an input that passed a complete contract: the service's fault (500).
    assert blame(fault, "meshgov/access/decision", None, checked=False) is fault
    assert check_input("meshgov/access/decision", GOOD) is True
    assert blame(fault, "meshgov/access/decision", GOOD, checked=True) is fault
    # A shallow contract, or none: the input's (400), saying what was expected.
    assert check_input("meshgov/main/violations", {"product": {}}) is False
    shallow = blame(fault, "meshgov/main/violations", {"product": {}}, checked=False)
    assert isinstance(shallow, InputError)
    assert shallow.http_status == 400
    assert "{product, previous, scan, identity_facts}" in shallow.message
    unchecked = blame(fault, "some/path", {"a": 1}, checked=check_input("some/path", {"a": 1}))
    assert isinstance(unchecked, InputError)


def test_a_genuine_engine_fault_stays_5xx(server: RunningServer, monkeypatch: Any) -> None:
    def broken(path: str, document: Any) -> Any:
        raise PolicyEvaluationError(f"evaluating data.{path}: the policy engine reported an error")

    monkeypatch.setattr(server.service, "evaluate", broken)
    valid = post(server, "meshgov/access/decision", GOOD)
    for response in (valid,):
        assert response.status_code == 500
        assert response.json()["code"] == "evaluation_error"
