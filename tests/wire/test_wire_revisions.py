"""A policy activation changes the answers of sessions already open, whatever the wire caches.

The wire caches what depends only on a statement's text (its split and parse) and a result's
Arrow schema (its RowDescription); every query is still authorised for the active revision. Here
the fraud investigator (``pii`` clearance, purpose ``fraud_detection``) reads e-mails in clear;
a revision that no longer lets that purpose see PII is activated while the connection is open,
and the same texts — the simple protocol, the extended one, a statement prepared before the
activation — answer masked values at once.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import psycopg
import yaml
from wire_server import serve

SQL = "SELECT email FROM customer.customers ORDER BY customer_id LIMIT 3"


def _simple(connection: psycopg.Connection) -> list[str]:
    """The rows of ``SQL`` through the simple query protocol (libpq's PQexec)."""
    result = connection.pgconn.exec_(SQL.encode())
    assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message
    return [(result.get_value(row, 0) or b"").decode() for row in range(result.ntuples)]


def _extended(connection: psycopg.Connection, prepare: bool) -> list[str]:
    return [row[0] for row in connection.execute(SQL, prepare=prepare).fetchall()]


def test_policy_activation_changes_the_answer_on_an_open_connection(tmp_path: Path) -> None:
    with contextlib.contextmanager(serve)(tmp_path, "", "unused_", pg_catalog_dsn="") as server:
        dsn = server.dsn("fraud-investigator", "fraud_detection")
        with psycopg.connect(dsn, autocommit=True) as connection:
            before = _simple(connection)
            assert before == _extended(connection, False) == _extended(connection, True)
            assert len(before) == 3 and all("@" in email for email in before)

            service = server.service
            purposes = copy.deepcopy(
                service.state.bundle.data["registry"]["purposes"]  # type: ignore[attr-defined]
            )
            purposes["fraud_detection"]["pii"] = False
            staged = service.stage_file(  # type: ignore[attr-defined]
                "guild", "data/purposes.yaml", yaml.safe_dump(purposes)
            )
            assert staged.activatable, staged.report
            service.activate("guild", staged.id)  # type: ignore[attr-defined]

            after = _simple(connection)
            assert after == _extended(connection, False) == _extended(connection, True)
            assert len(after) == 3
            assert not any("@" in email for email in after)  # masked now
            assert all(a != b for a, b in zip(after, before, strict=True))
