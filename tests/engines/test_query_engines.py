"""Both engines behind one interface: loading, the keyed hash, lock-down, barriers, error text."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from meshgov.catalog import Catalog, load_catalog
from meshgov.engines.base import QueryEngine, QueryFailed, open_engine
from meshgov.engines.duckdb import DuckDBEngine
from meshgov.errors import (
    AccessDenied,
    BackendUnavailable,
    InputError,
    ManifestError,
    MeshgovError,
    SqlUnsupportedError,
)

FIXTURE_MESH = Path(__file__).resolve().parents[1] / "fixtures" / "engines" / "mesh"
HASH_KEY = b"engine-test-key-\x00\xff"  # the same key as conftest.py

RAW_EMAILS = {
    "alice.eu@example.com",
    "bob.us@example.com",
    "chloe.eu@example.com",
    "dan.us@example.com",
}
# What the gateway emits for an EU analyst: masked columns, filtered rows, quoted names.
SECURE_CUSTOMERS = (
    '(SELECT "customer_id", meshgov_hash(CAST("email" AS TEXT)) AS "email", "region" '
    'FROM "customer"."customers" WHERE "region" = \'EU\') AS c'
)
SECURE_ORDERS = '(SELECT "order_id", "customer_id", "amount" FROM "commerce"."orders") AS o'


def expected_hash(value: str) -> str:
    return hashlib.sha256(HASH_KEY + value.encode()).hexdigest()


@pytest.fixture(params=["duckdb", "postgresql"])
def engine(request: pytest.FixtureRequest, engine_catalog: Catalog) -> Iterator[QueryEngine]:
    if request.param == "duckdb":
        opened: QueryEngine = DuckDBEngine.from_catalog(engine_catalog, HASH_KEY)
    else:
        dsn = request.getfixturevalue("engine_pg_dsn")
        opened = open_engine(dsn, engine_catalog, HASH_KEY)
    try:
        yield opened
    finally:
        opened.close()


def test_ports_are_exposed_under_their_physical_names(engine: QueryEngine) -> None:
    table = engine.execute(
        'SELECT "customer_id", "region" FROM "customer"."customers" ORDER BY "customer_id"'
    )
    assert isinstance(table, pa.Table)
    assert table.column_names == ["customer_id", "region"]
    assert table.column("customer_id").to_pylist() == ["c1", "c2", "c3", "c4", "c5"]
    orders = engine.execute("SELECT count(*) AS n, sum(amount) AS total FROM commerce.orders")
    assert orders.to_pylist() == [{"n": 5, "total": pytest.approx(142.65)}]


def test_secure_query_masks_and_filters(engine: QueryEngine) -> None:
    sql = (
        f"SELECT c.customer_id, c.email, sum(o.amount) AS total FROM {SECURE_CUSTOMERS} "
        f"JOIN {SECURE_ORDERS} ON c.customer_id = o.customer_id GROUP BY 1, 2 ORDER BY 1"
    )
    rows = engine.execute(sql).to_pylist()
    assert rows == [
        {"customer_id": "c1", "email": expected_hash("alice.eu@example.com"), "total": 30.5},
        {"customer_id": "c3", "email": expected_hash("chloe.eu@example.com"), "total": 5.25},
    ]


def test_hash_is_keyed_sha256_and_null_stays_null(engine: QueryEngine) -> None:
    rows = engine.execute(
        "SELECT meshgov_hash('alice.eu@example.com') AS h, meshgov_hash(NULL) AS n, "
        "meshgov_hash('Chloé') AS u"
    ).to_pylist()
    assert rows == [
        {"h": expected_hash("alice.eu@example.com"), "n": None, "u": expected_hash("Chloé")}
    ]
    assert rows[0]["h"] != hashlib.sha256(b"alice.eu@example.com").hexdigest()


@pytest.mark.parametrize(
    "predicate",
    [
        "1 / (CASE WHEN c.region = 'US' THEN 0 ELSE 1 END) = 1",  # errors only on hidden rows
        "CAST(CASE WHEN c.region = 'US' THEN 'x' ELSE '1' END AS INT) = 1",
        "CAST(CASE WHEN c.region <> 'EU' THEN c.email ELSE '1' END AS INT) = 1",
    ],
)
def test_user_predicates_run_behind_the_barrier(engine: QueryEngine, predicate: str) -> None:
    # Each predicate fails only on a row the filter drops: behind the barrier it never sees one.
    secure = (
        '(SELECT "customer_id", "email", "region" FROM "customer"."customers" '
        "WHERE \"region\" = 'EU') AS c"
    )
    rows = engine.execute(f"SELECT c.customer_id FROM {secure} WHERE {predicate}").to_pylist()
    assert {r["customer_id"] for r in rows} == {"c1", "c3", "c5"}


def test_engine_error_text_is_never_passed_on(engine: QueryEngine) -> None:
    with pytest.raises(QueryFailed) as caught:
        engine.execute('SELECT CAST("email" AS INT) FROM "customer"."customers"')
    message = str(caught.value)
    assert not any(email in message for email in RAW_EMAILS)
    assert "conversion" in message
    assert caught.value.code == "query_failed"
    with pytest.raises(QueryFailed) as caught:
        engine.execute('SELECT CAST("name" AS DATE) FROM "customer"."customers"')
    assert "Alice Martin" not in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "DROP TABLE customer.customers",
        "CREATE TABLE x AS SELECT 1 AS a",
        "INSERT INTO commerce.orders (order_id) VALUES (99)",
        "COPY customer.customers TO '/tmp/meshgov-leak.csv'",
        "SET search_path = pg_catalog",
        "ATTACH '/tmp/meshgov.db' AS leak",
        "PRAGMA database_list",
        "",
        "SELECT FROM WHERE",
    ],
)
def test_only_one_read_only_query_is_accepted(engine: QueryEngine, sql: str) -> None:
    with pytest.raises(SqlUnsupportedError):
        engine.execute(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('{csv}')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT * FROM meshgov_internal.hash_key",
        "SELECT set_config('role', 'postgres', true)",
        "SELECT * FROM pg_stats",
        "SELECT query_to_xml('SELECT email FROM customer.customers', true, true, '')",
        "SELECT * FROM '{csv}'",
        "SELECT * FROM getenv('HOME')",
    ],
)
def test_engine_cannot_reach_files_settings_or_the_key(engine: QueryEngine, sql: str) -> None:
    csv = str(FIXTURE_MESH / "data" / "customers.csv")
    with pytest.raises(SqlUnsupportedError) as caught:
        engine.execute(sql.format(csv=csv))  # the engine's own source audit
    assert csv not in str(caught.value)
    # Past that audit, the database's lock-down refuses it too.
    with pytest.raises(MeshgovError) as caught:
        engine.execute_unprotected(sql.format(csv=csv))  # type: ignore[attr-defined]
    assert not any(email in str(caught.value) for email in RAW_EMAILS)
    assert csv not in str(caught.value)


def test_key_is_not_visible_in_engine_metadata(engine: QueryEngine) -> None:
    probes = {
        "duckdb": [
            "SELECT * FROM duckdb_functions() WHERE function_name = 'meshgov_hash'",
            "SELECT * FROM duckdb_settings()",
            "SELECT * FROM duckdb_views()",
            "SELECT * FROM duckdb_tables()",
        ],
        "postgresql": [
            "SELECT prosrc, proconfig FROM pg_proc WHERE proname = 'meshgov_hash'",
            "SELECT name, setting FROM pg_settings",
        ],
    }[engine.name]
    for sql in probes:
        with pytest.raises(SqlUnsupportedError):
            engine.execute(sql)
        text = str(engine.execute_unprotected(sql).to_pylist()).encode()  # type: ignore[attr-defined]
        assert b"engine-test-key" not in text


def test_duckdb_barrier_views_do_not_outlive_their_query(engine_catalog: Catalog) -> None:
    from meshgov.engines.base import prepare_query

    duck = DuckDBEngine.from_catalog(engine_catalog, HASH_KEY, barriers=True)
    try:
        sql = (
            f"SELECT count(*) AS n FROM {SECURE_CUSTOMERS} WHERE CAST(c.customer_id AS TEXT) = 'c1'"
        )
        assert prepare_query(sql, duck.dialect, PHYSICAL, True).views
        duck.execute(sql)
        with pytest.raises(QueryFailed):
            duck.execute_unprotected("SELECT * FROM meshgov_barrier_1")
    finally:
        duck.close()


def _secure_customers(region: str) -> str:
    return SECURE_CUSTOMERS.replace("'EU'", f"'{region}'")


def test_postgres_barrier_views_are_kept_per_whole_secure_subquery(engine_pg_dsn: str) -> None:
    """Persistent barrier views are named by a digest of their whole SQL, filter values included:
    two principals whose filters differ never read the same view, the same one is reused."""
    from meshgov.engines.base import BARRIER_SCHEMA, prepare_query
    from meshgov.engines.postgres import PostgresEngine, connect

    pg = PostgresEngine(engine_pg_dsn, barriers=True)
    try:
        queries = {
            region: f"SELECT c.customer_id, c.region FROM {_secure_customers(region)} "
            "ORDER BY c.customer_id"
            for region in ("EU", "US")
        }
        names = {
            region: prepare_query(sql, "postgres", pg._physical, True, True).view_names
            for region, sql in queries.items()
        }
        assert names["EU"] and names["US"] and set(names["EU"]).isdisjoint(names["US"])
        for _ in range(3):  # alternating principals on the same pooled connections
            for region, sql in queries.items():
                rows = pg.execute(sql).to_pylist()
                assert rows and {r["region"] for r in rows} == {region}
        with connect(engine_pg_dsn) as admin:
            views = dict(
                admin.execute(
                    "SELECT schemaname || '.' || viewname, definition FROM pg_views "
                    "WHERE schemaname = %s",
                    (BARRIER_SCHEMA,),
                ).fetchall()
            )
            for region, (name,) in names.items():
                assert f"'{region}'" in views[name]  # the view holds its own filter value
            owner_may_create = admin.execute(
                "SELECT has_schema_privilege(%s, %s, 'CREATE')",
                (pg._role, BARRIER_SCHEMA),
            ).fetchone()
            assert owner_may_create == (False,)  # the reader cannot add or replace views
        again = PostgresEngine(engine_pg_dsn, barriers=True)
        try:  # another engine (process) finds the views made by the first one
            rows = again.execute(queries["US"]).to_pylist()
            assert {r["region"] for r in rows} == {"US"}
        finally:
            again.close()
    finally:
        pg.close()


def test_results_stream_in_batches_within_the_caps(
    engine_catalog: Catalog, request: pytest.FixtureRequest
) -> None:
    """``execute_stream``: batches on demand; the caps count what passes and stop the query."""
    from meshgov.engines.postgres import PostgresEngine
    from meshgov.errors import ResultTooLarge
    from meshgov.limits import ResultLimits

    sql = (
        f"SELECT c.customer_id, o.order_id FROM {SECURE_CUSTOMERS} "
        f"CROSS JOIN {SECURE_ORDERS} CROSS JOIN (SELECT * FROM generate_series(1, 20000)) AS g"
    )
    dsn = request.getfixturevalue("engine_pg_dsn")
    for limits in (ResultLimits(), ResultLimits(max_rows=25_000)):
        engines: list[QueryEngine] = [
            DuckDBEngine.from_catalog(engine_catalog, HASH_KEY, limits=limits),
            PostgresEngine(dsn, engine_catalog, limits=limits),
        ]
        for engine in engines:
            try:
                stream = engine.execute_stream(sql)  # type: ignore[attr-defined]
                counted = engine.execute(f"SELECT count(*) AS n FROM ({sql}) AS q")
                expected = counted[0][0].as_py()
                assert expected > 100_000
                if limits.max_rows >= expected:
                    sizes = [batch.num_rows for batch in stream]
                    assert len(sizes) > 1 and sum(sizes) == expected
                    assert max(sizes) <= 65_536
                else:
                    with pytest.raises(ResultTooLarge):
                        for _ in stream:
                            pass
                assert stream.closed
                # The engine serves the next query (the stopped one freed its cursor/connection).
                assert engine.execute("SELECT count(*) AS n FROM commerce.orders")[0][0].as_py()
            finally:
                engine.close()


def test_same_rows_and_hashes_on_both_engines(engine_catalog: Catalog, engine_pg_dsn: str) -> None:
    duck = DuckDBEngine.from_catalog(engine_catalog, HASH_KEY)
    pg = open_engine(engine_pg_dsn, engine_catalog, HASH_KEY)
    try:
        sql = (
            f"SELECT c.customer_id, c.email, o.order_id, o.amount FROM {SECURE_CUSTOMERS} "
            f"LEFT JOIN {SECURE_ORDERS} ON c.customer_id = o.customer_id "
            "ORDER BY c.customer_id, o.order_id"
        )
        assert duck.execute(sql).to_pylist() == pg.execute(sql).to_pylist()
        raw = 'SELECT * FROM "customer"."customers" ORDER BY "customer_id"'
        assert duck.execute(raw).to_pylist() == pg.execute(raw).to_pylist()
        orders = "SELECT * FROM commerce.orders ORDER BY order_id"
        assert duck.execute(orders).to_pylist() == pg.execute(orders).to_pylist()
    finally:
        duck.close()
        pg.close()


def test_postgres_queries_run_as_the_read_only_reader(engine_pg_dsn: str) -> None:
    from meshgov.engines.postgres import PostgresEngine, reader_role

    pg = PostgresEngine(engine_pg_dsn)
    try:
        rows = pg.execute_unprotected(
            "SELECT current_user AS who, current_setting('transaction_read_only') AS ro"
        ).to_pylist()
        database = engine_pg_dsn.rsplit("/", 1)[-1]
        assert rows == [{"who": reader_role(database), "ro": "on"}]
        with pytest.raises(MeshgovError):
            pg.execute("SELECT nextval('x')")
    finally:
        pg.close()


def test_postgres_load_is_repeatable(engine_catalog: Catalog, engine_pg_dsn: str) -> None:
    from meshgov.engines import postgres

    loaded = postgres.load(engine_catalog, engine_pg_dsn, HASH_KEY)
    assert sorted((p.table, p.rows) for p in loaded) == [
        ("commerce.orders", 5),
        ("customer.customers", 5),
    ]


def test_unloaded_postgres_database_is_reported(pg_admin_dsn: str) -> None:
    import uuid

    from meshgov.engines import postgres

    name = f"meshgov_empty_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    try:
        with pytest.raises(BackendUnavailable, match="not loaded"):
            postgres.PostgresEngine(dsn)
    finally:
        postgres.drop_database(pg_admin_dsn, name)


def test_unreachable_postgres_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable):
        open_engine("postgresql://nobody@127.0.0.1:1/none", None, HASH_KEY)


def test_unknown_engine_url_is_invalid_input() -> None:
    with pytest.raises(InputError, match="unknown engine"):
        open_engine("mysql://x", None, HASH_KEY)


def test_closed_duckdb_engine_is_unavailable(engine_catalog: Catalog) -> None:
    duck = DuckDBEngine.from_catalog(engine_catalog, HASH_KEY)
    duck.close()
    with pytest.raises(BackendUnavailable):
        duck.execute("SELECT 1 AS x")


def _copy_mesh(tmp_path: Path) -> Path:
    target = tmp_path / "mesh"
    shutil.copytree(FIXTURE_MESH, target)
    return target


def test_only_declared_columns_are_loaded(tmp_path: Path) -> None:
    mesh = _copy_mesh(tmp_path)
    csv = mesh / "data" / "orders.csv"
    lines = csv.read_text().splitlines()
    csv.write_text(
        "\n".join([lines[0] + ",card_number"] + [line + ",4111111111111111" for line in lines[1:]])
    )
    duck = DuckDBEngine.from_catalog(load_catalog(mesh), HASH_KEY)
    try:
        assert duck.execute("SELECT * FROM commerce.orders").column_names == [
            "order_id",
            "customer_id",
            "amount",
            "paid",
        ]
        with pytest.raises(QueryFailed):
            duck.execute("SELECT card_number FROM commerce.orders")
    finally:
        duck.close()


def test_snapshot_missing_a_declared_column_names_it(tmp_path: Path) -> None:
    mesh = _copy_mesh(tmp_path)
    csv = mesh / "data" / "orders.csv"
    csv.write_text("order_id,customer_id,amount\n1,c1,2.0\n")
    with pytest.raises(ManifestError) as caught:
        DuckDBEngine.from_catalog(load_catalog(mesh), HASH_KEY)
    assert caught.value.location is not None
    assert caught.value.location.column == "paid"
    assert caught.value.location.product == "commerce/orders"


def test_missing_snapshot_names_the_port(tmp_path: Path) -> None:
    mesh = _copy_mesh(tmp_path)
    (mesh / "data" / "orders.csv").unlink()
    with pytest.raises(ManifestError, match="snapshot file not found") as caught:
        DuckDBEngine.from_catalog(load_catalog(mesh), HASH_KEY)
    assert caught.value.location is not None
    assert caught.value.location.port == "orders"


def test_port_without_snapshot_is_an_empty_typed_table(tmp_path: Path) -> None:
    mesh = _copy_mesh(tmp_path)
    manifest = mesh / "orders.yaml"
    manifest.write_text(manifest.read_text().replace("      data: data/orders.csv\n", ""))
    duck = DuckDBEngine.from_catalog(load_catalog(mesh), HASH_KEY)
    try:
        table = duck.execute("SELECT * FROM commerce.orders")
        assert table.num_rows == 0
        assert table.schema.field("amount").type == pa.float64()
    finally:
        duck.close()


def test_permission_errors_are_access_denied(engine_catalog: Catalog) -> None:
    duck = DuckDBEngine.from_catalog(engine_catalog, HASH_KEY)
    try:
        with pytest.raises(AccessDenied):
            duck.execute(f"SELECT * FROM read_csv('{FIXTURE_MESH / 'data' / 'orders.csv'}')")
    finally:
        duck.close()


PHYSICAL = frozenset({("customer", "customers"), ("commerce", "orders")})


SECURE_ORDERS_EU = (
    '(SELECT "order_id", "customer_id", "amount" FROM "commerce"."orders" '
    "WHERE \"region\" = 'EU') AS o"
)


@pytest.mark.parametrize(
    "query",
    [
        # Whatever the predicate (even one that cannot fail: the planner orders conditions).
        "SELECT c.customer_id FROM {c} WHERE c.region = 'EU'",
        "SELECT c.customer_id FROM {c}",
        "SELECT c.customer_id FROM {c} JOIN {o} ON true WHERE CAST(c.email AS INT) = 1",
        # Whatever the position: a parenthesised join, a nested one, a scalar or EXISTS
        # subquery, a CTE, a lateral, a set operation.
        "SELECT c.customer_id FROM ({c} JOIN {o} USING (customer_id)) WHERE o.amount > 1",
        "SELECT 1 AS x FROM (({c} JOIN {o} USING (customer_id)))",
        "SELECT (SELECT count(*) FROM {c}) AS n",
        "SELECT 1 AS x WHERE EXISTS (SELECT 1 FROM {c} WHERE CAST(c.email AS INT) = 1)",
        "WITH t AS (SELECT * FROM {c}) SELECT count(*) AS n FROM t",
        "SELECT customer_id FROM {c} UNION ALL SELECT customer_id FROM {o}",
    ],
)
def test_every_filtered_secure_subquery_is_behind_a_barrier(query: str) -> None:
    from meshgov.engines.base import prepare_query

    sql = query.format(c=SECURE_CUSTOMERS, o=SECURE_ORDERS_EU)
    filtered = sql.count("WHERE \"region\" = 'EU'")
    for dialect in ("duckdb", "postgres"):
        prepared = prepare_query(sql, dialect, PHYSICAL, True)
        assert len(prepared.views) == filtered
        assert all(
            ("SECURE VIEW" if dialect == "duckdb" else "security_barrier") in view
            for view in prepared.views
        )
        # No protected table is read outside a barrier view any more.
        assert '"customer"."customers"' not in prepared.sql
        assert '"commerce"."orders"' not in prepared.sql
        assert prepare_query(sql, dialect, PHYSICAL, True) is prepared  # cached


def test_unfiltered_secure_subqueries_need_no_barrier() -> None:
    from meshgov.engines.base import prepare_query

    sql = f"SELECT o.order_id FROM {SECURE_ORDERS} WHERE CAST(o.amount AS INT) = 1"
    assert prepare_query(sql, "postgres", PHYSICAL, True).views == ()


def test_join_condition_is_a_predicate() -> None:
    from meshgov.engines.base import prepare_query

    sql = f"SELECT 1 AS x FROM {SECURE_CUSTOMERS} JOIN {SECURE_ORDERS} ON CAST(c.email AS INT) = 1"
    assert prepare_query(sql, "duckdb", PHYSICAL, True).views


def test_duckdb_query_past_its_timeout_is_interrupted(engine_catalog: Catalog) -> None:
    duck = DuckDBEngine.from_catalog(engine_catalog, HASH_KEY, timeout_ms=300)
    try:
        with pytest.raises(QueryFailed, match="timeout"):
            duck.execute(
                "SELECT count(*) AS n FROM range(100000000) AS a(i), range(100000000) AS b(j) "
                "WHERE a.i + b.j = -1"
            )
        assert duck.execute("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        duck.close()


def test_postgres_query_past_its_timeout_is_cancelled(
    engine_catalog: Catalog, engine_pg_dsn: str
) -> None:
    from meshgov.engines.postgres import PostgresEngine

    pg = PostgresEngine(engine_pg_dsn, engine_catalog, timeout_ms=300)
    try:
        with pytest.raises(QueryFailed, match="timeout"):
            pg.execute(
                "SELECT count(*) AS n FROM generate_series(1, 100000000) AS a(i), "
                "generate_series(1, 100000000) AS b(j) WHERE a.i + b.j = -1"
            )
        assert pg.execute("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        pg.close()


def test_text_number_equality_runs_behind_the_barrier(engine: QueryEngine) -> None:
    # DuckDB casts the text side of `email = amount`; only EU rows may ever be cast.
    secure = (
        '(SELECT "customer_id", "email", "region" FROM "customer"."customers" '
        "WHERE \"region\" = 'EU' AND \"email\" = '') AS c"
    )
    sql = f"SELECT c.customer_id FROM {secure} JOIN {SECURE_ORDERS} ON c.email = o.amount"
    try:
        rows = engine.execute(sql).to_pylist()
    except (QueryFailed, AccessDenied) as exc:
        message = str(exc)
        assert not any(email in message for email in RAW_EMAILS)
    else:
        assert rows == []


@pytest.mark.parametrize(
    "table",
    ["meshgov_internal.hash_key", "pg_catalog.orders", "information_schema.x", "meshgov_barrier_1"],
)
def test_reserved_physical_names_are_refused(tmp_path: Path, table: str) -> None:
    mesh = _copy_mesh(tmp_path)
    manifest = mesh / "orders.yaml"
    manifest.write_text(manifest.read_text().replace("table: commerce.orders", f"table: {table}"))
    with pytest.raises(ManifestError, match="reserved") as caught:
        DuckDBEngine.from_catalog(load_catalog(mesh), HASH_KEY)
    assert caught.value.location is not None
    assert caught.value.location.product == "commerce/orders"


def test_postgres_results_of_any_type_become_arrow(engine_pg_dsn: str) -> None:
    from meshgov.engines.postgres import PostgresEngine

    pg = PostgresEngine(engine_pg_dsn)
    try:
        table = pg.execute_unprotected(
            "SELECT interval '1 day' AS i, ARRAY[1, 2] AS a, 1.5::numeric AS n, "
            "'{\"k\": 1}'::jsonb AS j"
        )
        assert table.num_rows == 1
        assert table.column_names == ["i", "a", "n", "j"]
    finally:
        pg.close()


def test_catalog_qualified_port_gets_its_own_duckdb_catalog(tmp_path: Path) -> None:
    mesh = _copy_mesh(tmp_path)
    manifest = mesh / "orders.yaml"
    manifest.write_text(
        manifest.read_text().replace("table: commerce.orders", "table: lake.commerce.orders")
    )
    duck = DuckDBEngine.from_catalog(load_catalog(mesh), HASH_KEY)
    try:
        assert ("lake", "commerce", "orders") in duck.physical_tables
        rows = duck.execute('SELECT count(*) AS n FROM "lake"."commerce"."orders"').to_pylist()
        assert rows == [{"n": 5}]
    finally:
        duck.close()


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (f"SELECT c.ssn FROM {SECURE_CUSTOMERS}", "column 'ssn' does not exist"),
        (f"SELECT emial FROM {SECURE_CUSTOMERS}", "column 'emial' does not exist"),
        (
            f"SELECT customer_id FROM {SECURE_CUSTOMERS} JOIN {SECURE_ORDERS} "
            "ON c.customer_id = o.customer_id",
            "column 'customer_id' is ambiguous",
        ),
    ],
)
def test_an_unbound_column_is_named_without_engine_text(
    engine: QueryEngine, sql: str, message: str
) -> None:
    from meshgov.execution import run_secure_sql

    with pytest.raises(QueryFailed) as caught:
        run_secure_sql(engine, sql)
    assert str(caught.value).startswith(message)
    assert caught.value.code == "query_failed"
    # Other failures keep the generic, value-free message.
    with pytest.raises(QueryFailed) as caught:
        run_secure_sql(engine, 'SELECT CAST("email" AS INT) FROM "customer"."customers"')
    assert "engine messages are withheld" in str(caught.value)


def test_postgres_barrier_views_dropped_by_a_reload_are_made_again(engine_pg_dsn: str) -> None:
    from meshgov.engines.postgres import PostgresEngine, _reset_barrier_schema, connect

    pg = PostgresEngine(engine_pg_dsn, barriers=True)
    try:
        sql = f"SELECT c.customer_id FROM {SECURE_CUSTOMERS} ORDER BY c.customer_id"
        first = pg.execute(sql).to_pylist()
        pg.execute(sql)  # prepared on the server from now on
        with connect(engine_pg_dsn) as admin:  # what `meshgov load` does to them
            _reset_barrier_schema(admin, pg._role)
            admin.commit()
        assert pg.execute(sql).to_pylist() == first
    finally:
        pg.close()
