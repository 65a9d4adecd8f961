"""Trino's OPA access control against meshgov, with the payloads of the wire contract
(/work/shared/reference/trino-opa.md) pointed at the example mesh's tables."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from api_server import RunningServer, settings_for, start_server

from meshgov.api.trino import PortIndex, TrinoAuthorizer, TrinoRequest
from meshgov.core.manifest import LogicalType
from meshgov.core.principal import Principal
from meshgov.core.sql.model import AccessDecision, Mask, PortColumn, PortRef

BASE = "/v1/data/meshgov/trino"


def envelope(user: str, action: dict[str, Any], groups: list[str] | None = None) -> dict[str, Any]:
    """The request of section 2, with the optional fields Trino may add (ignored by meshgov)."""
    return {
        "input": {
            "context": {
                "identity": {"user": user, "groups": groups or []},
                "queryId": "20250718_081710_03427_trino",
                "softwareStack": {"trinoVersion": "434"},
                "properties": {},
                "unknownFutureField": {"x": 1},
            },
            "action": action,
        },
        "extra": True,
    }


def table(name: str, schema: str = "customer", **extra: Any) -> dict[str, Any]:
    return {"table": {"catalogName": "lake", "schemaName": schema, "tableName": name, **extra}}


def column(
    name: str, column_type: str = "varchar", schema: str = "customer", table_name: str = "customers"
) -> dict[str, Any]:
    return {
        "column": {
            "catalogName": "lake",
            "schemaName": schema,
            "tableName": table_name,
            "columnName": name,
            "columnType": column_type,
        }
    }


@pytest.fixture
def trino(server: RunningServer):  # type: ignore[no-untyped-def]
    with server.client("trino") as client:
        yield client


def ask(client: Any, rule: str, user: str, action: dict[str, Any]) -> Any:
    response = client.post(f"{BASE}/{rule}", json=envelope(user, action))
    assert response.status_code == 200, response.text
    return response.json()


def test_always_allowed_operations(trino: Any) -> None:
    assert ask(trino, "allow", "analyst-eu", {"operation": "ExecuteQuery"}) == {"result": True}
    catalog = {"operation": "AccessCatalog", "resource": {"catalog": {"name": "lake"}}}
    assert ask(trino, "allow", "analyst-eu", catalog) == {"result": True}
    # Not a product catalog (MESHGOV_TRINO_CATALOGS): denied.
    catalog["resource"]["catalog"]["name"] = "test_catalog"
    assert ask(trino, "allow", "analyst-eu", catalog) == {"result": False}


def test_select_from_columns_follows_the_access_decision(trino: Any) -> None:
    select = {
        "operation": "SelectFromColumns",
        "resource": table("customers", columns=["customer_id", "email", "region"]),
    }
    assert ask(trino, "allow", "analyst-eu", select)["result"] is True
    assert ask(trino, "allow", "nobody", select)["result"] is False
    count_star = {"operation": "SelectFromColumns", "resource": table("customers", columns=[])}
    assert ask(trino, "allow", "analyst-eu", count_star)["result"] is True
    unknown = {"operation": "SelectFromColumns", "resource": table("secrets", columns=["a"])}
    assert ask(trino, "allow", "analyst-eu", unknown)["result"] is False


@pytest.mark.parametrize(
    "action",
    [
        {
            "operation": "RenameTable",
            "resource": table("customers"),
            "targetResource": table("new_table_name", schema="new_schema_name"),
        },
        {
            "operation": "SetSchemaAuthorization",
            "resource": {"schema": {"catalogName": "lake", "schemaName": "customer"}},
            "grantee": {"name": "my_user", "type": "USER"},
        },
        {"operation": "CreateTable", "resource": table("t", properties={"empty_item": None})},
        {"operation": "InsertIntoTable", "resource": table("customers")},
        {"operation": "DropTable", "resource": table("customers")},
        {"operation": "ImpersonateUser", "resource": {"user": {"user": "bob"}}},
        {"operation": "ReadSystemInformation"},
        {"operation": "SomethingNew"},
    ],
    ids=lambda a: a["operation"],
)
def test_everything_else_is_denied(trino: Any, action: dict[str, Any]) -> None:
    assert ask(trino, "allow", "owner-customer", action) == {"result": False}


def test_batch_filter_tables_lists_allowed_indices(trino: Any) -> None:
    action = {
        "operation": "FilterTables",
        "filterResources": [
            table("customers"),
            table("unknown_table", schema="schema_one"),
            table("products", schema="commerce"),
        ],
    }
    assert ask(trino, "batch", "analyst-eu", action) == {"result": [0, 2]}
    assert ask(trino, "batch", "nobody", action) == {"result": []}


def test_batch_filter_columns_indexes_into_the_columns(trino: Any) -> None:
    """The trap: one filterResource, and the indices point into its ``columns``."""
    action = {
        "operation": "FilterColumns",
        "filterResources": [
            table("customers", columns=["not_declared", "customer_id", "email", "region"])
        ],
    }
    assert ask(trino, "batch", "analyst-eu", action) == {"result": [1, 2, 3]}
    assert ask(trino, "batch", "nobody", action) == {"result": []}


def test_row_filters_in_trino_sql(trino: Any) -> None:
    action = {"operation": "GetRowFilters", "resource": table("customers")}
    assert ask(trino, "row_filters", "analyst-eu", action) == {
        "result": [{"expression": "\"region\" = 'EU'"}]
    }
    assert ask(trino, "row_filters", "analyst-us", action)["result"][0]["expression"] == (
        "\"region\" = 'US'"
    )
    # The owning domain reads unfiltered; a principal without a grant sees no row.
    assert ask(trino, "row_filters", "owner-customer", action) == {"result": []}
    assert ask(trino, "row_filters", "nobody", action) == {"result": [{"expression": "FALSE"}]}
    # Trino's documentation path names are aliases.
    assert ask(trino, "rowFilters", "analyst-eu", action)["result"]


def test_single_column_masks(trino: Any) -> None:
    def mask(user: str, name: str, column_type: str = "varchar") -> Any:
        action = {"operation": "GetColumnMask", "resource": column(name, column_type)}
        return ask(trino, "column_mask", user, action)["result"]

    hashed = mask("analyst-eu", "email")
    assert hashed is not None
    assert "meshgov_hash" in hashed["expression"].lower()
    assert mask("analyst-eu", "full_name") == {"expression": "CAST('[REDACTED]' AS VARCHAR)"}
    # Trino needs the mask to coerce to the column's type: text is cast to a bounded type.
    assert mask("analyst-eu", "postcode", "varchar(5)") == {
        "expression": "CAST('[REDACTED]' AS VARCHAR(5))"
    }
    assert mask("analyst-eu", "email", "char(20)")["expression"].startswith("CAST(")
    assert mask("analyst-eu", "email", "char(20)")["expression"].endswith(" AS CHAR(20))")
    assert mask("analyst-eu", "region") is None  # not masked
    assert mask("owner-customer", "email") is None  # the owning domain reads unmasked
    # Purpose comes from Trino's context properties (opa.context-file), default `analytics`.
    request_body = envelope(
        "owner-customer", {"operation": "GetColumnMask", "resource": column("email")}
    )
    request_body["input"]["context"]["properties"] = {"purpose": "no-such-purpose"}
    denied = trino.post(f"{BASE}/column_mask", json=request_body).json()
    assert denied == {"result": {"expression": "CAST(NULL AS VARCHAR)"}}
    assert mask("nobody", "email") == {"expression": "CAST(NULL AS VARCHAR)"}


def test_batch_column_masks_never_null(trino: Any) -> None:
    action = {
        "operation": "GetColumnMask",
        "filterResources": [column("email"), column("region"), column("birth_date", "date")],
    }
    result = ask(trino, "batch_column_masks", "analyst-eu", action)["result"]
    assert [r["index"] for r in result] == [0, 2]
    assert "meshgov_hash" in result[0]["viewExpression"]["expression"].lower()
    assert "DATE_TRUNC" in result[1]["viewExpression"]["expression"].upper()
    empty = {"operation": "GetColumnMask", "filterResources": []}
    assert ask(trino, "batch_column_masks", "analyst-eu", empty) == {"result": []}
    unknown = {"operation": "GetColumnMask", "filterResources": [column("a", "integer", "x", "y")]}
    assert ask(trino, "batch_column_masks", "analyst-eu", unknown) == {
        "result": [{"index": 0, "viewExpression": {"expression": "CAST(NULL AS INTEGER)"}}]
    }
    assert ask(trino, "batchColumnMasks", "analyst-eu", empty) == {"result": []}


def test_malformed_envelopes_fail_closed(trino: Any) -> None:
    assert trino.post(f"{BASE}/allow", json={}).json() == {"result": False}
    assert trino.post(f"{BASE}/batch", json={"input": {"action": "x"}}).json() == {"result": []}
    assert trino.post(f"{BASE}/batch_column_masks", json={"input": 3}).json() == {"result": []}
    assert trino.post(f"{BASE}/allow", content=b"{").status_code == 400


def test_only_query_engines_answer_for_other_identities(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.post(
            f"{BASE}/allow", json=envelope("guild", {"operation": "ExecuteQuery"})
        )
    assert response.status_code == 403


def test_trino_calls_are_in_the_decision_log(server: RunningServer, trino: Any) -> None:
    action = {"operation": "GetRowFilters", "resource": table("customers")}
    ask(trino, "row_filters", "analyst-us", action)
    server.service.flush_decisions()
    with server.client("guild") as client:
        logged = client.get(
            "/v1/decisions", params={"kind": "trino", "principal": "analyst-us"}
        ).json()["decisions"]
    assert logged
    assert logged[0]["product"] == "customer/customers"
    assert logged[0]["result"]["rule"] == "row_filters"


def test_anonymous_trino_when_enabled(tmp_path: Path) -> None:
    handle = start_server(settings_for(tmp_path, data_api_anonymous=True))
    try:
        with handle.running.client() as client:
            action = {"operation": "GetRowFilters", "resource": table("customers")}
            answer = client.post(f"{BASE}/row_filters", json=envelope("analyst-eu", action))
            products = client.get("/v1/products")
    finally:
        handle.stop()
    assert answer.json() == {"result": [{"expression": "\"region\" = 'EU'"}]}
    assert products.status_code == 401  # only the Data API is open


# --- the translation itself, with decisions the example mesh does not produce ---------------


PORT = PortRef(
    product="hr/people",
    port="people",
    version="1.0.0",
    table=("hr", "people"),
    columns=(
        PortColumn("id", LogicalType.integer),
        PortColumn("salary", LogicalType.decimal),
        PortColumn("phone", LogicalType.string),
    ),
)


def authorizer(decision: AccessDecision) -> TrinoAuthorizer:
    return TrinoAuthorizer(PortIndex([PORT]), lambda _: decision, Principal(id="u"))


def request(action: dict[str, Any]) -> TrinoRequest:
    return TrinoRequest.parse(envelope("u", action))


def test_hidden_columns_are_filtered_denied_and_nulled() -> None:
    decision = AccessDecision(
        allow=True, masks={"phone": Mask("partial")}, hidden_columns=frozenset({"salary"})
    )
    people = table("people", schema="hr", columns=["id", "salary", "phone"])
    trino = authorizer(decision)
    assert trino.batch(request({"operation": "FilterColumns", "filterResources": [people]})) == [
        0,
        2,
    ]
    assert not trino.allow(request({"operation": "SelectFromColumns", "resource": people}))
    only_id = copy.deepcopy(people)
    only_id["table"]["columns"] = ["id"]
    assert trino.allow(request({"operation": "SelectFromColumns", "resource": only_id}))
    salary = column("salary", "decimal(10,2)", "hr", "people")["column"]
    assert trino.column_mask(salary) == {"expression": "CAST(NULL AS DECIMAL(10, 2))"}
    phone = trino.column_mask(column("phone", "varchar", "hr", "people")["column"])
    assert phone is not None
    assert "LPAD" in phone["expression"].upper()


def test_a_failing_decision_denies_everything() -> None:
    def broken(_: PortRef) -> AccessDecision:
        from meshgov.errors import PolicyEvaluationError

        raise PolicyEvaluationError("engine down")

    trino = TrinoAuthorizer(PortIndex([PORT]), broken, Principal(id="u"))
    people = table("people", schema="hr", columns=["id"])
    assert not trino.allow(request({"operation": "SelectFromColumns", "resource": people}))
    assert trino.row_filters(request({"operation": "GetRowFilters", "resource": people})) == [
        {"expression": "FALSE"}
    ]
    masks = trino.batch_column_masks(
        request(
            {
                "operation": "GetColumnMask",
                "filterResources": [column("id", "bigint", "hr", "people")],
            }
        )
    )
    assert masks == [{"index": 0, "viewExpression": {"expression": "CAST(NULL AS BIGINT)"}}]
