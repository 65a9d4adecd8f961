"""The docker-compose configuration without Docker: settings from MESHGOV_* variables, the
PostgreSQL store and the PostgreSQL query engine (and an OPA server when MESHGOV_OPA_URL is set).

Each run creates its own database and drops it afterwards; without a server the test skips,
unless MESHGOV_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest
from api_server import ROOT, free_port, start_server

from meshgov.config import Settings


@pytest.fixture
def database(pg_admin_dsn: str) -> Iterator[str]:

    from meshgov.engines import postgres

    name = f"meshgov_api_{uuid.uuid4().hex[:10]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    try:
        yield dsn
    finally:
        postgres.drop_database(pg_admin_dsn, name)


@pytest.mark.postgres
def test_compose_configuration_end_to_end(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshgov.catalog import load_catalog
    from meshgov.engines import postgres

    monkeypatch.setenv("MESHGOV_HASH_KEY", "test-mesh-key")
    environment = {
        "MESHGOV_HOST": "127.0.0.1",
        "MESHGOV_PORT": str(free_port()),
        "MESHGOV_CATALOG_DIR": str(ROOT / "examples" / "mesh"),
        "MESHGOV_POLICIES_DIR": os.environ.get("MESHGOV_TEST_POLICIES", str(ROOT / "policies")),
        "MESHGOV_TOKENS_FILE": str(ROOT / "examples" / "tokens.yaml"),
        "MESHGOV_STORE_URL": database,
        "MESHGOV_QUERY_ENGINE": database,
        "MESHGOV_POLICY_ENGINE": "opa+" + os.environ["MESHGOV_OPA_URL"]
        if os.environ.get("MESHGOV_OPA_URL")
        else "embedded",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    # What the compose file's one-shot `load` service does.
    postgres.load(load_catalog(ROOT / "examples" / "mesh"), database, b"test-mesh-key")

    settings = Settings()
    handle = start_server(settings)
    try:
        assert handle.running.service.store.url.startswith("postgresql://")
        with handle.running.client("analyst-eu") as client:
            health = client.get("/health").json()
            response = client.post(
                "/v1/query/execute",
                json={
                    "sql": "SELECT email, region FROM customer.customers",
                    "purpose": "analytics",
                },
            )
        assert health["store"] == "postgresql"
        assert response.status_code == 200, response.text
        table = pa.ipc.open_stream(response.content).read_all()
        assert set(table.column("region").to_pylist()) == {"EU"}
        assert all("@" not in value for value in table.column("email").to_pylist() if value)
    finally:
        handle.stop()

    # Restart on the same database: the seeded products and the decisions are still there.
    handle = start_server(Settings())
    try:
        with handle.running.client("guild") as client:
            products = client.get("/v1/products").json()["products"]
            decisions = client.get(
                "/v1/decisions", params={"principal": "analyst-eu", "kind": "execute"}
            ).json()["decisions"]
    finally:
        handle.stop()
    assert len(products) == 7
    assert decisions
