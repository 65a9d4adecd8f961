"""POST /v1/query/execute with JSON: strict JSON, out-of-range dates as the CLI writes them."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from api_server import RunningServer

ODD = (
    "SELECT CAST('infinity' AS DATE) AS d_inf, DATE '20000-01-01' AS d_big, "
    "TIMESTAMP '20000-01-01 10:00:00' AS t_big, 1/0 AS pos, -1/0 AS neg, 0/0 AS n"
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def test_execute_json_is_strict_and_renders_out_of_range_dates(server: RunningServer) -> None:
    with server.client("nobody") as client:
        by_field = client.post("/v1/query/execute", json={"sql": ODD, "format": "json"})
        by_accept = client.post(
            "/v1/query/execute", json={"sql": ODD}, headers={"Accept": "application/json"}
        )
        as_arrow = client.post("/v1/query/execute", json={"sql": ODD})
    for response in (by_field, by_accept):
        assert response.status_code == 200, response.text
        body = json.loads(response.text, parse_constant=_reject_constant)
        assert body["rows"] == [
            {
                "d_inf": "infinity",
                "d_big": "20000-01-01",
                "t_big": "20000-01-01 10:00:00",
                "pos": "Infinity",
                "neg": "-Infinity",
                "n": "NaN",
            }
        ]
    assert as_arrow.status_code == 200
    table = pa.ipc.open_stream(as_arrow.content).read_all()
    assert table.column("d_inf").type == pa.date32()
    assert table.column("d_inf").cast(pa.int32()).to_pylist() == [2**31 - 1]


def test_execute_json_on_a_product_past_year_9999(server: RunningServer) -> None:
    sql = "SELECT birth_date + INTERVAL 3000000 DAY AS d FROM customer.customers LIMIT 1"
    with server.client("analyst-eu") as client:
        response = client.post(
            "/v1/query/execute", json={"sql": sql, "purpose": "analytics", "format": "json"}
        )
    assert response.status_code == 200, response.text
    (row,) = json.loads(response.text, parse_constant=_reject_constant)["rows"]
    assert int(row["d"].split("-")[0]) > 9999
