"""The adversarial suite through the wire: no attack, sent as a psycopg client sends it, leaks.

The server runs with the suite's hash key (so its leak detector recognises pseudonyms of hidden
rows) on DuckDB and on PostgreSQL; each attack goes through the simple protocol and, as a bound
statement, through the extended protocol. Whatever the client receives (rows in text form, or the
error) is checked as the in-process suite checks it.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from wire_server import MESH, WireServer, serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
from adversarial_world import CUSTOMER_ID, HASH_KEY, Secrets, read_secrets
from test_adversarial import ATTACKS, _render

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return read_secrets()


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def adversarial_wire(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_admin_dsn: str,
    catalogue_prefix: str,
) -> Iterator[tuple[str, WireServer]]:
    tmp = tmp_path_factory.mktemp("adversarial-wire")
    key = tmp / "key"
    key.write_bytes(HASH_KEY)
    overrides: dict[str, object] = {"hash_key_source": f"file:{key}"}
    if request.param == "duckdb":
        yield from (
            (request.param, s) for s in serve(tmp, pg_admin_dsn, catalogue_prefix, **overrides)
        )
        return
    from meshgov.catalog import load_catalog
    from meshgov.engines import postgres

    name = f"meshgov_wire_adv_{uuid.uuid4().hex[:10]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    try:
        postgres.load(load_catalog(MESH), dsn, HASH_KEY)
        for server in serve(tmp, pg_admin_dsn, catalogue_prefix, query_engine=dsn, **overrides):
            yield request.param, server
    finally:
        postgres.drop_database(pg_admin_dsn, name)


def _received(conn: object, sql: str, prepare: bool) -> str:
    import psycopg

    try:
        rows = conn.execute(sql, prepare=prepare).fetchall()  # type: ignore[attr-defined]
    except psycopg.Error as exc:
        return f"{exc.sqlstate} {exc}"
    return "\n".join("|".join("" if v is None else str(v) for v in row) for row in rows)


def test_attacks_through_the_wire_reveal_nothing(
    adversarial_wire: tuple[str, WireServer], secrets: Secrets
) -> None:
    import psycopg

    engine, server = adversarial_wire
    checked = 0
    conn = psycopg.connect(server.dsn(), autocommit=True)  # errors leave autocommit usable
    for attack in ATTACKS:
        if attack.only is not None and attack.only != engine:
            continue
        sql = _render(attack, secrets)
        if "%" in sql:
            continue  # psycopg reads % as a placeholder marker in client-side formatting
        for prepare in (False, True):
            received = _received(conn, sql, prepare)
            leaked = sorted(v for v in secrets.raw_values if v in received and v not in sql)
            assert not leaked, (attack.name, leaked[:3])
            us_ids = sorted(
                i
                for i in set(CUSTOMER_ID.findall(received)) & secrets.us_customer_ids
                if i not in sql
            )
            assert not us_ids, (attack.name, us_ids[:3])
            assert not any(h in received for h in secrets.us_email_hashes), attack.name
            assert HASH_KEY.decode() not in received, attack.name
            checked += 1
    conn.close()
    assert checked >= 100
