"""Trino's OPA plugin as shipped: the requests of its own tests (tests/fixtures/trino), metadata
tables, Filter* per principal, columns as the gateway sees them, null optionals, session
properties, product catalogs, masks typed exactly as the column, large batches, tokenless mode."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import ROOT, RunningServer, settings_for, start_server
from sqlglot import exp, parse_one

from meshgov.api.trino import PortIndex, TrinoAuthorizer, TrinoConfig, TrinoRequest, trino_type
from meshgov.core.manifest import LogicalType
from meshgov.core.principal import Principal
from meshgov.core.sql.model import AccessDecision, Mask, PortColumn, PortRef

BASE = "/v1/data/meshgov/trino"
PLUGIN = json.loads((ROOT / "tests/fixtures/trino/plugin_requests.json").read_text("utf-8"))


def body(user: str, action: dict[str, Any]) -> dict[str, Any]:
    context = copy.deepcopy(PLUGIN["context"])
    context["identity"]["user"] = user
    return {"input": {"context": context, "action": copy.deepcopy(action)}}


def ask(client: Any, rule: str, user: str, action: dict[str, Any]) -> Any:
    response = client.post(f"{BASE}/{rule}", json=body(user, action))
    assert response.status_code == 200, response.text
    return response.json()["result"]


@pytest.fixture
def trino(server: RunningServer) -> Iterator[Any]:
    with server.client("trino") as client:
        yield client


def readable_ports(server: RunningServer, user: str) -> dict[tuple[str, ...], AccessDecision]:
    """What the gateway lets ``user`` read: the answers below must agree with it."""
    service = server.service
    state = service.state
    principal = service_principal(server, user)
    decisions = {
        port.table: service.access_decision(state, principal, "analytics", port)
        for port in service.ports(state)
    }
    return {table: d for table, d in decisions.items() if d.allow}


def service_principal(server: RunningServer, user: str) -> Principal:
    from meshgov.api.security import TokenRegistry

    tokens_file = server.settings.tokens_file
    assert tokens_file is not None
    return TokenRegistry.from_file(tokens_file).by_id()[user]


def test_null_optional_context_fields_are_absent_ones(trino: Any) -> None:
    request = TrinoRequest.parse(body("analyst-eu", PLUGIN["FilterTables"]))
    assert request.problem is None
    assert request.groups == ()
    malformed = body("analyst-eu", PLUGIN["FilterTables"])
    malformed["input"]["context"]["identity"]["user"] = None  # required: still malformed
    assert TrinoRequest.parse(malformed).problem == (
        "input.context.identity.user: must be a non-empty string, got null"
    )
    nulls = body("analyst-eu", {"operation": "ExecuteQuery", "resource": None})
    nulls["input"]["context"].update(softwareStack=None, properties=None)
    nulls["input"]["context"]["identity"]["groups"] = None
    assert trino.post(f"{BASE}/allow", json=nulls).json() == {"result": True}


def test_metadata_tables_are_readable_by_everyone(trino: Any) -> None:
    for action in PLUGIN["SelectFromMetadata"]:
        for user in ("analyst-eu", "nobody"):
            assert ask(trino, "allow", user, action) is True, (user, action)
    runtime = {
        "operation": "SelectFromColumns",
        "resource": {
            "table": {
                "catalogName": "system",
                "schemaName": "runtime",
                "tableName": "queries",
                "columns": ["query"],
            }
        },
    }
    assert ask(trino, "allow", "analyst-eu", runtime) is False
    columns = {
        "operation": "FilterColumns",
        "filterResources": [PLUGIN["SelectFromMetadata"][0]["resource"]],
    }
    assert ask(trino, "batch", "nobody", columns) == [0, 1, 2, 3]


def test_filter_catalogs_and_schemas_show_what_the_gateway_allows(
    server: RunningServer, trino: Any
) -> None:
    assert ask(trino, "batch", "analyst-eu", PLUGIN["FilterCatalogs"]) == [0, 1]
    assert ask(trino, "batch", "nobody", PLUGIN["FilterCatalogs"]) == [1]
    schemas = PLUGIN["FilterSchemas"]["filterResources"]
    for user in ("analyst-eu", "nobody"):
        readable = {table[0] for table in readable_ports(server, user)}
        expected = [
            i
            for i, r in enumerate(schemas)
            if (r["schema"]["catalogName"], r["schema"]["schemaName"])
            in {("lake", "information_schema"), ("system", "jdbc")}
            or (r["schema"]["catalogName"] == "lake" and r["schema"]["schemaName"] in readable)
        ]
        assert ask(trino, "batch", user, PLUGIN["FilterSchemas"]) == expected, user
    assert ask(trino, "batch", "nobody", PLUGIN["FilterSchemas"]) == [0, 4]


def test_filter_tables_and_columns_hide_what_the_gateway_hides(
    server: RunningServer, trino: Any
) -> None:
    # Metadata tables (0, 4, 5), readable products; never another catalog, system.runtime or
    # an undeclared table.
    assert ask(trino, "batch", "analyst-eu", PLUGIN["FilterTables"]) == [0, 1, 2, 4, 5]
    assert ask(trino, "batch", "nobody", PLUGIN["FilterTables"]) == [0, 4, 5]
    decision = readable_ports(server, "analyst-eu")[("marketing", "customer_360")]
    assert decision.hidden_columns  # the example mesh hides one from analysts
    hidden = sorted(decision.hidden_columns)[0]
    table = {
        "catalogName": "lake",
        "schemaName": "marketing",
        "tableName": "customer_360",
        "columns": ["customer_id", hidden, "ssn"],
    }
    columns = {"operation": "FilterColumns", "filterResources": [{"table": table}]}
    assert ask(trino, "batch", "analyst-eu", columns) == [0]
    select = {"operation": "SelectFromColumns", "resource": {"table": dict(table)}}
    for names, allowed in ((["customer_id"], True), ([hidden], False), (["ssn"], False)):
        select["resource"]["table"]["columns"] = names
        assert ask(trino, "allow", "analyst-eu", select) is allowed, names


def test_only_the_configured_catalogs_hold_products(trino: Any) -> None:
    elsewhere = {
        "operation": "SelectFromColumns",
        "resource": {
            "table": {
                "catalogName": "anycatalog",
                "schemaName": "customer",
                "tableName": "customers",
                "columns": ["region"],
            }
        },
    }
    assert ask(trino, "allow", "analyst-eu", elsewhere) is False
    filters = {"operation": "GetRowFilters", "resource": elsewhere["resource"]}
    assert ask(trino, "row_filters", "analyst-eu", filters) == [{"expression": "FALSE"}]
    catalog = {"operation": "AccessCatalog", "resource": {"catalog": {"name": "anycatalog"}}}
    assert ask(trino, "allow", "analyst-eu", catalog) is False
    index = PortIndex([PORT], TrinoConfig(catalogs=frozenset({"hive", "iceberg"})))
    assert index.resolve({"catalogName": "iceberg", "schemaName": "hr", "tableName": "people"})
    assert not index.resolve({"catalogName": "lake", "schemaName": "hr", "tableName": "people"})


def test_session_properties_follow_the_allow_list(trino: Any) -> None:
    assert ask(trino, "allow", "analyst-eu", PLUGIN["SetSystemSessionProperty"]) is True
    other = copy.deepcopy(PLUGIN["SetSystemSessionProperty"])
    other["resource"]["systemSessionProperty"]["name"] = "some_unlisted_property"
    assert ask(trino, "allow", "analyst-eu", other) is False
    assert ask(trino, "allow", "analyst-eu", PLUGIN["SetCatalogSessionProperty"]) is False
    config = TrinoConfig(session_properties=("lake.*", "query_*"))
    authorizer = TrinoAuthorizer(PortIndex([PORT], config), lambda _: ALLOW, Principal(id="u"))
    catalog = TrinoRequest.parse(body("u", PLUGIN["SetCatalogSessionProperty"]))
    assert authorizer.allow(catalog)
    assert not authorizer.allow(TrinoRequest.parse(body("u", other)))


def test_own_queries_only(trino: Any) -> None:
    action = copy.deepcopy(PLUGIN["FilterViewQueryOwnedBy"])
    action["filterResources"][0]["user"]["user"] = "analyst-eu"
    assert ask(trino, "batch", "analyst-eu", action) == [0]


def test_a_filter_tables_batch_over_one_mebibyte(trino: Any) -> None:
    tables = [
        {
            "table": {
                "catalogName": "lake",
                "schemaName": f"warehouse_schema_{i // 100:03d}",
                "tableName": f"fact_table_number_{i:05d}",
            }
        }
        for i in range(10_000)
    ]
    tables[1234] = {
        "table": {"catalogName": "lake", "schemaName": "customer", "tableName": "customers"}
    }
    action = {"operation": "FilterTables", "filterResources": tables}
    assert len(json.dumps(body("analyst-eu", action))) > 1_048_576
    assert ask(trino, "batch", "analyst-eu", action) == [1234]


# --- masks typed exactly as Trino's column ---------------------------------------------------

PORT = PortRef(
    product="hr/people",
    port="people",
    version="1.0.0",
    table=("hr", "people"),
    columns=(
        PortColumn("id", LogicalType.string),
        PortColumn("born", LogicalType.date),
        PortColumn("seen", LogicalType.timestamp),
        PortColumn("score", LogicalType.integer),
        PortColumn("note", LogicalType.string, "concat('*', {col})"),
    ),
)
ALLOW = AccessDecision(allow=True)
TYPES = [
    "integer",
    "bigint",
    "decimal(12,2)",
    "double",
    "real",
    "boolean",
    "date",
    "timestamp(3)",
    "timestamp(6) with time zone",
    "varchar",
    "varchar(5)",
    "varchar(64)",
    "char(10)",
    "char(70)",
    "array(varchar)",
    "row(a integer, b varchar(3))",
]
COLUMN_OF_KIND = {"hash": "id", "partial": "id", "redact": "id", "null": "id", "year": "born"}


def mask_sql(kind: str, column_type: str, name: str | None = None) -> str | None:
    column = name or COLUMN_OF_KIND.get(kind, "note")
    decision = AccessDecision(allow=True, masks={column: Mask(kind)})
    authorizer = TrinoAuthorizer(PortIndex([PORT]), lambda _: decision, Principal(id="u"))
    answer = authorizer.column_mask(
        {
            "catalogName": "lake",
            "schemaName": "hr",
            "tableName": "people",
            "columnName": column,
            "columnType": column_type,
        }
    )
    return answer["expression"] if answer else None


@pytest.mark.parametrize("column_type", TYPES)
@pytest.mark.parametrize("kind", ["hash", "redact", "partial", "null", "year", "expr"])
def test_every_mask_has_exactly_the_columns_type(kind: str, column_type: str) -> None:
    sql = mask_sql(kind, column_type)
    assert sql is not None
    parsed = parse_one(sql, dialect="trino")
    expected = trino_type(column_type)
    if isinstance(parsed, exp.Cast):
        assert parsed.to == expected, sql
    else:
        # Only functions that already return an unbounded varchar are left uncast.
        assert column_type == "varchar" and kind in {"hash", "partial"}, sql


def test_a_hash_is_never_truncated() -> None:
    assert mask_sql("hash", "varchar(5)") == "CAST(NULL AS VARCHAR(5))"
    assert mask_sql("hash", "char(10)") == "CAST(NULL AS CHAR(10))"
    assert mask_sql("hash", "varchar(64)") == 'CAST(MESHGOV_HASH("id") AS VARCHAR(64))'
    assert mask_sql("hash", "varchar") == 'MESHGOV_HASH("id")'
    assert mask_sql("hash", "bigint", "score") == "CAST(NULL AS BIGINT)"
    assert mask_sql("redact", "integer", "score") == "CAST(NULL AS INTEGER)"
    assert mask_sql("redact", "decimal(12,2)", "score") == "CAST(NULL AS DECIMAL(12, 2))"
    assert mask_sql("year", "timestamp(6) with time zone", "seen") == (
        "CAST(DATE_TRUNC('YEAR', \"seen\") AS TIMESTAMP(6) WITH TIME ZONE)"
    )
    assert mask_sql("null", "not a type(") == "NULL"


# --- tokenless mode is narrow ----------------------------------------------------------------


def test_tokenless_mode_answers_only_trino(tmp_path: Path) -> None:
    handle = start_server(settings_for(tmp_path, data_api_anonymous=True))
    filters = {
        "operation": "GetRowFilters",
        "resource": {
            "table": {"catalogName": "lake", "schemaName": "customer", "tableName": "customers"}
        },
    }
    try:
        with handle.running.client() as anonymous:
            trino_answer = anonymous.post(f"{BASE}/row_filters", json=body("analyst-eu", filters))
            closed = [
                anonymous.get("/v1/data/catalog"),
                anonymous.get("/v1/data"),
                anonymous.post("/v1/data/meshgov/access/decision", json={"input": {}}),
                anonymous.get(f"{BASE}/allow"),
                anonymous.get("/v1/policies"),
                anonymous.get("/v1/products"),
            ]
        with handle.running.client("analyst-us") as other:
            with_token = other.post(f"{BASE}/row_filters", json=body("analyst-eu", filters))
    finally:
        handle.stop()
    assert trino_answer.json() == {"result": [{"expression": "\"region\" = 'EU'"}]}
    assert [r.status_code for r in closed] == [401] * len(closed)
    # A valid token outside query-engines never gets less than no token.
    assert with_token.status_code == 200
    assert with_token.json() == trino_answer.json()


def test_with_tokens_a_principal_asks_only_about_itself(server: RunningServer) -> None:
    filters = {
        "operation": "GetRowFilters",
        "resource": {
            "table": {"catalogName": "lake", "schemaName": "customer", "tableName": "customers"}
        },
    }
    with server.client("analyst-us") as client:
        other = client.post(f"{BASE}/row_filters", json=body("analyst-eu", filters))
        itself = client.post(f"{BASE}/row_filters", json=body("analyst-us", filters))
    with server.client() as anonymous:
        tokenless = anonymous.post(f"{BASE}/row_filters", json=body("analyst-eu", filters))
    assert other.status_code == 403
    assert itself.json() == {"result": [{"expression": "\"region\" = 'US'"}]}
    assert tokenless.status_code == 401
