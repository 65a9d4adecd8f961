"""Red-team probes of the HTTP faces: malformed input is a 4xx naming the problem, never a 500."""

from __future__ import annotations

import pytest
from api_server import RunningServer

# Deep enough to exhaust Python's recursion limit in json.loads, small enough for every limit.
DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize("path", ["/v1/data", "/v1/data/meshgov", "/v1/data/meshgov/trino/allow"])
def test_deeply_nested_data_api_body_is_400(server: RunningServer, path: str) -> None:
    with server.client("trino") as client:
        response = client.post(
            path, content=f'{{"input": {DEEP}}}', headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "malformed JSON body"


def test_deeply_nested_data_api_input_parameter_is_400(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        response = client.get("/v1/data/meshgov", params={"input": DEEP})
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["message"]


def test_deeply_nested_json_manifest_is_400(server: RunningServer) -> None:
    with server.client("owner-customer") as client:
        response = client.put(
            "/v1/products/customer/customers",
            content=f'{{"manifest": {DEEP}}}',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "malformed JSON body"
