"""The production store: PostgreSQL through psycopg 3, in its own schema (default ``meshgov``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from meshgov.errors import Conflict
from meshgov.store.base import (
    PRODUCT_COLUMNS,
    SESSION_COLUMNS,
    Activation,
    ConsoleSessionRecord,
    DecisionFilter,
    DecisionRecord,
    PolicyAuditEvent,
    PolicyRevision,
    ProductVersion,
    latest_by_version,
    unavailable,
)

SCHEMA_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS product_versions (
  domain TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
  manifest TEXT NOT NULL, publisher TEXT NOT NULL, published_at DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (domain, name, version))""",
    """CREATE TABLE IF NOT EXISTS policy_revisions (
  id TEXT PRIMARY KEY, author TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
  modules JSONB NOT NULL, data JSONB NOT NULL, status TEXT NOT NULL, report JSONB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS policy_activations (
  seq BIGSERIAL PRIMARY KEY, revision TEXT NOT NULL REFERENCES policy_revisions(id),
  actor TEXT NOT NULL, activated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS policy_audit (
  seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, revision TEXT NOT NULL, previous TEXT)""",
    """CREATE TABLE IF NOT EXISTS decisions (
  id TEXT PRIMARY KEY, time DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL,
  principal TEXT NOT NULL, product TEXT, input_digest TEXT NOT NULL, allowed BOOLEAN NOT NULL,
  result JSONB NOT NULL, revision TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time)",
    """CREATE TABLE IF NOT EXISTS console_sessions (
  digest TEXT PRIMARY KEY, principal TEXT NOT NULL, token_digest TEXT NOT NULL,
  created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS console_sessions_expiry ON console_sessions(expires_at)",
)

# JSONB read back as text, as the shared row decoders expect.
_REVISION_COLUMNS = "id, author, created_at, modules::text, data::text, status, report::text"
_DECISION_COLUMNS = (
    "id, time, kind, principal, product, input_digest, allowed, result::text, revision"
)


