"""Python clients against the wire protocol: psycopg 3, asyncpg, SQLAlchemy + pandas, ADBC."""

from __future__ import annotations

import asyncio
import re

import pytest
from wire_server import WireServer

pytestmark = pytest.mark.postgres

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_psycopg_simple_extended_binary_and_server_side_cursor(any_wire: WireServer) -> None:
    import psycopg

    with psycopg.connect(any_wire.dsn(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT customer_id, email, region FROM customer.customers WHERE region = %s "
            "ORDER BY customer_id LIMIT %s",
            ("EU", 5),
        ).fetchall()
        assert len(rows) == 5
        assert all(HEX64.match(email) and region == "EU" for _, email, region in rows)
        # The US rows exist but are filtered away for the EU analyst, bound parameter or not.
        assert conn.execute(
            "SELECT count(*) FROM customer.customers WHERE region = %s", ("US",)
        ).fetchone() == (0,)
        # Binary results: numbers and dates arrive typed.
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT order_count, total_spend, last_order_date FROM "
                        "marketing.customer_360 ORDER BY customer_id LIMIT 3")  # fmt: skip
            for count, spend, last in cur.fetchall():
                assert isinstance(count, int)
                assert spend is None or spend.__class__.__name__ == "Decimal"
                assert last is None or last.__class__.__name__ == "date"
    with psycopg.connect(any_wire.dsn()) as conn:  # a transaction: server-side cursors
        with conn.cursor(name="orders_cursor") as cur:
            cur.itersize = 7
            cur.execute("SELECT order_id, amount FROM commerce.orders ORDER BY order_id")
            streamed = list(cur)
        plain = conn.execute("SELECT order_id, amount FROM commerce.orders ORDER BY order_id")
        assert streamed == plain.fetchall()
        assert len(streamed) > 7


def test_psycopg_errors_carry_sqlstates(wire: WireServer) -> None:
    import psycopg

    with psycopg.connect(wire.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="failed_payment_count"):
            conn.execute("SELECT failed_payment_count FROM marketing.customer_360")
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("SELEKT 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM customer.nosuch")
        with pytest.raises(psycopg.errors.UndefinedColumn, match="emial"):
            conn.execute("SELECT emial FROM customer.customers")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="read-only"):
            conn.execute("DELETE FROM customer.customers")
        # The session is still usable after errors.
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_psycopg_wrong_password_is_28P01(wire: WireServer) -> None:
    import psycopg

    dsn = wire.dsn().replace("password=dev-analyst-eu", "password=dev-analyst-us")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn)


def test_asyncpg_prepared_statements_params_and_cursors(any_wire: WireServer) -> None:
    asyncpg = pytest.importorskip("asyncpg")

    async def scenario() -> None:
        conn = await asyncpg.connect(any_wire.url())
        try:
            rows = await conn.fetch(
                "SELECT customer_id, region, signup_date FROM customer.customers "
                "WHERE region = $1 ORDER BY customer_id LIMIT $2",
                "EU",
                4,
            )
            assert len(rows) == 4
            assert {r["region"] for r in rows} == {"EU"}
            statement = await conn.prepare(
                "SELECT count(*) AS n FROM commerce.orders WHERE amount > $1"
            )
            total = await statement.fetchval(0)
            some = await statement.fetchval(100)
            assert isinstance(total, int) and 0 <= some <= total
            async with conn.transaction():
                seen = [r async for r in conn.cursor("SELECT order_id FROM commerce.orders")]
            assert len(seen) == await conn.fetchval("SELECT count(*) FROM commerce.orders")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetch("SELECT failed_payment_count FROM marketing.customer_360")
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_asyncpg_catalogue_with_bound_oid_arrays_and_mixed_formats(wire: WireServer) -> None:
    """asyncpg's introspection of types it does not know: a catalogue query binding
    ``$1::oid[]`` whose result mixes columns asyncpg reads in binary (oid, name, bool) with ones
    it reads as text (pg_node_tree, aclitem[])."""
    asyncpg = pytest.importorskip("asyncpg")

    async def scenario() -> None:
        conn = await asyncpg.connect(wire.url())
        try:
            rows = await conn.fetch(
                "SELECT t.oid, t.typname, t.typbyval, t.typdefaultbin, t.typacl "
                "FROM pg_catalog.pg_type t WHERE t.oid = ANY($1::oid[]) ORDER BY t.oid",
                [23, 25],
            )
            assert [(r["oid"], r["typname"], r["typbyval"]) for r in rows] == [
                (23, "int4", True),
                (25, "text", False),
            ]
            # A type asyncpg does not know (the column's pg_node_tree) makes it introspect.
            described = await conn.fetch(
                "SELECT relname, relpartbound FROM pg_catalog.pg_class WHERE relname = $1::name",
                "customers",
            )
            assert [r["relname"] for r in described] == ["customers"]
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_sqlalchemy_inspector_and_pandas(wire: WireServer) -> None:
    pd = pytest.importorskip("pandas")
    sqlalchemy = pytest.importorskip("sqlalchemy")

    engine = sqlalchemy.create_engine(wire.url(scheme="+psycopg"))
    try:
        inspector = sqlalchemy.inspect(engine)
        assert "customer" in inspector.get_schema_names()
        assert inspector.get_table_names(schema="customer") == ["customers"]
        columns = {c["name"] for c in inspector.get_columns("customer_360", schema="marketing")}
        assert "segment" in columns and "failed_payment_count" not in columns
        frame = pd.read_sql("SELECT email, region FROM customer.customers", engine)
        assert len(frame) > 0 and set(frame["region"]) == {"EU"}
        assert frame["email"].map(lambda e: bool(HEX64.match(e))).all()
        table = pd.read_sql_table("customers", engine, schema="customer")
        assert set(table["region"]) == {"EU"}
        assert len(table) == len(frame)
    finally:
        engine.dispose()


def test_adbc_reads_arrow_through_binary_copy(any_wire: WireServer) -> None:
    dbapi = pytest.importorskip("adbc_driver_postgresql.dbapi")

    with dbapi.connect(any_wire.url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT customer_id, email, region, signup_date FROM customer.customers")
        table = cur.fetch_arrow_table()
    assert table.num_rows > 0
    assert set(table.column("region").to_pylist()) == {"EU"}
    assert all(HEX64.match(e) for e in table.column("email").to_pylist())
    assert str(table.schema.field("signup_date").type) == "date32[day]"


def test_wire_queries_are_in_the_decision_log(wire: WireServer) -> None:
    import psycopg

    with psycopg.connect(wire.dsn(application_name="notebook-42"), autocommit=True) as conn:
        conn.execute("SELECT region FROM customer.customers LIMIT 1").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT failed_payment_count FROM marketing.customer_360")
    from meshgov.store.base import DecisionFilter

    service = wire.service
    records = service.decisions(DecisionFilter(kind="wire", principal="analyst-eu", limit=50))  # type: ignore[attr-defined]
    outcomes = {r.allowed for r in records}
    assert outcomes == {True, False}
    mine = [r for r in records if r.result.get("application") == "notebook-42"]
    assert mine and all(r.result["purpose"] == "analytics" for r in mine)
    assert all(r.result["protocol"] == "postgresql" for r in mine)
