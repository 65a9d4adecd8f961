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


ENGINE_MESH = Path(__file__).resolve().parents[1] / "fixtures" / "engines" / "mesh"


def test_a_query_loads_only_the_ports_it_reads() -> None:
    engine = DuckDBEngine.from_catalog(load_catalog(MESH), KEY)
    try:
        assert engine.loaded_tables == set()
        assert len(engine.physical_tables) == 7
        engine.execute('SELECT "customer_id" FROM "customer"."customers" LIMIT 1')
        assert engine.loaded_tables == {("customer", "customers")}
        # A CTE named like another port's table answers from the CTE (the port may be loaded:
        # inside its own body the name is the port's).
        cte = engine.execute("WITH orders AS (SELECT 1 AS x) SELECT x FROM orders")
        assert cte.column("x").to_pylist() == [1]
        engine.execute('SELECT "order_id" FROM "commerce"."order_items" LIMIT 1')
        assert ("commerce", "order_items") in engine.loaded_tables
        assert ("payments", "payments") not in engine.loaded_tables
        joined = (
            'SELECT count(*) AS n FROM "customer"."customers" AS c '
            'JOIN "commerce"."orders" AS o ON c."customer_id" = o."customer_id"'
        )
        assert engine.execute(joined).column("n")[0].as_py() > 0
        assert {("customer", "customers"), ("commerce", "orders")} <= engine.loaded_tables
        assert len(engine.loaded_tables) == 3
        # Loaded once: the next query finds the rows already there.
        first = engine.execute('SELECT count(*) AS n FROM "commerce"."orders"')
        assert engine.execute('SELECT count(*) AS n FROM "commerce"."orders"') == first
    finally:
        engine.close()


def _unloadable_orders(tmp_path: Path) -> Catalog:
    """The engine fixture mesh whose orders snapshot has the declared columns (its schema is
    fine) but an amount that is not a number: it fails when its rows are loaded."""
    mesh = tmp_path / "mesh"
    shutil.copytree(ENGINE_MESH, mesh)
    csv = mesh / "data" / "orders.csv"
    csv.write_text("order_id,customer_id,amount,paid\n1,c1,ten,true\n", encoding="utf-8")
    return load_catalog(mesh)


@pytest.mark.parametrize("isolate", [False, True], ids=["local", "service"])
def test_a_snapshot_that_fails_to_load_fails_only_the_queries_that_read_it(
    tmp_path: Path, isolate: bool
) -> None:
    engine = DuckDBEngine.from_catalog(_unloadable_orders(tmp_path), KEY, isolate_failures=isolate)
    try:
        customers = engine.execute('SELECT "customer_id" FROM "customer"."customers"')
        assert customers.num_rows > 0
        # Fail closed: never served as an empty table, and the same error on every later query.
        for _ in range(2):
            with pytest.raises((ManifestError, SnapshotUnavailable)) as caught:
                engine.execute('SELECT "order_id" FROM "commerce"."orders"')
            assert "cannot load snapshot" in caught.value.message
            if isolate:
                assert isinstance(caught.value, SnapshotUnavailable)
                assert "commerce/orders:orders" in caught.value.message
                assert str(tmp_path) not in caught.value.message
            else:
                assert caught.value.location is not None
                assert caught.value.location.product == "commerce/orders"
        joined = (
            'SELECT count(*) AS n FROM "customer"."customers" AS c '
            'JOIN "commerce"."orders" AS o ON c."customer_id" = o."customer_id"'
        )
        with pytest.raises((ManifestError, SnapshotUnavailable)):
            engine.execute(joined)
        assert engine.execute('SELECT count(*) AS n FROM "customer"."customers"').num_rows == 1
        assert ("commerce", "orders") not in engine.loaded_tables
    finally:
        engine.close()


def test_a_corrupt_snapshot_of_another_port_does_not_fail_a_service_query(
    tmp_path: Path,
) -> None:
    mesh = tmp_path / "mesh"
    shutil.copytree(MESH, mesh)
    (mesh / "payments" / "data" / "payments.parquet").write_bytes(b"PAR1 not parquet PAR1")
    engine = DuckDBEngine.from_catalog(load_catalog(mesh), KEY, isolate_failures=True)
    try:
        assert engine.execute('SELECT count(*) AS n FROM "commerce"."orders"').num_rows == 1
        with pytest.raises(SnapshotUnavailable, match="payments/payments:payments"):
            engine.execute('SELECT "amount" FROM "payments"."payments"')
    finally:
        engine.close()
    # A local catalogue reads each snapshot's schema up front: a corrupt file is refused there.
    with pytest.raises(ManifestError, match="cannot read snapshot") as caught:
        DuckDBEngine.from_catalog(load_catalog(mesh), KEY)
    assert caught.value.location is not None
    assert caught.value.location.product == "payments/payments"
