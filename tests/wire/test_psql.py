"""psql against the wire protocol: the user's first steps from the issue, verbatim."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from wire_server import WireServer

pytestmark = pytest.mark.postgres

PSQL = shutil.which("psql")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def psql(
    server: WireServer, *args: str, user: str = "analyst-eu"
) -> subprocess.CompletedProcess[str]:
    if PSQL is None:
        if os.environ.get("MESHGOV_REQUIRE_POSTGRES") == "1":
            pytest.fail("psql is not installed (apt-get install postgresql-client)")
        pytest.skip("psql is not installed (apt-get install postgresql-client)")
    return subprocess.run(
        [PSQL, server.dsn(user), "-X", "-v", "ON_ERROR_STOP=1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )


def test_select_shows_hashed_emails_and_eu_rows_only(any_wire: WireServer) -> None:
    done = psql(any_wire, "-A", "-t", "-F", "|", "-c",
                "SELECT email, region FROM customer.customers LIMIT 3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines()]
    assert len(rows) == 3
    for email, region in rows:
        assert HEX64.match(email), email
        assert region == "EU"


def test_hidden_column_is_denied_with_sqlstate_42501_and_the_cli_reason(wire: WireServer) -> None:
    done = psql(wire, "-v", "VERBOSITY=verbose", "-c",
                "SELECT failed_payment_count FROM marketing.customer_360")  # fmt: skip
    assert done.returncode != 0
    assert "42501" in done.stderr
    assert "failed_payment_count" in done.stderr and "hidden" in done.stderr


def test_schemas_tables_and_columns_list_only_what_the_principal_may_read(wire: WireServer) -> None:
    schemas = psql(wire, "-c", r"\dn")
    assert schemas.returncode == 0, schemas.stderr
    for schema in ("customer", "commerce", "marketing"):
        assert schema in schemas.stdout
    tables = psql(wire, "-c", r"\dt customer.*")
    assert tables.returncode == 0, tables.stderr
    assert "customers" in tables.stdout
    described = psql(wire, "-c", r"\d marketing.customer_360")
    assert described.returncode == 0, described.stderr
    assert "segment" in described.stdout
    # Restricted and unmasked for the analyst: hidden from the catalogue as from queries.
    assert "failed_payment_count" not in described.stdout


def test_a_principal_without_grants_sees_no_tables(wire: WireServer) -> None:
    done = psql(wire, "-c", r"\dt *.*", user="nobody")
    assert done.returncode == 0, done.stderr
    assert "customers" not in done.stdout and "orders" not in done.stdout


def test_databases_show_the_purpose_only(wire: WireServer) -> None:
    done = psql(wire, "-A", "-t", "-c", r"SELECT datname FROM pg_database")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["analytics"]
    conninfo = psql(wire, "-c", r"\conninfo")
    assert 'database "analytics" as user "analyst-eu"' in conninfo.stdout


def test_wrong_token_and_unknown_purpose(wire: WireServer) -> None:
    if PSQL is None:
        pytest.skip("psql is not installed")
    bad = subprocess.run(
        [PSQL, wire.dsn().replace("password=dev-analyst-eu", "password=nope"), "-c", "SELECT 1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "password authentication failed" in bad.stderr
    unknown = subprocess.run(
        [PSQL, wire.dsn(purpose="nope"), "-c", "SELECT 1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert unknown.returncode != 0
    assert 'database "nope" does not exist' in unknown.stderr
    assert "analyst-eu may use: analytics\n" in unknown.stderr  # only what its grants allow


def test_an_unknown_purpose_names_the_principals_purposes_all_for_the_guild(
    wire: WireServer,
) -> None:
    import psycopg

    from meshgov.gateway import registered_purposes

    registered = sorted(registered_purposes(wire.service.state.bundle))
    assert "fraud_detection" in registered
    for user, listed in (
        ("analyst-eu", ["analytics"]),
        ("nobody", ["none"]),
        ("guild", registered),
    ):
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(wire.dsn(user=user, purpose="nope"), connect_timeout=10)
        message = str(refused.value)
        assert 'database "nope" does not exist' in message
        assert f"{user} may use: {', '.join(listed)}" in message, message


def test_catalogue_refuses_server_state_and_role_names(wire: WireServer) -> None:
    for sql in (
        "SELECT * FROM pg_stat_activity",
        "SELECT 'postgres'::regrole",
        "SELECT pg_read_file('/etc/passwd')",
    ):
        done = psql(wire, "-c", sql)
        assert done.returncode != 0, sql
        assert "not available through meshgov" in done.stderr, (sql, done.stderr)
    # Not a catalogue query: the gateway refuses it as it refuses any unknown function.
    changed = psql(wire, "-v", "VERBOSITY=verbose", "-c", "SELECT set_config('role', 'x', false)")
    assert changed.returncode != 0 and "SET_CONFIG" in changed.stderr
    roles = psql(wire, "-A", "-t", "-c", "SELECT count(*) FROM pg_roles")
    assert roles.stdout.strip() == "0"
    who = psql(wire, "-A", "-t", "-c", "SELECT current_user, session_user")
    assert who.stdout.strip() == "analyst-eu|analyst-eu"
