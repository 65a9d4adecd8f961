"""The gateway facade over the example mesh: decisions, authorization, caching, faults, CLI."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.catalog import load_catalog
from meshgov.cli import app
from meshgov.core.policy import PolicyBundle
from meshgov.core.principal import Principal, parse_principal
from meshgov.gateway import Gateway, load_gateway
from meshgov.policy_backends import load_bundle_dir

ROOT = Path(__file__).resolve().parents[1]
MESH = ROOT / "examples" / "mesh"
PRINCIPALS = MESH / "principals"
ISSUE_QUERY = (
    "SELECT c.email, sum(o.amount) FROM customer.customers c "
    "JOIN commerce.orders o USING (customer_id) GROUP BY 1"
)


def _principal(name: str) -> Principal:
    path = PRINCIPALS / f"{name}.yaml"
    return parse_principal(path.read_text(encoding="utf-8"), str(path))


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    return load_gateway(str(MESH), str(ROOT / "policies"))


def test_issue_query_is_rewritten_with_hash_and_eu_filter(gateway: Gateway) -> None:
    result = gateway.authorize(ISSUE_QUERY, _principal("analyst-eu"), "analytics", "duckdb")
    assert result.allowed, result.reason
    assert result.sql is not None
    assert "MESHGOV_HASH" in result.sql
    assert "\"region\" = 'EU'" in result.sql
    tables = {t.table: t for t in result.tables}
    assert set(tables) == {"customer.customers", "commerce.orders"}
    customers = tables["customer.customers"]
    assert customers.product == "customer/customers"
    assert customers.revision == gateway.policy.revision
    assert customers.masks["email"].kind == "hash"
    assert customers.row_filters == ("region = {principal.region}",)
    assert customers.row_filter_sql == "\"region\" = 'EU'"
    assert any("grant to groups [analysts]" in r for r in customers.reasons)


def test_issue_query_runs_on_duckdb_with_hashed_emails(gateway: Gateway) -> None:
    from meshgov.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine.from_catalog(gateway.catalog, b"gateway-test-key")
    try:
        result = gateway.authorize(ISSUE_QUERY, _principal("analyst-eu"), "analytics", "duckdb")
        assert result.sql is not None
        rows = engine.execute(result.sql).to_pylist()
        assert rows
        emails = [next(iter(row.values())) for row in rows]
        assert all(e is None or re.fullmatch(r"[0-9a-f]{64}", e) for e in emails)
        regions = gateway.authorize(
            "SELECT DISTINCT region FROM customer.customers",
            _principal("analyst-eu"),
            "analytics",
            "duckdb",
        )
        assert regions.sql is not None
        assert {r["region"] for r in engine.execute(regions.sql).to_pylist()} == {"EU"}
    finally:
        engine.close()


def test_principal_without_grants_is_denied(gateway: Gateway) -> None:
    result = gateway.authorize(ISSUE_QUERY, _principal("nobody"), "analytics")
    assert not result.allowed
    assert result.sql is None
    assert "customer.customers" in (result.reason or "")
    assert "deny by default" in (result.reason or "")


def test_pii_cleared_investigator_sees_raw_columns(gateway: Gateway) -> None:
    decision = gateway.decide(
        _principal("fraud-investigator"), "fraud_detection", "customer/customers", "customers"
    )
    assert decision.allow
    assert not decision.masks
    assert not decision.hidden_columns


def test_owner_sees_own_product_unmasked(gateway: Gateway) -> None:
    decision = gateway.decide(
        _principal("owner-customer"), "operations", "customer/customers", "customers"
    )
    assert decision.allow
    assert not decision.masks
    assert not decision.row_filters


def test_decisions_and_rewrites_are_cached(gateway: Gateway) -> None:
    analyst = _principal("analyst-us")
    first = gateway.decide(analyst, "analytics", "commerce/orders", "orders")
    second = gateway.decide(analyst, "analytics", "commerce/orders", "orders")
    assert first is second
    sql = "SELECT count(*) FROM commerce.orders"
    cached = gateway.authorize(sql, analyst, "analytics")
    assert gateway.authorize(sql, analyst, "analytics") is cached
    other_purpose = gateway.authorize(sql, analyst, "marketing")
    assert not other_purpose.allowed
    stats = gateway.cache_stats()
    assert stats["decision_hits"] >= 1
    assert stats["rewrite_hits"] >= 1


def test_cache_distinguishes_principals(gateway: Gateway) -> None:
    sql = "SELECT region FROM commerce.orders"
    eu = gateway.authorize(sql, _principal("analyst-eu"), "analytics")
    us = gateway.authorize(sql, _principal("analyst-us"), "analytics")
    assert eu.sql is not None
    assert us.sql is not None
    assert "'EU'" in eu.sql
    assert "'US'" in us.sql


def test_concurrent_authorizations_agree(gateway: Gateway) -> None:
    names = ["analyst-eu", "analyst-us", "nobody", "fraud-investigator"]
    purposes = {"fraud-investigator": "fraud_detection"}
    expected = {
        n: gateway.authorize(ISSUE_QUERY + " ", _principal(n), purposes.get(n, "analytics"))
        for n in names
    }
    errors: list[str] = []

    def work(index: int) -> None:
        for round_ in range(20):
            name = names[(index + round_) % len(names)]
            purpose = purposes.get(name, "analytics")
            got = gateway.authorize(f"{ISSUE_QUERY} LIMIT {round_ + 1}", _principal(name), purpose)
            if got.allowed != expected[name].allowed:
                errors.append(f"{name}: {got.reason}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def _gateway_with_access_policy(rego: str) -> Gateway:
    real = load_bundle_dir(ROOT / "policies")
    bundle = PolicyBundle.create({"meshgov/access/access.rego": rego}, real.data)
    return Gateway(load_catalog(MESH), bundle)


def test_malformed_policy_answer_denies() -> None:
    broken = _gateway_with_access_policy(
        'package meshgov.access\nimport rego.v1\ndecision := {"allow": true}\n'
    )
    result = broken.authorize("SELECT * FROM commerce.orders", _principal("analyst-eu"))
    assert not result.allowed
    assert "malformed access decision" in (result.reason or "")


def test_policy_runtime_error_denies() -> None:
    broken = _gateway_with_access_policy(
        "package meshgov.access\nimport rego.v1\n"
        'decision := {"allow": true, "reasons": [], "row_filters": [], "masks": {}, '
        '"hidden_columns": []} if { to_number(input.principal.id) > 0 }\n'
    )
    result = broken.authorize("SELECT * FROM commerce.orders", _principal("analyst-eu"))
    assert not result.allowed
    assert result.sql is None


def test_undefined_policy_denies() -> None:
    broken = _gateway_with_access_policy("package meshgov.access\nimport rego.v1\nother := 1\n")
    result = broken.authorize("SELECT * FROM commerce.orders", _principal("analyst-eu"))
    assert not result.allowed
    assert "deny by default" in (result.reason or "")


# --- meshgov rewrite ------------------------------------------------------------------------------


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(app, ["rewrite", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def _cli(principal: str, sql: str, *extra: str) -> tuple[int, str, str]:
    return _run(
        "--catalog",
        str(MESH),
        "--principal",
        str(PRINCIPALS / f"{principal}.yaml"),
        "--policies",
        str(ROOT / "policies"),
        *extra,
        sql,
    )


def test_cli_rewrite_prints_sql_and_decision() -> None:
    code, out, _ = _cli("analyst-eu", ISSUE_QUERY, "--purpose", "analytics", "--to", "postgres")
    assert code == 0
    document = json.loads(out)
    assert set(document) == {"allowed", "sql", "decision"}
    assert document["allowed"] is True
    assert "MESHGOV_HASH" in document["sql"]
    products = {t["product"] for t in document["decision"]["tables"]}
    assert products == {"customer/customers", "commerce/orders"}


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DROP TABLE customer.customers", "DROP statement"),
        ("SELECT * FROM read_parquet('x.parquet')", "READ_PARQUET"),
        ("SELECT * FROM information_schema.tables", "information_schema.tables"),
        ("SELECT * FROM customer.nope", "unknown table 'customer.nope'"),
    ],
)
def test_cli_rewrite_denial_exits_3_and_names_what(sql: str, fragment: str) -> None:
    code, out, err = _cli("analyst-eu", sql, "--purpose", "analytics")
    assert code == 3
    assert json.loads(out)["allowed"] is False
    assert fragment in err


def test_cli_rewrite_reads_sql_from_stdin() -> None:
    code, out, _ = _run(
        "--catalog",
        str(MESH),
        "--principal",
        str(PRINCIPALS / "analyst-eu.yaml"),
        "--policies",
        str(ROOT / "policies"),
        "--purpose",
        "analytics",
        "-",
        stdin="SELECT count(*) FROM commerce.orders",
    )
    assert code == 0
    assert "'EU'" in json.loads(out)["sql"]


def test_cli_rewrite_invalid_sql_exits_2() -> None:
    code, _, err = _cli("analyst-eu", "SELECT FROM WHERE (", "--purpose", "analytics")
    assert code == 2
    assert "cannot parse" in err


def test_cli_rewrite_bad_principal_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("id: x\ngroups: [a]\ncolour: blue\n", encoding="utf-8")
    code, _, err = _run(
        "--catalog", str(MESH), "--principal", str(bad), "--policies", str(ROOT / "policies"), "X"
    )
    assert code == 2
    assert "unknown key 'colour'" in err
    assert "p.yaml:3" in err


def test_access_view_is_a_projection_of_the_products() -> None:
    from meshgov.access_data import indexed_view
    from meshgov.gateway import catalog_policy_data

    catalog = load_catalog(str(MESH))
    products = {pid: m.policy_document() for pid, m in catalog.manifests.items()}
    data = catalog_policy_data(products)["catalog"]
    assert data["products"] == products
    view = indexed_view(data["access"], "customer/customers")
    assert view["domain"] == "customer"
    port = products["customer/customers"]["spec"]["outputPorts"][0]
    narrowable = {
        c["name"] for c in port["columns"] if c["pii"] or c["classification"] == "restricted"
    }
    assert set(view["ports"][port["name"]]["columns"]) == narrowable
    for kind, index in view["grantsTo"].items():
        for target, positions in index.items():
            assert all(target in view["grants"][i]["to"][kind] for i in positions)
    assert {pid: indexed_view(data["access"], pid)["id"] for pid in products} == {
        pid: pid for pid in products
    }
    assert indexed_view(data["access"], "customer/nope") is None


def test_access_changes_are_named_by_what_they_do_to_the_reader() -> None:
    from meshgov.core.sql.model import AccessDecision, Mask
    from meshgov.gateway import _change_kind

    masked = AccessDecision(True, masks={"email": Mask("hash")})
    clear = AccessDecision(True)
    hidden = AccessDecision(True, hidden_columns=frozenset({"email"}))
    filtered = AccessDecision(True, row_filters=("region = 'EU'",))
    denied = AccessDecision.deny("no grant")
    assert _change_kind(denied, clear) == "opened"
    assert _change_kind(clear, denied) == "closed"
    assert _change_kind(clear, masked) == "narrowed"
    assert _change_kind(masked, hidden) == "narrowed"
    assert _change_kind(masked, clear) == "widened"
    assert _change_kind(hidden, masked) == "widened"
    assert _change_kind(masked, AccessDecision(True, masks={"email": Mask("redact")})) == "changed"
    assert _change_kind(clear, filtered) == "changed"


def test_access_source_is_the_policy_document_as_the_access_view_reads_it() -> None:
    from meshgov.catalog import load_catalog
    from meshgov.gateway import _access_view, access_source

    catalog = load_catalog(ROOT / "examples" / "mesh")
    for manifest in catalog.manifests.values():
        assert _access_view(access_source(manifest)) == _access_view(manifest.policy_document())


def test_the_decision_plan_holds_product_documents_only_when_a_rule_reads_them() -> None:
    from meshgov.catalog import load_catalog
    from meshgov.gateway import gateway_policy_data

    catalog = load_catalog(ROOT / "examples" / "mesh")
    bundle = load_bundle_dir(ROOT / "policies")
    assert set(gateway_policy_data(bundle, catalog)["catalog"]) == {"access"}
    reader = (
        "package meshgov.access.extra\n\nimport rego.v1\n\n"
        "owners := {p.metadata.owner | some p in data.catalog.products}\n"
    )
    modules = dict(bundle.modules)
    modules["meshgov/access/access.rego"] += "\nowners := data.meshgov.access.extra.owners\n"
    modules["meshgov/access/extra/extra.rego"] = reader
    reading = PolicyBundle.create(modules, bundle.data)
    data = gateway_policy_data(reading, catalog)["catalog"]
    assert set(data) == {"access", "products"}
    assert set(data["products"]) == set(catalog.manifests)
