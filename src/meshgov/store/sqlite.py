"""The default store: one SQLite file (WAL mode) under ``.meshgov/``."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meshgov.errors import Conflict, InputError
from meshgov.store.base import (
    Activation,
    DecisionFilter,
    DecisionRecord,
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
CREATE TABLE IF NOT EXISTS decisions (
  id TEXT PRIMARY KEY, time REAL NOT NULL, kind TEXT NOT NULL, principal TEXT NOT NULL,
  product TEXT, input_digest TEXT NOT NULL, allowed INTEGER NOT NULL, result TEXT NOT NULL,
  revision TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
"""

_PRODUCT_COLUMNS = "domain, name, version, manifest, publisher, published_at"
_REVISION_COLUMNS = "id, author, created_at, modules, data, status, report"
_DECISION_COLUMNS = "id, time, kind, principal, product, input_digest, allowed, result, revision"


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
                    f"INSERT INTO product_versions ({_PRODUCT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        version.domain,
                        version.name,
                        version.version,
                        version.manifest,
                        version.publisher,
                        version.published_at,
                    ),
                )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"{version.product_id} version {version.version} is already published"
            ) from None

    def latest_products(self) -> list[ProductVersion]:
        rows = self._rows(
            f"SELECT {_PRODUCT_COLUMNS} FROM product_versions ORDER BY domain, name, published_at"
        )
        return latest_by_version([ProductVersion(*row) for row in rows])

    def product_versions(self, domain: str, name: str) -> list[ProductVersion]:
        rows = self._rows(
            f"SELECT {_PRODUCT_COLUMNS} FROM product_versions WHERE domain = ? AND name = ? "
            "ORDER BY published_at",
            (domain, name),
        )
        return [ProductVersion(*row) for row in rows]

    def save_revision(self, revision: PolicyRevision) -> None:
        with self._transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO policy_revisions ({_REVISION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    revision.id,
                    revision.author,
                    revision.created_at,
                    json.dumps(revision.modules),
                    json.dumps(revision.data),
                    revision.status,
                    json.dumps(revision.report),
                ),
            )

    @staticmethod
    def _revision(row: tuple[Any, ...]) -> PolicyRevision:
        return PolicyRevision(
            row[0],
            row[1],
            row[2],
            json.loads(row[3]),
            json.loads(row[4]),
            row[5],
            json.loads(row[6]),
        )

    def revision(self, revision_id: str) -> PolicyRevision | None:
        rows = self._rows(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions WHERE id = ?", (revision_id,)
        )
        return self._revision(rows[0]) if rows else None

    def revisions(self) -> list[PolicyRevision]:
        rows = self._rows(f"SELECT {_REVISION_COLUMNS} FROM policy_revisions ORDER BY created_at")
        return [self._revision(row) for row in rows]

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

    def append_decisions(self, records: Sequence[DecisionRecord]) -> None:
        if not records:
            return
        with self._transaction() as conn:
            conn.executemany(
                f"INSERT OR IGNORE INTO decisions ({_DECISION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.id,
                        r.time,
                        r.kind,
                        r.principal,
                        r.product,
                        r.input_digest,
                        int(r.allowed),
                        json.dumps(r.result, default=str),
                        r.revision,
                    )
                    for r in records
                ],
            )

    def decisions(self, query: DecisionFilter) -> list[DecisionRecord]:
        allowed = None if query.allowed is None else int(query.allowed)
        rows = self._rows(
            f"SELECT {_DECISION_COLUMNS} FROM decisions "
            "WHERE (? IS NULL OR principal = ?) AND (? IS NULL OR product = ?) "
            "AND (? IS NULL OR allowed = ?) AND (? IS NULL OR time >= ?) "
            "AND (? IS NULL OR time <= ?) AND (? IS NULL OR kind = ?) "
            "ORDER BY time DESC LIMIT ?",
            (
                query.principal,
                query.principal,
                query.product,
                query.product,
                allowed,
                allowed,
                query.since,
                query.since,
                query.until,
                query.until,
                query.kind,
                query.kind,
                query.limit,
            ),
        )
        return [
            DecisionRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), json.loads(r[7]), r[8])
            for r in rows
        ]

    def count_decisions(self) -> int:
        return int(self._rows("SELECT count(*) FROM decisions")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
