"""The analyst's day: what may I see, for which purpose, and a typo gets a useful answer
(issue 12, points 9-12)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from api_server import ROOT, RunningServer, settings_for, start_server

MESH = ROOT / "examples" / "mesh"
MESHGOV = [str(Path(sys.executable).parent / "meshgov")]


def test_what_may_i_see_is_what_the_gateway_enforces(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        listed = client.get("/v1/access", params={"purpose": "analytics"})
        assert listed.status_code == 200, listed.text
        overview = listed.json()
        ports = {(p["product"], p["port"]): p for p in overview["ports"]}
        customers = ports[("customer/customers", "customers")]
        # Every listed port answers a query exactly as listed: masks, hidden columns, rows.
        for port in overview["ports"]:
            decided = client.post(
                "/v1/query/authorize",
                json={"sql": f"SELECT * FROM {port['table']}", "purpose": "analytics"},
            ).json()
            assert decided["allowed"], decided
            [table] = decided["decision"]["tables"]
            masks = {c["name"]: c["mask"] for c in port["columns"] if c["mask"]}
            assert masks == {name: m["kind"] for name, m in table["masks"].items()}
            # The query's answer names them (to whom asked); the listing, like the console,
            # does not name a column hidden from the caller (meshgov.visibility).
            assert port["hidden_columns"] == []
            assert not {c["name"] for c in port["columns"]} & set(table["hidden_columns"])
            assert port["row_filter"] == table["row_filter_sql"]
        rows = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT region, email FROM customer.customers",
                "purpose": "analytics",
                "format": "json",
            },
        ).json()
    assert overview["principal"] == "analyst-eu"
    assert customers["row_filter"] == "\"region\" = 'EU'"
    assert {c["name"]: c["mask"] for c in customers["columns"]}["email"] == "hash"
    assert ports[("marketing/customer_360", "customer_360")]["hidden_columns"] == []
    assert "failed_payment_count" not in listed.text
    assert "failed_payment_count" not in {
        c["name"] for c in ports[("marketing/customer_360", "customer_360")]["columns"]
    }
    assert {r["region"] for r in rows["rows"]} == {"EU"}
    assert "analytics" in overview["purposes"]
    with server.client("nobody") as client:
        empty = client.get("/v1/access", params={"purpose": "analytics"}).json()
    assert empty["ports"] == [] and empty["denied"] == len(overview["ports"]) + overview["denied"]


def test_meshgov_access_lists_the_same(server: RunningServer) -> None:
    done = subprocess.run(
        [
            *MESHGOV,
            "access",
            "--principal",
            str(MESH / "principals" / "analyst-eu.yaml"),
            "--catalog",
            str(MESH),
            "--policies",
            str(ROOT / "policies"),
            "--purpose",
            "analytics",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    with server.client("analyst-eu") as client:
        http = client.get("/v1/access", params={"purpose": "analytics"}).json()

    # The same ports, columns, masks and row filters; the CLI (local files) names hidden columns,
    # the HTTP answer does not (hidden from the caller, as in the console).
    def unnamed(ports: list[dict[str, object]]) -> list[dict[str, object]]:
        return [
            {k: v for k, v in p.items() if k not in ("hidden_columns", "reasons")} for p in ports
        ]

    assert unnamed(cli["ports"]) == unnamed(http["ports"])
    assert [p["hidden_columns"] for p in http["ports"]] == [[] for _ in cli["ports"]]
    assert ["failed_payment_count"] in [p["hidden_columns"] for p in cli["ports"]]
    table = subprocess.run(
        [*MESHGOV, "access", "--principal", str(MESH / "principals" / "analyst-eu.yaml"),
         "--catalog", str(MESH), "--policies", str(ROOT / "policies")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "purposes with a grant for analyst-eu: analytics" in table.stdout
    assert "no purpose given" in table.stdout


def test_a_denial_names_the_purposes_a_grant_exists_for(server: RunningServer) -> None:
    sql = "SELECT order_id FROM commerce.orders"
    with server.client("analyst-eu") as client:
        no_purpose = client.post("/v1/query/authorize", json={"sql": sql}).json()
        unknown = client.post("/v1/query/authorize", json={"sql": sql, "purpose": "fun"}).json()
    assert not no_purpose["allowed"]
    assert "a grant exists for purpose analytics" in no_purpose["decision"]["reason"]
    assert not unknown["allowed"]
    reason = unknown["decision"]["reason"]
    assert "'fun' is not registered" in reason
    assert "registered: analytics, customer_support" in reason


@pytest.fixture
def default_purpose_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server whose tokens give analyst-eu the default purpose `analytics`."""
    tokens = yaml.safe_load((ROOT / "examples" / "tokens.yaml").read_text(encoding="utf-8"))
    digest = hashlib.sha256(b"dev-analyst-eu").hexdigest()
    for entry in tokens["tokens"]:
        if entry["sha256"] == digest:
            entry["principal"]["purpose"] = "analytics"
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump(tokens), encoding="utf-8")
    handle = start_server(settings_for(tmp_path, tokens_file=path))
    try:
        yield handle.running
    finally:
        handle.stop()


def test_a_principal_has_a_default_purpose(default_purpose_server: RunningServer) -> None:
    with default_purpose_server.client("analyst-eu") as client:
        decided = client.post(
            "/v1/query/authorize", json={"sql": "SELECT order_id FROM commerce.orders"}
        ).json()
        listed = client.get("/v1/access").json()
    assert decided["allowed"], decided
    assert listed["purpose"] == "analytics"
    assert listed["ports"]


def test_unknown_names_suggest_only_visible_ones(server: RunningServer) -> None:
    def reason(who: str, sql: str) -> str:
        with server.client(who) as client:
            body = client.post(
                "/v1/query/authorize", json={"sql": sql, "purpose": "analytics"}
            ).json()
        assert not body["allowed"]
        return str(body["decision"]["reason"])

    assert "did you mean 'customer.customers'?" in reason("analyst-eu", "SELECT 1 FROM customers")
    assert "did you mean 'email'?" in reason("analyst-eu", "SELECT emial FROM customer.customers")
    # Hidden from this analyst: never suggested.
    hidden = reason("analyst-eu", "SELECT failed_payment_cnt FROM marketing.customer_360")
    assert "failed_payment_count" not in hidden and "did you mean" not in hidden
    # No grant at all: no table is suggested.
    assert "did you mean" not in reason("nobody", "SELECT 1 FROM customers")


def test_meshgov_query_warns_about_the_development_hash_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MESHGOV_HASH_KEY"}
    args = [
        *MESHGOV, "query", "SELECT email FROM customer.customers LIMIT 1",
        "--catalog", str(MESH), "--principal", str(MESH / "principals" / "analyst-eu.yaml"),
        "--purpose", "analytics", "--policies", str(ROOT / "policies"), "--format", "json",
    ]  # fmt: skip
    public = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    keyed = subprocess.run(
        args, capture_output=True, text=True, env={**env, "MESHGOV_HASH_KEY": "s3cret"},
        cwd=tmp_path,
    )  # fmt: skip
    assert public.returncode == 0, public.stderr
    assert "public development key" in " ".join(public.stderr.split())
    assert keyed.returncode == 0, keyed.stderr
    assert "development key" not in keyed.stderr
    assert json.loads(public.stdout) != json.loads(keyed.stdout)