class PostgresStore:
    """One connection guarded by a lock; the schema is created on start."""

    def __init__(self, dsn: str, *, schema: str = "meshgov") -> None:
        self.url = dsn
        self.schema = schema
        self._lock = threading.Lock()
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
            self._conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
            self._conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            for statement in SCHEMA_STATEMENTS:
                self._conn.execute(statement.encode())
        except psycopg.Error as exc:
            raise unavailable("PostgreSQL", exc) from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            try:
                with self._conn.transaction():
                    yield self._conn
            except psycopg.errors.UniqueViolation:
                raise
            except psycopg.Error as exc:
                raise unavailable("PostgreSQL", exc) from None

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._conn.execute(query.encode(), params).fetchall())
            except psycopg.Error as exc:
                raise unavailable("PostgreSQL", exc) from None

    def publish(self, version: ProductVersion) -> None:
        try:
            with self._transaction() as conn:
                conn.execute(
                    f"INSERT INTO product_versions ({PRODUCT_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s)".encode(),
                    version.row(),
                )
        except psycopg.errors.UniqueViolation:
            raise Conflict(
                f"{version.product_id} version {version.version} is already published"
            ) from None

    def latest_products(self) -> list[ProductVersion]:
        rows = self._rows(
            f"SELECT {PRODUCT_COLUMNS} FROM product_versions ORDER BY domain, name, published_at"
        )
        return latest_by_version([ProductVersion(*row) for row in rows])

    def products_signature(self) -> tuple[int, float]:
        rows = self._rows("SELECT count(*), max(published_at) FROM product_versions")
        count, latest = rows[0] if rows else (0, None)
        return int(count or 0), float(latest or 0.0)

    def product_versions(self, domain: str, name: str) -> list[ProductVersion]:
        rows = self._rows(
            f"SELECT {PRODUCT_COLUMNS} FROM product_versions WHERE domain = %s AND name = %s "
            "ORDER BY published_at",
            (domain, name),
        )
        return [ProductVersion(*row) for row in rows]

    def save_revision(self, revision: PolicyRevision) -> None:
        with self._transaction() as conn:
            conn.execute(
                b"INSERT INTO policy_revisions"
                b" (id, author, created_at, modules, data, status, report)"
                b" VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s::jsonb)"
                b" ON CONFLICT (id) DO UPDATE SET author = EXCLUDED.author,"
                b" created_at = EXCLUDED.created_at, modules = EXCLUDED.modules,"
                b" data = EXCLUDED.data, status = EXCLUDED.status, report = EXCLUDED.report",
                revision.row(),
            )

    def revision(self, revision_id: str) -> PolicyRevision | None:
        rows = self._rows(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions WHERE id = %s", (revision_id,)
        )
        return PolicyRevision.from_row(rows[0]) if rows else None

    def revisions(self) -> list[PolicyRevision]:
        rows = self._rows(f"SELECT {_REVISION_COLUMNS} FROM policy_revisions ORDER BY created_at")
        return [PolicyRevision.from_row(row) for row in rows]

    def activate(self, revision_id: str, actor: str, at: float) -> Activation:
        with self._transaction() as conn:
            row = conn.execute(
                b"INSERT INTO policy_activations (revision, actor, activated_at)"
                b" VALUES (%s, %s, %s) RETURNING seq",
                (revision_id, actor, at),
            ).fetchone()
        return Activation(int(row[0]) if row else 0, revision_id, actor, at)

    def activations(self) -> list[Activation]:
        rows = self._rows(
            "SELECT seq, revision, actor, activated_at FROM policy_activations ORDER BY seq"
        )
        return [Activation(*row) for row in rows]

    def append_audit(
        self, actor: str, action: str, revision: str, previous: str | None, at: float
    ) -> PolicyAuditEvent:
        with self._transaction() as conn:
            row = conn.execute(
                b"INSERT INTO policy_audit (at, actor, action, revision, previous)"
                b" VALUES (%s, %s, %s, %s, %s) RETURNING seq",
                (at, actor, action, revision, previous),
            ).fetchone()
        return PolicyAuditEvent(int(row[0]) if row else 0, at, actor, action, revision, previous)

    def audit(self, revision: str | None = None) -> list[PolicyAuditEvent]:
        rows = self._rows(
            "SELECT seq, at, actor, action, revision, previous FROM policy_audit "
            "WHERE (%s::text IS NULL OR revision = %s::text) ORDER BY seq",
            (revision, revision),
        )
        return [PolicyAuditEvent(*row) for row in rows]

    def append_decisions(self, records: Sequence[DecisionRecord]) -> None:
        if not records:
            return
        with self._transaction() as conn, conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO decisions ({_DECISION_COLUMNS.replace('::text', '')}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) "
                "ON CONFLICT (id) DO NOTHING".encode(),
                [r.row() for r in records],
            )

    def decisions(self, query: DecisionFilter) -> list[DecisionRecord]:
        rows = self._rows(
            f"SELECT {_DECISION_COLUMNS} FROM decisions "
            "WHERE (%s::text IS NULL OR principal = %s::text) "
            "AND (%s::text IS NULL OR product = %s::text) "
            "AND (%s::boolean IS NULL OR allowed = %s::boolean) "
            "AND (%s::float8 IS NULL OR time >= %s::float8) "
            "AND (%s::float8 IS NULL OR time <= %s::float8) "
            "AND (%s::text IS NULL OR kind = %s::text) "
            "ORDER BY time DESC LIMIT %s",
            query.params(),
        )
        return [DecisionRecord.from_row(r) for r in rows]

    def count_decisions(self) -> int:
        return int(self._rows("SELECT count(*) FROM decisions")[0][0])

    def decision(self, decision_id: str) -> DecisionRecord | None:
        rows = self._rows(
            f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE id = %s", (decision_id,)
        )
        return DecisionRecord.from_row(rows[0]) if rows else None

    def save_session(self, session: ConsoleSessionRecord) -> None:
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO console_sessions ({SESSION_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (digest) DO NOTHING".encode(),
                session.row(),
            )

    def session(self, digest: str, now: float) -> ConsoleSessionRecord | None:
        rows = self._rows(
            f"SELECT {SESSION_COLUMNS} FROM console_sessions WHERE digest = %s AND expires_at > %s",
            (digest, now),
        )
        return ConsoleSessionRecord(*rows[0]) if rows else None

    def delete_session(self, digest: str) -> None:
        with self._transaction() as conn:
            conn.execute(b"DELETE FROM console_sessions WHERE digest = %s", (digest,))

    def purge_sessions(self, now: float) -> int:
        with self._transaction() as conn:
            cursor = conn.execute(b"DELETE FROM console_sessions WHERE expires_at <= %s", (now,))
            return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
