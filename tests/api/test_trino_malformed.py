"""Malformed Trino requests are denied, whatever they ask (docs/service.md, *Trino*).

Every field the wire contract defines (/work/shared/reference/trino-opa.md, sections 2 to 6) is
checked; unknown fields are still ignored. A request that breaks the contract answers ``false``
(allow), ``[]`` (batch), ``FALSE`` (row filters) and ``NULL`` (masks of every column it names).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from api_server import RunningServer

from meshgov.api.trino import TrinoRequest

BASE = "/v1/data/meshgov/trino"
CUSTOMER_360 = {"catalogName": "lake", "schemaName": "marketing", "tableName": "customer_360"}
CUSTOMERS = {"catalogName": "lake", "schemaName": "customer", "tableName": "customers"}


def envelope(action: dict[str, Any], user: str = "analyst-eu") -> dict[str, Any]:
    return {
        "input": {
            "context": {
                "identity": {"user": user, "groups": []},
                "softwareStack": {"trinoVersion": "455"},
                "queryId": "20250718_081710_03427_trino",
                "properties": {},
                "futureField": [1, {"x": None}],  # unknown: ignored
            },
            "action": action,
        }
    }


def select(columns: Any) -> dict[str, Any]:
    return {
        "operation": "SelectFromColumns",
        "resource": {"table": {**CUSTOMER_360, "columns": columns}},
    }


@pytest.fixture
def trino(server: RunningServer):  # type: ignore[no-untyped-def]
    with server.client("trino") as client:
        yield client


def ask(client: Any, rule: str, body: dict[str, Any]) -> Any:
    response = client.post(f"{BASE}/{rule}", json=body)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_select_well_formed_controls(trino: Any) -> None:
    # The hidden column is denied, a visible one allowed: the malformed cases below are denied
    # because they are malformed, not because of the column.
    assert ask(trino, "allow", envelope(select(["failed_payment_count"]))) is False
    assert ask(trino, "allow", envelope(select(["segment"]))) is True
    assert ask(trino, "allow", envelope(select([]))) is True  # SELECT count(*)


@pytest.mark.parametrize(
    "columns",
    [
        "failed_payment_count",
        [["failed_payment_count"]],
        {"failed_payment_count": True},
        None,
        "segment",
        [["segment"]],
        ["segment", 5],
        {},
    ],
    ids=repr,
)
def test_malformed_columns_are_denied(trino: Any, columns: Any) -> None:
    assert ask(trino, "allow", envelope(select(columns))) is False


def test_select_without_columns_is_denied(trino: Any) -> None:
    action = {"operation": "SelectFromColumns", "resource": {"table": dict(CUSTOMER_360)}}
    assert ask(trino, "allow", envelope(action)) is False
    # ShowColumns does not carry columns: still allowed on a readable table.
    show = {"operation": "ShowColumns", "resource": {"table": dict(CUSTOMER_360)}}
    assert ask(trino, "allow", envelope(show)) is True


def _broken_envelopes(action: dict[str, Any]) -> list[dict[str, Any]]:
    """The same request broken in each part of the envelope that the contract defines."""
    cases: list[dict[str, Any]] = []

    def broken(path: tuple[str, ...], value: Any) -> None:
        body = envelope(copy.deepcopy(action))
        node = body["input"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        cases.append(body)

    broken(("context", "identity", "user"), 5)
    broken(("context", "identity", "user"), None)
    broken(("context", "identity", "groups"), "analysts")
    broken(("context", "identity", "groups"), [["analysts"]])
    broken(("context", "identity"), "analyst-eu")
    broken(("context", "softwareStack"), "455")
    broken(("context", "queryId"), 7)
    broken(("context", "properties"), {"purpose": 5})
    broken(("action", "operation"), None)
    broken(("action", "operation"), ["SelectFromColumns"])
    return cases


def test_every_answer_denies_a_malformed_envelope(trino: Any) -> None:
    allowed = select(["segment"])
    filter_tables = {"operation": "FilterTables", "filterResources": [{"table": CUSTOMERS}]}
    row_filters = {"operation": "GetRowFilters", "resource": {"table": CUSTOMERS}}
    column = {**CUSTOMERS, "columnName": "region", "columnType": "varchar"}
    single_mask = {"operation": "GetColumnMask", "resource": {"column": column}}
    batch_masks = {"operation": "GetColumnMask", "filterResources": [{"column": column}]}
    # Well-formed, each would let something through.
    assert ask(trino, "allow", envelope(allowed)) is True
    assert ask(trino, "batch", envelope(filter_tables)) == [0]
    assert ask(trino, "row_filters", envelope(row_filters)) == [{"expression": "\"region\" = 'EU'"}]
    assert ask(trino, "column_mask", envelope(single_mask)) is None
    assert ask(trino, "batch_column_masks", envelope(batch_masks)) == []
    null = {"expression": "CAST(NULL AS VARCHAR)"}
    for action, rule, denied in [
        (allowed, "allow", False),
        (filter_tables, "batch", []),
        (row_filters, "row_filters", [{"expression": "FALSE"}]),
        (single_mask, "column_mask", null),
        (batch_masks, "batch_column_masks", [{"index": 0, "viewExpression": null}]),
    ]:
        for body in _broken_envelopes(action):
            assert ask(trino, rule, body) == denied, (rule, body["input"])


@pytest.mark.parametrize(
    ("rule", "action", "denied"),
    [
        (
            "batch",
            {"operation": "FilterTables", "filterResources": [{"table": CUSTOMERS}, "customers"]},
            [],
        ),
        (
            "batch",
            {"operation": "FilterTables", "filterResources": {"0": {"table": CUSTOMERS}}},
            [],
        ),
        (
            "batch",
            {
                "operation": "FilterTables",
                "filterResources": [{"table": {**CUSTOMERS, "tableName": 5}}],
            },
            [],
        ),
        (
            "batch",
            {
                "operation": "FilterColumns",
                "filterResources": [{"table": {**CUSTOMERS, "columns": "region"}}],
            },
            [],
        ),
        (
            "batch",
            {
                "operation": "FilterColumns",
                "filterResources": [{"table": {**CUSTOMERS, "columns": [["region"]]}}],
            },
            [],
        ),
        (
            "row_filters",
            {
                "operation": "GetRowFilters",
                "resource": {"table": {**CUSTOMERS, "schemaName": None}},
            },
            [{"expression": "FALSE"}],
        ),
        (
            "row_filters",
            {"operation": "GetRowFilters", "resource": {"table": "customer.customers"}},
            [{"expression": "FALSE"}],
        ),
        (
            "row_filters",
            {
                "operation": "GetRowFilters",
                "resource": {"table": CUSTOMERS},
                "filterResources": [],
            },
            [{"expression": "FALSE"}],
        ),
        (
            "column_mask",
            {
                "operation": "GetColumnMask",
                "resource": {
                    "column": {**CUSTOMERS, "columnName": ["region"], "columnType": "date"}
                },
            },
            {"expression": "CAST(NULL AS DATE)"},
        ),
        (
            "column_mask",
            {
                "operation": "GetColumnMask",
                "resource": {"column": {**CUSTOMERS, "columnName": "region", "columnType": 5}},
            },
            {"expression": "NULL"},
        ),
        (
            "batch_column_masks",
            {
                "operation": "GetColumnMask",
                "filterResources": [
                    {"column": {**CUSTOMERS, "columnName": "region", "columnType": "varchar"}},
                    {"column": {**CUSTOMERS, "columnName": None, "columnType": "integer"}},
                ],
            },
            [
                {"index": 0, "viewExpression": {"expression": "CAST(NULL AS VARCHAR)"}},
                {"index": 1, "viewExpression": {"expression": "CAST(NULL AS INTEGER)"}},
            ],
        ),
        (
            "allow",
            {
                "operation": "RenameTable",
                "resource": {"table": CUSTOMERS},
                "targetResource": {"table": {**CUSTOMERS, "tableName": None}},
            },
            False,
        ),
    ],
)
def test_malformed_resources_deny(trino: Any, rule: str, action: Any, denied: Any) -> None:
    assert ask(trino, rule, envelope(action)) == denied


def test_malformed_requests_are_logged_with_the_problem(server: RunningServer, trino: Any) -> None:
    ask(trino, "allow", envelope(select("failed_payment_count"), user="analyst-us"))
    server.service.flush_decisions()
    with server.client("guild") as client:
        logged = client.get(
            "/v1/decisions", params={"kind": "trino", "principal": "analyst-us", "limit": 1000}
        ).json()["decisions"]
    problems = [d["result"].get("malformed") for d in logged]
    assert "input.action.resource.table.columns: must be a list of strings, got str" in problems


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (select("a"), "input.action.resource.table.columns: must be a list of strings, got str"),
        (select([["a"]]), "input.action.resource.table.columns[0]: must be a string, got list"),
        # null is an absent optional: columns are then missing, and SelectFromColumns requires them.
        (select(None), "input.action.resource.table.columns: required for SelectFromColumns"),
        (
            {"operation": "SelectFromColumns", "resource": {"table": CUSTOMERS}},
            "input.action.resource.table.columns: required for SelectFromColumns",
        ),
        (
            {"operation": "AccessCatalog", "resource": {"catalog": {"name": 1}}},
            "input.action.resource.catalog.name: must be a non-empty string, got int",
        ),
        (
            {"operation": "SetSchemaAuthorization", "resource": {}, "grantee": {"name": "x"}},
            "input.action.grantee.type: must be a non-empty string, got null",
        ),
    ],
)
def test_parse_names_the_first_offending_field(action: dict[str, Any], problem: str) -> None:
    assert TrinoRequest.parse(envelope(action)).problem == problem


def test_well_formed_requests_of_the_contract_parse_without_problem() -> None:
    actions = [
        {"operation": "ExecuteQuery"},
        select([]),
        {"operation": "ImpersonateUser", "resource": {"user": {"user": "bob"}}},
        {
            "operation": "FilterViewQueryOwnedBy",
            "filterResources": [{"user": {"user": "bob", "groups": ["g"]}}],
        },
        {
            "operation": "CreateTable",
            "resource": {"table": {**CUSTOMERS, "properties": {"a": None, "b": 32}}},
        },
        {
            "operation": "ExecuteTableProcedure",
            "resource": {"table": CUSTOMERS, "function": {"functionName": "optimize"}},
        },
        {
            "operation": "SetSystemSessionProperty",
            "resource": {"systemSessionProperty": {"name": "p"}},
        },
        {
            "operation": "SetCatalogSessionProperty",
            "resource": {"catalogSessionProperty": {"catalogName": "c", "propertyName": "p"}},
        },
        {
            "operation": "SetSchemaAuthorization",
            "resource": {"schema": {"catalogName": "c", "schemaName": "s"}},
            "grantee": {"name": "my_user", "type": "USER"},
        },
        {"operation": "SomethingNew", "resource": {"somethingNew": 5}},  # unknown: ignored
    ]
    for action in actions:
        assert TrinoRequest.parse(envelope(action)).problem is None, action
