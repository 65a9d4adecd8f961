"""What the service keeps: product versions, policy revisions, the active revision, decisions.

Two implementations share this interface and the same tests: ``sqlite.py`` (default) and
``postgres.py``. Times are UNIX seconds (float); JSON documents are stored as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from meshgov.errors import BackendUnavailable, InputError

PRODUCT_COLUMNS = "domain, name, version, manifest, publisher, published_at"
REVISION_COLUMNS = "id, author, created_at, modules, data, status, report"
DECISION_COLUMNS = "id, time, kind, principal, product, input_digest, allowed, result, revision"
SESSION_COLUMNS = "digest, principal, token_digest, created_at, expires_at"

# What a decision record is about: a release check, a publication, an authorization of SQL (and
# its execution: `execute` over HTTP, `console` from the console's query page, `wire` over the
# PostgreSQL wire protocol), an export, a streamed query result, an event subscription, an OPA
# Data API evaluation, or a Trino access-control call. The one list: recording takes a
# ``DecisionKind`` (checked by mypy) and the filters (HTTP, console) accept exactly these.
DecisionKind = Literal[
    "check",
    "publish",
    "authorize",
    "execute",
    "console",
    "wire",
    "export",
    "stream",
    "subscribe",
    "opa",
    "trino",
]
DECISION_KINDS: tuple[str, ...] = get_args(DecisionKind)

# Revision states: a revision is only activatable when it compiled and every test passed.
REVISION_VALID = "valid"
REVISION_FAILED = "failed"


@dataclass(frozen=True)
class ProductVersion:
    domain: str
    name: str
    version: str
    manifest: str  # the manifest as published (YAML or JSON text)
    publisher: str
    published_at: float

    @property
    def product_id(self) -> str:
        return f"{self.domain}/{self.name}"

    def row(self) -> tuple[Any, ...]:
        """Values in the order of ``PRODUCT_COLUMNS``."""
        return (
            self.domain,
            self.name,
            self.version,
            self.manifest,
            self.publisher,
            self.published_at,
        )


@dataclass(frozen=True)
class PolicyRevision:
    id: str  # the bundle's content hash
    author: str
    created_at: float
    modules: dict[str, str]
    data: dict[str, Any]
    status: str  # REVISION_VALID | REVISION_FAILED
    report: dict[str, Any] = field(default_factory=dict)  # compile/test/impact results

    @property
    def activatable(self) -> bool:
        return self.status == REVISION_VALID

    def row(self) -> tuple[Any, ...]:
        """Values in the order of ``REVISION_COLUMNS``, JSON documents as text."""
        return (
            self.id,
            self.author,
            self.created_at,
            json.dumps(self.modules),
            json.dumps(self.data),
            self.status,
            json.dumps(self.report),
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> PolicyRevision:
        return cls(
            row[0],
            row[1],
            row[2],
            json.loads(row[3]),
            json.loads(row[4]),
            row[5],
            json.loads(row[6]),
        )


@dataclass(frozen=True)
class Activation:
    seq: int
    revision: str
    actor: str
    activated_at: float


# What the guild did to a revision (the policy audit trail).
AUDIT_STAGED = "staged"
AUDIT_ACTIVATED = "activated"
AUDIT_ROLLED_BACK = "rolled_back"
AUDIT_ACTIONS = (AUDIT_STAGED, AUDIT_ACTIVATED, AUDIT_ROLLED_BACK)


@dataclass(frozen=True)
class PolicyAuditEvent:
    """One act on a policy revision: who staged, activated or rolled back to it, and when.

    ``previous`` is the revision that was active just before (for activations and rollbacks).
    """

    seq: int
    at: float
    actor: str
    action: str  # one of AUDIT_ACTIONS
    revision: str
    previous: str | None = None


def _storable_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes "?"
    return text.replace("\0", "\ufffd") if "\0" in text else text


def storable(value: Any) -> Any:
    """``value`` with every string (keys too) made storable: PostgreSQL refuses NUL in text and
    ``\\u0000`` or a lone surrogate in jsonb, and a lone surrogate cannot be encoded at all. A
    request's own text reaches a decision's reasons; one such record failed its whole batch, which
    the decision log retried for ever (every later decision unwritten). Non-finite floats (not
    JSON) become text."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass(frozen=True)
class DecisionRecord:
    id: str
    time: float
    kind: str  # one of DECISION_KINDS (read back from the store as text)
    principal: str
    product: str | None
    input_digest: str
    allowed: bool
    result: dict[str, Any]
    revision: str

    def row(self) -> tuple[Any, ...]:
        """Values in the order of ``DECISION_COLUMNS``, the result as JSON text; text a store
        cannot hold (NUL, lone surrogates) replaced (``storable``)."""
        return (
            self.id,
            self.time,
            self.kind,
            storable(self.principal),
            storable(self.product),
            self.input_digest,
            self.allowed,
            json.dumps(storable(self.result), default=str),
            storable(self.revision),
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> DecisionRecord:
        return cls(
            row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), json.loads(row[7]), row[8]
        )


