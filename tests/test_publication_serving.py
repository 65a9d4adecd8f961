"""A publication makes a new catalogue revision that serves the new product version: its
decisions, its secure SQL and its rows (the DuckDB engine of the new revision loads the port
again); the revision is built once, however the refresher races it."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from meshgov.config import Settings
from meshgov.core.principal import Principal
from meshgov.service import Service

ROOT = Path(__file__).resolve().parents[1]
ANALYST = Principal(
    id="analyst-eu", groups=["analysts"], domain="analytics", attributes={"region": "EU"}
)
OWNER = Principal(id="owner-customer", groups=["customer-owners"], domain="customer")
SQL = "SELECT customer_id, email FROM customer.customers ORDER BY customer_id LIMIT 3"


def _service(tmp_path: Path) -> Service:
    mesh = tmp_path / "mesh"
    shutil.copytree(ROOT / "examples" / "mesh", mesh)
    settings = Settings(
        catalog_dir=mesh,
        policies_dir=ROOT / "policies",
        store_url=f"sqlite:///{tmp_path / 'meshgov.db'}",
    )
    service = Service(settings)
    service.start(refresh_seconds=0)
    return service


def _customers_redacting_email(mesh: Path, version: str) -> str:
    """customer/customers with its email redacted instead of hashed."""
    doc = yaml.safe_load((mesh / "customer" / "customers.yaml").read_text(encoding="utf-8"))
    doc["metadata"]["version"] = version
    for column in doc["spec"]["outputPorts"][0]["columns"]:
        if column["name"] == "email":
            assert column["mask"] == "hash"
            column["mask"] = "redact"
    return yaml.safe_dump(doc, sort_keys=False)


def test_a_publication_serves_the_new_product_version(tmp_path: Path) -> None:
    service = _service(tmp_path)
    try:
        before, _, _ = service.execute(ANALYST, SQL, "analytics", None)
        hashed = before.column("email").to_pylist()
        assert hashed and all(len(value) == 64 for value in hashed)
        revision = service.state.catalog.revision
        engine = service.query_engine(service.state)

        text = _customers_redacting_email(tmp_path / "mesh", "2.2.0")
        published = service.publish(OWNER, "customer", "customers", text)
        assert published.published, published.findings

        state = service.state
        assert state.catalog.revision != revision
        assert state.products["customer/customers"].version == "2.2.0"
        assert state.catalog.manifests["customer/customers"].metadata.version == "2.2.0"
        after, authorization, _ = service.execute(ANALYST, SQL, "analytics", None)
        assert after.column("customer_id") == before.column("customer_id")
        redacted = after.column("email").to_pylist()
        assert len(set(redacted)) == 1 and redacted[0] not in hashed  # one constant
        assert authorization.sql is not None and "meshgov_hash" not in authorization.sql
        # A new engine for the new revision, which loaded only the port the query read.
        new_engine = service.query_engine(service.state)
        assert new_engine is not engine
        assert getattr(new_engine, "loaded_tables", None) == {("customer", "customers")}
    finally:
        service.close()


def test_the_refresher_does_not_build_a_publication_twice(tmp_path: Path) -> None:
    service = _service(tmp_path)
    try:
        text = _customers_redacting_email(tmp_path / "mesh", "2.2.0")
        assert service.publish(OWNER, "customer", "customers", text).published
        state = service.state
        assert not service._stale()  # the store's products are the state's
        service.reload_if_stale()
        assert service.state is state  # nothing rebuilt
    finally:
        service.close()
