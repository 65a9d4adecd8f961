"""The default store: one SQLite file (WAL mode) under ``.meshgov/``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meshgov.errors import Conflict, InputError
from meshgov.store.base import (
    DECISION_COLUMNS,
    PRODUCT_COLUMNS,
    REVISION_COLUMNS,
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS product_versions (
  domain TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
  manifest TEXT NOT NULL, publisher TEXT NOT NULL, published_at REAL NOT NULL,
  PRIMARY KEY (domain, name, version));
CREATE TABLE IF NOT EXISTS policy_revisions (
  id TEXT PRIMARY KEY, author TEXT NOT NULL, created_at REAL NOT NULL,
  modules TEXT NOT NULL, data TEXT NOT NULL, status TEXT NOT NULL, report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_activations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, revision TEXT NOT NULL REFERENCES policy_revisions(id),
  actor TEXT NOT NULL, activated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS policy_audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, revision TEXT NOT NULL, previous TEXT);
CREATE TABLE IF NOT EXISTS decisions (
  id TEXT PRIMARY KEY, time REAL NOT NULL, kind TEXT NOT NULL, principal TEXT NOT NULL,
  product TEXT, input_digest TEXT NOT NULL, allowed INTEGER NOT NULL, result TEXT NOT NULL,
  revision TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
CREATE TABLE IF NOT EXISTS console_sessions (
  digest TEXT PRIMARY KEY, principal TEXT NOT NULL, token_digest TEXT NOT NULL,
  created_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_expiry ON console_sessions(expires_at);
"""


def path_of(url: str) -> Path:
    """``sqlite:///relative/file.db`` or ``sqlite:////abs/file.db`` → the file path."""
    raw = url.removeprefix("sqlite://")
    if not raw.startswith("/") or raw == "/":
        raise InputError(f"bad SQLite store URL {url!r}; use sqlite:///path/to/file.db")
    return Path(raw[1:])


class SqliteStore:
    """Thread-safe through one connection guarded by a lock (SQLite serialises writes anyway)."""

    def __init__(self, url: str) -> None:
        self.url = url
        path = path_of(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise unavailable("SQLite", exc) from None
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise unavailable("SQLite", exc) from None

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise unavailable("SQLite", exc) from None

    def publish(self, version: ProductVersion) -> None:
        try:
            with self._transaction() as conn:
                conn.execute(
                    f"INSERT INTO product_versions ({PRODUCT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    version.row(),
                )
        except sqlite3.IntegrityError:
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
            f"SELECT {PRODUCT_COLUMNS} FROM product_versions WHERE domain = ? AND name = ? "
            "ORDER BY published_at",
            (domain, name),
        )
        return [ProductVersion(*row) for row in rows]

    def save_revision(self, revision: PolicyRevision) -> None:
        with self._transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO policy_revisions ({REVISION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                revision.row(),
            )

    def revision(self, revision_id: str) -> PolicyRevision | None:
        rows = self._rows(
            f"SELECT {REVISION_COLUMNS} FROM policy_revisions WHERE id = ?", (revision_id,)
        )
        return PolicyRevision.from_row(rows[0]) if rows else None

    def revisions(self) -> list[PolicyRevision]:
        rows = self._rows(f"SELECT {REVISION_COLUMNS} FROM policy_revisions ORDER BY created_at")
        return [PolicyRevision.from_row(row) for row in rows]

    def activate(self, revision_id: str, actor: str, at: float) -> Activation:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO policy_activations (revision, actor, activated_at) VALUES (?, ?, ?)",
                (revision_id, actor, at),
            )
            seq = int(cursor.lastrowid or 0)
        return Activation(seq, revision_id, actor, at)

    def activations(self) -> list[Activation]:
        rows = self._rows(
            "SELECT seq, revision, actor, activated_at FROM policy_activations ORDER BY seq"
        )
        return [Activation(*row) for row in rows]

    def append_audit(
        self, actor: str, action: str, revision: str, previous: str | None, at: float
    ) -> PolicyAuditEvent:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO policy_audit (at, actor, action, revision, previous) "
                "VALUES (?, ?, ?, ?, ?)",
                (at, actor, action, revision, previous),
            )
            seq = int(cursor.lastrowid or 0)
        return PolicyAuditEvent(seq, at, actor, action, revision, previous)

    def audit(self, revision: str | None = None) -> list[PolicyAuditEvent]:
        rows = self._rows(
            "SELECT seq, at, actor, action, revision, previous FROM policy_audit "
            "WHERE (? IS NULL OR revision = ?) ORDER BY seq",
            (revision, revision),
        )
        return [PolicyAuditEvent(*row) for row in rows]

    def append_decisions(self, records: Sequence[DecisionRecord]) -> None:
        if not records:
            return
        with self._transaction() as conn:
            conn.executemany(
                f"INSERT OR IGNORE INTO decisions ({DECISION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [r.row() for r in records],
            )

    def decisions(self, query: DecisionFilter) -> list[DecisionRecord]:
        rows = self._rows(
            f"SELECT {DECISION_COLUMNS} FROM decisions "
            "WHERE (? IS NULL OR principal = ?) AND (? IS NULL OR product = ?) "
            "AND (? IS NULL OR allowed = ?) AND (? IS NULL OR time >= ?) "
            "AND (? IS NULL OR time <= ?) AND (? IS NULL OR kind = ?) "
            "ORDER BY time DESC LIMIT ?",
            query.params(),
        )
        return [DecisionRecord.from_row(r) for r in rows]

    def count_decisions(self) -> int:
        return int(self._rows("SELECT count(*) FROM decisions")[0][0])

    def decision(self, decision_id: str) -> DecisionRecord | None:
        rows = self._rows(f"SELECT {DECISION_COLUMNS} FROM decisions WHERE id = ?", (decision_id,))
        return DecisionRecord.from_row(rows[0]) if rows else None

    def save_session(self, session: ConsoleSessionRecord) -> None:
        with self._transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO console_sessions ({SESSION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?)",
                session.row(),
            )

    def session(self, digest: str, now: float) -> ConsoleSessionRecord | None:
        rows = self._rows(
            f"SELECT {SESSION_COLUMNS} FROM console_sessions WHERE digest = ? AND expires_at > ?",
            (digest, now),
        )
        return ConsoleSessionRecord(*rows[0]) if rows else None

    def delete_session(self, digest: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM console_sessions WHERE digest = ?", (digest,))

    def purge_sessions(self, now: float) -> int:
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
            return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