@dataclass(frozen=True)
class ConsoleSessionRecord:
    """A web console session as stored: never the session id nor the token, only digests.

    ``digest`` is sha256 of the random session id (the id itself lives only in the browser's
    cookie); ``token_digest`` is the token registry's sha256 of the token the session was opened
    with, so that a revoked token ends its sessions in every worker.
    """

    digest: str
    principal: str
    token_digest: str
    created_at: float
    expires_at: float

    def row(self) -> tuple[Any, ...]:
        """Values in the order of ``SESSION_COLUMNS``."""
        return (self.digest, self.principal, self.token_digest, self.created_at, self.expires_at)


@dataclass(frozen=True)
class DecisionFilter:
    principal: str | None = None
    product: str | None = None
    allowed: bool | None = None
    since: float | None = None
    until: float | None = None
    kind: str | None = None
    limit: int = 100

    def params(self) -> tuple[Any, ...]:
        """Parameters of the stores' filter query: each condition is ``(x IS NULL OR col = x)``."""
        pairs = (self.principal, self.product, self.allowed, self.since, self.until, self.kind)
        return (*(value for value in pairs for _ in range(2)), self.limit)


class Store(Protocol):
    """Durable state of one service; every method raises ``BackendUnavailable`` on I/O faults."""

    url: str

    def publish(self, version: ProductVersion) -> None:
        """Record a product version; ``Conflict`` if that version already exists."""
        ...

    def latest_products(self) -> list[ProductVersion]: ...

    def products_signature(self) -> tuple[int, float]:
        """(number of stored versions, latest publication time): changes with every
        publication, and costs one aggregate query (the service polls it every second)."""
        ...

    def product_versions(self, domain: str, name: str) -> list[ProductVersion]:
        """Every version of one product, oldest first."""
        ...

    def save_revision(self, revision: PolicyRevision) -> None:
        """Insert or replace a policy revision (same content hash = same revision)."""
        ...

    def revision(self, revision_id: str) -> PolicyRevision | None: ...

    def revisions(self) -> list[PolicyRevision]: ...

    def activate(self, revision_id: str, actor: str, at: float) -> Activation: ...

    def activations(self) -> list[Activation]:
        """Activation history, oldest first; the last one is the active revision."""
        ...

    def append_audit(
        self, actor: str, action: str, revision: str, previous: str | None, at: float
    ) -> PolicyAuditEvent:
        """Record one act on a policy revision in the durable audit trail."""
        ...

    def audit(self, revision: str | None = None) -> list[PolicyAuditEvent]:
        """The policy audit trail (of one revision when given), oldest first."""
        ...

    def append_decisions(self, records: Sequence[DecisionRecord]) -> None: ...

    def decisions(self, query: DecisionFilter) -> list[DecisionRecord]:
        """Matching decisions, newest first."""
        ...

    def count_decisions(self) -> int: ...

    def decision(self, decision_id: str) -> DecisionRecord | None:
        """One decision by its id."""
        ...

    def save_session(self, session: ConsoleSessionRecord) -> None:
        """Record a new console session (``purge_sessions`` drops the expired ones)."""
        ...

    def session(self, digest: str, now: float) -> ConsoleSessionRecord | None:
        """The unexpired session with this digest, if any."""
        ...

    def delete_session(self, digest: str) -> None: ...

    def purge_sessions(self, now: float) -> int:
        """Drop expired sessions; how many were dropped."""
        ...

    def close(self) -> None: ...


def version_order(version: str) -> tuple[int, int, int, int, str]:
    """SemVer precedence (a release after its pre-releases); non-SemVer sorts first."""
    from meshgov.core.manifest import SEMVER

    match = SEMVER.match(version)
    if match is None:
        return (-1, -1, -1, -1, version)
    major, minor, patch, pre = match.group(1), match.group(2), match.group(3), match.group(4)
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre or "")


def latest_by_version(versions: Sequence[ProductVersion]) -> list[ProductVersion]:
    """The highest version of each product (by SemVer, then by publication time)."""
    latest: dict[str, ProductVersion] = {}
    for version in versions:
        current = latest.get(version.product_id)
        if current is None or (version_order(version.version), version.published_at) > (
            version_order(current.version),
            current.published_at,
        ):
            latest[version.product_id] = version
    return [latest[key] for key in sorted(latest)]


def open_store(url: str, *, schema: str | None = None) -> Store:
    """``sqlite:///path`` or ``postgresql://…`` (``schema`` isolates a PostgreSQL store)."""
    if url.startswith("sqlite://"):
        from meshgov.store.sqlite import SqliteStore

        return SqliteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from meshgov.store.postgres import PostgresStore

        return PostgresStore(url, schema=schema or "meshgov")
    raise InputError(f"unknown store URL {url!r}; use sqlite:///path or postgresql://…")


def unavailable(store: str, exc: Exception) -> BackendUnavailable:
    # The driver's text may carry the DSN; keep only the exception type and first line.
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return BackendUnavailable(f"{store} store unavailable: {type(exc).__name__}: {first_line}")
