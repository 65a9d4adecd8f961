"""The service's engine: a port that cannot be loaded fails only the queries that read it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from meshgov.catalog import Catalog, DataRoot, load_catalog
from meshgov.engines.base import port_sources
from meshgov.engines.duckdb import DuckDBEngine
from meshgov.errors import ManifestError, SnapshotUnavailable

MESH = Path(__file__).resolve().parents[2] / "examples" / "mesh"
KEY = b"isolation-test-key"


def _catalog(tmp_path: Path) -> Catalog:
    mesh = tmp_path / "mesh"
    shutil.copytree(MESH, mesh)
    (mesh / "customer" / "data" / "customers.parquet").unlink()
    return load_catalog(mesh)


def test_strict_engines_still_refuse_the_whole_catalogue(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="snapshot file not found"):
        DuckDBEngine.from_catalog(_catalog(tmp_path), KEY)


def test_isolated_engine_serves_the_other_products(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    # A refused path (no data directory for this product) is isolated the same way.
    catalog.data_roots["payments/payments"] = None
    engine = DuckDBEngine.from_catalog(catalog, KEY, isolate_failures=True)
    try:
        assert engine.execute('SELECT count(*) AS n FROM "commerce"."orders"').num_rows == 1
        with pytest.raises(SnapshotUnavailable, match="customer/customers:customers") as caught:
            engine.execute('SELECT * FROM (SELECT "customer_id" FROM "customer"."customers") AS c')
        assert "snapshot file not found" in caught.value.message
        assert str(tmp_path) not in caught.value.message
        with pytest.raises(SnapshotUnavailable, match="no data directory"):
            engine.execute('SELECT "amount" FROM "payments"."payments"')
        # A CTE named like the broken table is not the table.
        cte = "WITH customers AS (SELECT 1 AS x) SELECT x FROM customers"
        assert engine.execute(cte).num_rows == 1
    finally:
        engine.close()


def test_data_root_of_a_published_manifest_is_its_domain_directory(tmp_path: Path) -> None:
    catalog = load_catalog(MESH)
    manifest = catalog.manifests["customer/customers"]
    domain = MESH / "customer"
    published = Catalog.from_manifests(
        [manifest], data_roots={manifest.id: DataRoot(domain, domain, "the domain")}
    )
    path = published.resolve_data_path(manifest, "data/customers.parquet")
    assert path == (domain / "data" / "customers.parquet").resolve()
    with pytest.raises(ManifestError, match="leaves the domain"):
        published.resolve_data_path(manifest, "../payments/data/payments.parquet")
    assert [s.port.name for s in port_sources(published)] == ["customers"]


def _quoted(table: str | None) -> str:
    return ".".join(f'"{part}"' for part in (table or "").split("."))


def test_isolated_postgres_engine_ignores_snapshot_paths_and_names_rejected_tables(
    engine_catalog: Catalog, engine_pg_dsn: str
) -> None:
    """PostgreSQL is loaded by `meshgov load`: a refused `data:` path does not matter there; a
    table taken twice fails only the queries on it."""
    from meshgov.engines.postgres import PostgresEngine

    orders = engine_catalog.manifests["commerce/orders"]
    customers = engine_catalog.manifests["customer/customers"]
    orders_table = orders.spec.output_ports[0].table
    ports = [p.model_copy(update={"table": orders_table}) for p in customers.spec.output_ports]
    clash = customers.model_copy(
        update={
            "metadata": customers.metadata.model_copy(update={"name": "clash"}),
            "spec": customers.spec.model_copy(update={"output_ports": ports}),
        }
    )
    assert clash.id == "customer/clash"
    catalog = Catalog.from_manifests(
        [orders, customers, clash], data_roots={"customer/customers": None}
    )
    engine = PostgresEngine(engine_pg_dsn, catalog, isolate_failures=True)
    try:
        customers_table = _quoted(customers.spec.output_ports[0].table)
        assert engine.execute(f"SELECT count(*) AS n FROM {customers_table}").num_rows == 1
        with pytest.raises(SnapshotUnavailable, match="already the table of"):
            engine.execute(f"SELECT count(*) AS n FROM {_quoted(orders_table)}")
    finally:
        engine.close()


def test_a_partial_load_is_dropped_by_its_qualified_name() -> None:
    """What a failed load left behind is dropped: the statement names the table (sqlglot prints
    a ``Drop`` built with ``this=`` without it, which DuckDB rejects, and the error was
    swallowed)."""
    import duckdb as duckdb_module

    from meshgov.engines.base import PhysicalTable
    from meshgov.engines.duckdb import _drop_partial

    connection = duckdb_module.connect()
    connection.execute('CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Orders" (id INT)')
    physical = PhysicalTable("sales/orders", "orders", None, "Sales", "Orders")
    source = type("Source", (), {"physical": physical})()
    _drop_partial(connection, source)  # type: ignore[arg-type]
    tables = connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
    assert ("Orders",) not in tables
