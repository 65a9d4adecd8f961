"""``GET /v1/products/{domain}/{name}/ports/{port}/export``: the caller's governed export,
streamed, stamped with the logged decision."""

from __future__ import annotations

import hashlib
import io

import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from api_server import RunningServer

from meshgov.store.base import DecisionFilter

PATH = "/v1/products/customer/customers/ports/customers/export"


def test_parquet_export_is_the_callers_view_with_the_decision(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.get(PATH, params={"format": "parquet", "purpose": "analytics"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers.get("transfer-encoding") == "chunked"  # streamed, no length known
    table = pq.read_table(io.BytesIO(response.content))
    assert set(table["region"].to_pylist()) == {"EU"}
    metadata = pq.read_metadata(io.BytesIO(response.content)).metadata
    decision_id = metadata[b"meshgov.decision_id"].decode()
    assert response.headers["x-meshgov-decision-id"] == decision_id
    assert metadata[b"meshgov.product_version"] == b"2.1.0"
    key = server.settings.hash_key()
    with server.client("fraud-investigator") as client:
        clear = client.post(
            "/v1/query/execute",
            json={
                "sql": "SELECT customer_id, email FROM customer.customers",
                "purpose": "fraud_detection",
                "format": "json",
            },
        ).json()["rows"]
    emails = {row["customer_id"]: row["email"] for row in clear}
    for customer_id, hashed in zip(
        table["customer_id"].to_pylist(), table["email"].to_pylist(), strict=True
    ):
        assert hashed == hashlib.sha256(key + emails[customer_id].encode()).hexdigest()
    server.service.flush_decisions()
    logged = server.service.decisions(DecisionFilter(principal="analyst-eu", limit=50))
    assert any(d.id == decision_id and d.kind == "export" and d.allowed for d in logged)


def test_csv_and_arrow_exports(server: RunningServer) -> None:
    with server.client("analyst-us") as client:
        csv = client.get(PATH, params={"format": "csv", "purpose": "analytics"})
        arrow = client.get(PATH, params={"format": "arrow", "purpose": "analytics"})
    assert csv.status_code == arrow.status_code == 200
    from_csv = pa_csv.read_csv(io.BytesIO(csv.content))
    with ipc.open_stream(io.BytesIO(arrow.content)) as reader:
        from_arrow = reader.read_all()
        assert reader.schema.metadata[b"meshgov.principal"] == b"analyst-us"
    assert set(from_csv["region"].to_pylist()) == {"US"}
    assert from_csv["email"].to_pylist() == from_arrow["email"].to_pylist()


def test_denied_export_is_403_and_logged(server: RunningServer) -> None:
    with server.client("nobody") as client:
        response = client.get(PATH, params={"purpose": "analytics"})
    assert response.status_code == 403
    assert "no grant" in response.json()["message"]
    server.service.flush_decisions()
    logged = server.service.decisions(DecisionFilter(principal="nobody", limit=50))
    assert any(d.kind == "export" and not d.allowed for d in logged)


def test_bad_requests(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        assert client.get(PATH, params={"format": "xlsx"}).status_code == 400
        missing = client.get("/v1/products/customer/customers/ports/nope/export")
        assert missing.status_code == 404
        assert "customer/customers has no output port 'nope'" in missing.json()["message"]
        unknown = client.get("/v1/products/customer/nobody/ports/customers/export")
        assert unknown.status_code == 404
        assert "unknown product 'customer/nobody'" in unknown.json()["message"]
        no_snapshot = client.get(
            "/v1/products/commerce/orders/ports/order_events/export",
            params={"purpose": "analytics"},
        )
        assert no_snapshot.status_code == 400
        assert "no snapshot" in no_snapshot.json()["message"]
    with server.client() as anonymous:
        assert anonymous.get(PATH).status_code == 401
