"""Red-team findings: what an EU analyst (or ``nobody``) could learn that the policy hides.

Each test is a minimal reproduction of one attack. Leaks that were fixed pass; leaks that are not
fixed are ``xfail(strict=True)`` with the reason; attacks that held guard against regressions.
Ground truth comes from the example mesh's Parquet snapshots, read with pyarrow.

Pure checks of the catalogue rewriter run everywhere; the wire tests need PostgreSQL (the
governed catalogue lives there) and skip without it unless ``MESHGOV_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlglot

from meshgov.pgwire.catalogue import CatalogueRefused, rewrite_catalogue_query

MESH = Path(__file__).resolve().parents[2] / "examples" / "mesh"
SETTINGS = {"server_version": "15.0 (meshgov)", "search_path": '"$user", public'}


def eu_customers() -> int:
    table = pq.read_table(MESH / "customer" / "data" / "customers.parquet")
    return int(pc.sum(pc.equal(table["region"], "EU")).as_py())


def rewrite(sql: str) -> str:
    tree = sqlglot.parse_one(sql, read="postgres")
    return rewrite_catalogue_query(
        tree, principal_id="analyst-eu", purpose="analytics", settings=SETTINGS
    ).sql("postgres")


# --------------------------------------------------------------------------- catalogue (pure)
@pytest.mark.parametrize(
    "sql",
    [
        # every database of the cluster by name (other principals' catalogue databases, engines)
        "SELECT datname FROM pg_catalog.pg_stat_database",
        "SELECT datname FROM pg_stat_database_conflicts",
        "WITH x AS (SELECT datname FROM pg_catalog.pg_stat_database) SELECT * FROM x",
        # cluster-wide dependencies: database and role oids
        "SELECT DISTINCT dbid FROM pg_catalog.pg_shdepend",
        # server activity
        "SELECT * FROM pg_catalog.pg_stat_wal",
        "SELECT * FROM pg_catalog.pg_stat_bgwriter",
        "SELECT * FROM pg_catalog.pg_statio_user_tables",
        "SELECT * FROM pg_catalog.pg_replication_origin_status",
        # what is installed on the server (pg_available_extensions was already refused)
        "SELECT * FROM pg_catalog.pg_available_extension_versions",
    ],
)
def test_cluster_wide_statistics_are_refused(sql: str) -> None:
    with pytest.raises(CatalogueRefused) as refused:
        rewrite(sql)
    assert refused.value.sqlstate == "42501"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT current_setting('port')",
        "SELECT current_setting('listen_addresses')",
        "SELECT pg_catalog.current_setting('cluster_name')",
        "SELECT current_setting(lower('PORT'))",
    ],
)
def test_server_settings_are_not_answered(sql: str) -> None:
    with pytest.raises(CatalogueRefused):
        rewrite(sql)


def test_session_settings_still_answer_and_missing_ok_is_null() -> None:
    assert "'15.0 (meshgov)'" in rewrite("SELECT pg_catalog.current_setting('server_version')")
    assert "'150000'" in rewrite("SELECT current_setting('server_version_num')")
    # what SQLAlchemy's inspector asks the server
    assert "default_table_access_method" in rewrite(
        "SELECT current_setting(CAST('default_table_access_method' AS VARCHAR))"
    )
    with pytest.raises(CatalogueRefused):
        rewrite("SELECT current_setting(CAST('port' AS VARCHAR))")
    assert "NULL" in rewrite("SELECT current_setting('port', true)")


@pytest.mark.parametrize(
    "sql",
    [
        # "role ... does not exist" or true/false: an oracle on cluster role names
        "SELECT pg_has_role('postgres', 'member')",
        "SELECT pg_catalog.pg_has_role('postgres', 'member')",
        "SELECT has_table_privilege('postgres', 'pg_class', 'select')",
        "SELECT has_schema_privilege('postgres', 'public', 'usage')",
        "SELECT has_column_privilege('postgres', 'pg_class', 'relname', 'select')",
    ],
)
def test_role_name_oracles_are_refused(sql: str) -> None:
    with pytest.raises(CatalogueRefused):
        rewrite(sql)


def test_privilege_checks_of_the_current_role_still_work() -> None:
    # psql and pgJDBC ask about the session's own privileges: the two-argument forms
    assert (
        "HAS_TABLE_PRIVILEGE"
        in rewrite(
            "SELECT has_table_privilege(c.oid, 'SELECT') FROM pg_catalog.pg_class AS c"
        ).upper()
    )


@pytest.mark.parametrize("sql", ["SELECT version()", "SELECT pg_catalog.version()"])
def test_version_is_meshgovs_not_the_servers_build(sql: str) -> None:
    out = rewrite(sql)
    assert "'PostgreSQL 15.0 (meshgov)'" in out
    assert "VERSION(" not in out.upper()


# --------------------------------------------------------------------------- the wire (end to end)
def _connect(server: Any, user: str = "analyst-eu") -> psycopg.Connection[Any]:
    return psycopg.connect(server.dsn(user), autocommit=True)


@pytest.mark.postgres
def test_wire_pg_stat_database_does_not_name_other_databases(redteam_wire: Any) -> None:
    with _connect(redteam_wire) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT datname FROM pg_catalog.pg_stat_database").fetchall()
        # the shadowed pg_database still answers, with the purpose only
        assert conn.execute("SELECT datname FROM pg_catalog.pg_database").fetchall() == [
            ("analytics",)
        ]


@pytest.mark.postgres
def test_wire_server_settings_and_role_oracle(redteam_wire: Any) -> None:
    with _connect(redteam_wire) as conn:
        for sql in (
            "SELECT current_setting('port')",
            "SELECT pg_has_role('postgres', 'member')",
            "SELECT pg_has_role('no_such_role_rt', 'member')",
        ):
            with pytest.raises(psycopg.Error) as failed:
                conn.execute(sql).fetchall()
            assert "postgres" not in str(failed.value) and "no_such_role_rt" not in str(
                failed.value
            )
        # the setting's name as a bound parameter (psycopg binds on the server)
        with pytest.raises(psycopg.errors.UndefinedObject):
            conn.execute("SELECT current_setting(%s)", ["port"]).fetchall()
        assert conn.execute("SELECT current_setting(%s)", ["search_path"]).fetchall() == [
            ('"$user", public',)
        ]
        (version,) = conn.execute("SELECT version()").fetchone()  # type: ignore[misc]
        assert version == "PostgreSQL 15.0 (meshgov)"


@pytest.mark.postgres
def test_wire_catalogue_does_not_name_server_roles(redteam_wire: Any) -> None:
    # Fixed: information_schema role columns answer the neutral owner "meshgov" (as
    # pg_get_userbyid() does) and ACL columns are NULL (default privileges).
    with _connect(redteam_wire) as conn:
        owners = conn.execute("SELECT schema_owner FROM information_schema.schemata").fetchall()
        grants = conn.execute(
            "SELECT grantor, grantee FROM information_schema.table_privileges"
        ).fetchall()
        acls = conn.execute(
            "SELECT relacl::text FROM pg_catalog.pg_class WHERE relacl IS NOT NULL"
        ).fetchall()
        nspacls = conn.execute("SELECT n.nspacl::text FROM pg_namespace n").fetchall()
    assert owners and {row[0] for row in owners} == {"meshgov"}
    assert acls == [] and {row[0] for row in nspacls} == {None}
    names = {v for row in owners + grants for v in row}
    assert not any("postgres" in name or "meshgov_catalogue_reader" in name for name in names)


@pytest.mark.postgres
def test_wire_information_schema_catalog_is_the_purpose(redteam_wire: Any) -> None:
    # Fixed: every catalogue (database) name column answers the purpose, as pg_database does.
    with _connect(redteam_wire) as conn:
        rows = conn.execute(
            "SELECT catalog_name FROM information_schema.information_schema_catalog_name"
        ).fetchall()
        tables = conn.execute(
            "SELECT DISTINCT t.table_catalog FROM information_schema.tables AS t "
            "WHERE t.table_schema = 'customer'"
        ).fetchall()
        columns = conn.execute(
            "SELECT DISTINCT table_catalog, udt_catalog FROM information_schema.columns "
            "WHERE table_schema = 'customer'"
        ).fetchall()
    assert rows == [("analytics",)]
    assert tables == [("analytics",)]
    assert columns == [("analytics", "analytics")]


# --------------------------------------------------------------------------- attacks that held
@pytest.mark.postgres
def test_wire_implicit_cast_on_hidden_rows_is_refused_on_duckdb(redteam_wire: Any) -> None:
    # DuckDB compares text with a number by casting the text ('F'/'M'/'X' cannot be), and has no
    # barrier that runs the row filter first: it held only because DuckDB happened to filter
    # first. Now such a comparison over filtered rows is refused before anything runs, the same
    # for every principal, so a refusal says nothing about the rows.
    with _connect(redteam_wire) as conn:
        for sql in (
            "SELECT count(*) FROM customer.customers "
            "WHERE (CASE WHEN region = 'US' THEN gender ELSE '1' END) = 1",
            "SELECT count(*) FROM (SELECT 1 AS k) AS v LEFT JOIN customer.customers AS c "
            "ON (CASE WHEN c.region = 'US' THEN c.gender ELSE '1' END) = 1",
            "SELECT count(*) FROM customer.customers "
            "WHERE (CASE WHEN region = 'US' THEN gender ELSE 'true' END) = TRUE",
        ):
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="can fail on a value"):
                conn.execute(sql).fetchone()
        # The same comparison in the output list runs after the filter: served, EU rows only.
        flags = conn.execute(
            "SELECT (CASE WHEN region = 'US' THEN gender ELSE '1' END) = '1' AS f "
            "FROM customer.customers"
        ).fetchall()
        assert len(flags) == eu_customers()


@pytest.mark.postgres
def test_wire_data_paths_hold(redteam_wire: Any) -> None:
    with _connect(redteam_wire) as conn:
        # COPY of a table (not a query) would bypass the rewrite: refused
        with (
            pytest.raises(psycopg.errors.FeatureNotSupported),
            conn.cursor() as cur,
            cur.copy("COPY customer.customers TO STDOUT") as copy,
        ):
            list(copy)
        # COPY (query) is rewritten: hashed emails, EU rows only
        with (
            conn.cursor() as cur,
            cur.copy("COPY (SELECT email, region FROM customer.customers) TO STDOUT") as copy,
        ):
            lines = b"".join(bytes(block) for block in copy).decode().splitlines()
        assert len(lines) == eu_customers()
        assert all(line.endswith("\tEU") and "@" not in line for line in lines)
        # a catalogue query cannot carry a data query
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute(
                "SELECT count(*) FROM customer.customers "
                "WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class)"
            ).fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE postgres")
        # search_path does not open unqualified names to anything else
        conn.execute("SET search_path = customer")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT count(*) FROM customers").fetchall()
        # a whole-row value carries no hidden column
        (row,) = conn.execute(
            "SELECT to_json(t) FROM marketing.customer_360 AS t LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        assert "failed_payment_count" not in str(row)


@pytest.mark.postgres
def test_wire_nobody_reads_nothing(redteam_wire: Any) -> None:
    with _connect(redteam_wire, "nobody") as conn:
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT count(*) FROM customer.customers").fetchall()
        tables = conn.execute(
            "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r' AND relnamespace NOT IN "
            "(SELECT oid FROM pg_catalog.pg_namespace "
            "WHERE nspname IN ('pg_catalog', 'information_schema'))"
        ).fetchall()
    assert tables == []


@pytest.mark.postgres
def test_wire_denied_port_names_the_decision_and_absent_table_is_unknown(redteam_wire: Any) -> None:
    """Which products exist is public in a mesh (docs/wire.md, "Which products exist is not
    secret"): a port nobody granted is 42501 with the decision's reason, a name that is no port
    42P01, and neither message names a column of the port (hidden or not)."""
    failures = {}
    with _connect(redteam_wire, "nobody") as conn:
        for table in ("payments.payments", "payments.paymentz"):
            with pytest.raises(psycopg.Error) as failed:
                conn.execute(f"SELECT 1 FROM {table}").fetchall()
            failures[table] = failed.value
    denied, absent = failures["payments.payments"], failures["payments.paymentz"]
    assert denied.sqlstate == "42501"
    assert "payments/payments" in str(denied) and "denied" in str(denied)
    assert absent.sqlstate == "42P01"
    for failure in failures.values():
        assert "card" not in str(failure).lower() and "amount" not in str(failure).lower()
