"""Snapshots of published manifests: confined to the domain's data directory, and one product's
missing snapshot never breaks queries on the others (regressions of two reported defects)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from api_server import ROOT, RunningServer, settings_for, start_server

from meshgov.store.base import ProductVersion

MESH = ROOT / "examples" / "mesh"
PAYMENTS_SNAPSHOT = MESH / "payments" / "data" / "payments.parquet"
CUSTOMERS = MESH / "customer" / "customers.yaml"
YAML = {"Content-Type": "application/yaml"}


def _leak(data: str, name: str = "leak") -> dict[str, Any]:
    """The attack: a customer product over the payments snapshot, granted to every analyst."""
    return {
        "apiVersion": "meshgov/v1",
        "kind": "DataProduct",
        "metadata": {
            "domain": "customer",
            "name": name,
            "version": "1.0.0",
            "owner": "customer-data@acme.example",
            "description": "Not what it claims.",
            "status": "active",
        },
        "spec": {
            "outputPorts": [
                {
                    "name": name,
                    "kind": "table",
                    "table": f"customer.{name}",
                    "retention": "1y",
                    "data": data,
                    "columns": [
                        {"name": "amount", "type": "number", "classification": "internal"},
                        {"name": "card_number", "type": "string", "classification": "internal"},
                        {"name": "region", "type": "string", "classification": "internal"},
                    ],
                }
            ],
            "access": {"grants": [{"to": {"groups": ["analysts"]}, "purposes": ["analytics"]}]},
        },
    }


def _put(server: RunningServer, path: str, doc: dict[str, Any] | str) -> httpx.Response:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    with server.client("owner-customer") as client:
        return client.put(path, content=text, headers=YAML)


def _execute(server: RunningServer, sql: str, who: str = "analyst-us") -> httpx.Response:
    with server.client(who) as client:
        return client.post(
            "/v1/query/execute", json={"sql": sql, "purpose": "analytics", "format": "json"}
        )


def _assert_refused(response: httpx.Response, why: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_manifest"
    assert "spec.outputPorts[0].data" in body["message"]
    assert why in body["message"]
    location = body["errors"][0]["location"]
    assert location["product"] == "customer/leak"
    assert location["port"] == "leak"
    assert isinstance(location["line"], int)
    # Nothing was stored, nothing is served.
    assert str(ROOT) not in body["message"].replace(str(PAYMENTS_SNAPSHOT), "")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (str(PAYMENTS_SNAPSHOT), "is an absolute path"),
        ("../payments/data/payments.parquet", "leaves the data directory of domain 'customer'"),
        ("data/../../payments/data/payments.parquet", "leaves the data directory"),
        ("C:\\mesh\\payments.parquet", "is an absolute path"),
    ],
)
def test_published_data_outside_the_domain_is_refused_and_nothing_leaks(
    own_server: RunningServer, data: str, why: str
) -> None:
    response = _put(own_server, "/v1/products/customer/leak", _leak(data))
    _assert_refused(response, why)
    with own_server.client("owner-customer") as client:
        assert client.get("/v1/products/customer/leak").status_code == 404
    leaked = _execute(own_server, "SELECT card_number, region FROM customer.leak")
    assert leaked.status_code == 403, leaked.text
    assert "card_number" not in leaked.json().get("columns", [])


def test_json_body_is_refused_the_same_way(own_server: RunningServer) -> None:
    text = yaml.safe_dump(_leak(str(PAYMENTS_SNAPSHOT)), sort_keys=False)
    with own_server.client("owner-customer") as client:
        response = client.put("/v1/products/customer/leak", json={"manifest": text})
    _assert_refused(response, "is an absolute path")


def test_symbolic_links_out_of_the_domain_are_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "customer" / "data").mkdir(parents=True)
    (data_dir / "customer" / "data" / "leak.parquet").symlink_to(PAYMENTS_SNAPSHOT)
    (data_dir / "customer" / "payments").symlink_to(PAYMENTS_SNAPSHOT.parent)
    handle = start_server(settings_for(tmp_path, data_dir=data_dir))
    try:
        server = handle.running
        for data in ("data/leak.parquet", "payments/payments.parquet"):
            _assert_refused(
                _put(server, "/v1/products/customer/leak", _leak(data)), "symbolic link"
            )
        # A snapshot really inside the domain's directory is accepted and served.
        (data_dir / "customer" / "data" / "leak.parquet").unlink()
        own = data_dir / "customer" / "data" / "own.csv"
        own.write_text("amount,card_number,region\n1.5,none,US\n2.5,none,EU\n", encoding="utf-8")
        published = _put(server, "/v1/products/customer/leak", _leak("data/own.csv"))
        assert published.status_code == 201, published.text
        rows = _execute(server, "SELECT amount, region FROM customer.leak")
        assert rows.status_code == 200, rows.text
        assert rows.json()["rows"] == [
            {"amount": 1.5, "region": "US"},
            {"amount": 2.5, "region": "EU"},
        ]
    finally:
        handle.stop()


def test_a_published_snapshot_that_is_not_there_is_refused(own_server: RunningServer) -> None:
    response = _put(own_server, "/v1/products/customer/leak", _leak("data/absent.parquet"))
    _assert_refused(response, "the snapshot is not available")
    assert "snapshot file not found" in response.json()["message"]
    # A snapshot without the declared columns is refused too.
    wrong = _put(own_server, "/v1/products/customer/leak", _leak("data/customers.parquet"))
    _assert_refused(wrong, "snapshot has no column 'amount'")


def test_without_a_data_directory_published_snapshots_are_refused(tmp_path: Path) -> None:
    handle = start_server(settings_for(tmp_path, catalog_dir=None))
    try:
        response = _put(handle.running, "/v1/products/customer/leak", _leak("data/x.parquet"))
        _assert_refused(response, "no data directory")
    finally:
        handle.stop()


def test_a_new_version_keeps_every_query_working_across_a_restart(tmp_path: Path) -> None:
    """Defect: publishing customers 2.2.0 (same relative `data:`) broke every query, for good."""
    handle = start_server(settings_for(tmp_path))
    try:
        server = handle.running
        text = CUSTOMERS.read_text(encoding="utf-8").replace("version: 2.1.0", "version: 2.2.0")
        published = _put(server, "/v1/products/customer/customers", text)
        assert published.status_code == 201, published.text
        orders = _execute(server, "SELECT order_id FROM commerce.orders LIMIT 3")
        assert orders.status_code == 200, orders.text
        assert len(orders.json()["rows"]) == 3
        customers = _execute(server, "SELECT count(*) AS n FROM customer.customers")
        assert customers.status_code == 200, customers.text
        assert customers.json()["rows"][0]["n"] > 0
    finally:
        handle.stop()
    again = start_server(settings_for(tmp_path))
    try:
        with again.running.client("owner-customer") as client:
            assert client.get("/v1/products/customer/customers").json()["version"] == "2.2.0"
        after = _execute(again.running, "SELECT count(*) AS n FROM customer.customers")
        assert after.status_code == 200, after.text
        assert after.json()["rows"][0]["n"] == customers.json()["rows"][0]["n"]
    finally:
        again.stop()


def _store_directly(server: RunningServer, doc: dict[str, Any] | str, version: str) -> None:
    """A version stored before the fix (no publish-time checks), as an upgraded store holds."""
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    parsed = yaml.safe_load(text)
    server.service.store.publish(
        ProductVersion(
            parsed["metadata"]["domain"],
            parsed["metadata"]["name"],
            version,
            text,
            "owner-customer",
            time.time(),
        )
    )
    server.service.reload()


def test_stored_versions_with_bad_snapshots_fail_only_their_own_queries(
    own_server: RunningServer,
) -> None:
    # The leak as an older meshgov stored it, and a version whose snapshot is missing.
    _store_directly(own_server, _leak(str(PAYMENTS_SNAPSHOT)), "1.0.0")
    broken = CUSTOMERS.read_text(encoding="utf-8").replace("version: 2.1.0", "version: 2.3.0")
    broken = broken.replace("data/customers.parquet", "data/gone.parquet")
    _store_directly(own_server, broken, "2.3.0")

    orders = _execute(own_server, "SELECT order_id FROM commerce.orders LIMIT 2")
    assert orders.status_code == 200, orders.text
    assert len(orders.json()["rows"]) == 2

    leaked = _execute(own_server, "SELECT card_number, region FROM customer.leak")
    assert leaked.status_code == 503, leaked.text
    body = leaked.json()
    assert body["code"] == "snapshot_unavailable"
    assert "customer/leak:leak cannot be queried" in body["message"]
    assert "absolute path" in body["message"]
    assert "rows" not in body

    missing = _execute(own_server, "SELECT customer_id FROM customer.customers")
    assert missing.status_code == 503, missing.text
    message = missing.json()["message"]
    assert "customer/customers:customers" in message
    assert "snapshot file not found" in message
    assert str(ROOT) not in message  # no server path in what an analyst sees

    # A join touching the broken product fails too; the rest keeps working.
    join = _execute(
        own_server,
        "SELECT count(*) FROM customer.customers c JOIN commerce.orders o USING (customer_id)",
    )
    assert join.status_code == 503
    with own_server.client("owner-customer") as client:
        health = client.get("/health")
    assert health.status_code == 200


@pytest.mark.parametrize("table", ["commerce.orders", "meshgov_internal.hash_key"])
def test_a_table_name_the_service_cannot_serve_is_refused(
    own_server: RunningServer, table: str
) -> None:
    """Another product's table (or a reserved one) would make both unservable: refused."""
    doc = _leak("data/customers.parquet", name="taken")
    doc["spec"]["outputPorts"][0]["table"] = table
    doc["spec"]["outputPorts"][0].pop("data")
    response = _put(own_server, "/v1/products/customer/taken", doc)
    assert response.status_code == 400, response.text
    assert "spec.outputPorts[0].table" in response.json()["message"]
    orders = _execute(own_server, "SELECT order_id FROM commerce.orders LIMIT 1")
    assert orders.status_code == 200, orders.text
