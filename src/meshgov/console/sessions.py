"""Console sessions: a token is exchanged once for a random session id held in a cookie.

Sessions are kept in the service's store (table ``console_sessions``), so that they survive a
restart and every worker of a multi-worker ``meshgov serve`` knows them. The store holds neither
the session id nor the token: only sha256 of the session id, the principal's id, the token
registry's digest of the token (a revoked token ends its sessions) and the expiry. The CSRF token
of a session is derived from its id (an HMAC), so it is not stored either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshgov.core.principal import Principal
from meshgov.store.base import ConsoleSessionRecord, Store
from meshgov.tokens import TokenRegistry, token_digest

SESSION_COOKIE = "meshgov_session"
SESSION_SECONDS = 8 * 3600
PURGE_EVERY_SECONDS = 300.0
_CSRF_CONTEXT = b"meshgov console csrf v1"


@dataclass(frozen=True)
class ConsoleSession:
    id: str  # the random session id (only ever in the cookie and in this request's memory)
    principal: Principal
    expires: float

    @property
    def csrf(self) -> str:
        """The synchronizer token every state-changing form carries (derived, never stored)."""
        return hmac.new(self.id.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(self.csrf, sent)


def session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Open, find and close sessions in the store (expired ones are purged now and then)."""

    def __init__(
        self,
        store: Callable[[], Store],
        tokens: Callable[[], TokenRegistry],
        seconds: float = SESSION_SECONDS,
    ) -> None:
        self.seconds = seconds
        self._store = store
        self._tokens = tokens
        self._purged = 0.0

    def open(self, principal: Principal, token: str) -> ConsoleSession:
        now = time.time()
        store = self._store()
        if now - self._purged > PURGE_EVERY_SECONDS:
            self._purged = now
            store.purge_sessions(now)
        session_id = secrets.token_urlsafe(32)
        store.save_session(
            ConsoleSessionRecord(
                session_digest(session_id),
                principal.id,
                token_digest(token),
                now,
                now + self.seconds,
            )
        )
        return ConsoleSession(session_id, principal, now + self.seconds)

    def get(self, session_id: str | None) -> ConsoleSession | None:
        """The live session of a cookie: unexpired, and its token still registered."""
        if not session_id or len(session_id) > 128:
            return None
        record = self._store().session(session_digest(session_id), time.time())
        if record is None:
            return None
        principal = self._tokens().principals.get(record.token_digest)
        if principal is None or principal.id != record.principal:
            return None  # the token was revoked (or now names somebody else)
        return ConsoleSession(session_id, principal, record.expires_at)

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._store().delete_session(session_digest(session_id))
