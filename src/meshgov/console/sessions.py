"""Console sessions: a token is exchanged once for a random session id held in a cookie.

The token itself is never kept (only the principal it names). Sessions live in this process's
memory: a restart logs everybody out, and with several workers a session is known only to the
worker that opened it (the console is meant for one-worker ``meshgov serve``; see docs/console.md).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from meshgov.core.principal import Principal

SESSION_COOKIE = "meshgov_session"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    principal: Principal
    csrf: str  # the synchronizer token every state-changing form carries
    expires: float

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(self.csrf, sent)


class Sessions:
    """Open sessions by id (bounded; expired ones are dropped when met)."""

    def __init__(self, seconds: float = SESSION_SECONDS) -> None:
        self.seconds = seconds
        self._by_id: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def open(self, principal: Principal) -> ConsoleSession:
        session = ConsoleSession(
            secrets.token_urlsafe(32),
            principal,
            secrets.token_urlsafe(32),
            time.time() + self.seconds,
        )
        with self._lock:
            if len(self._by_id) >= MAX_SESSIONS:
                now = time.time()
                self._by_id = {k: s for k, s in self._by_id.items() if s.expires > now}
                if len(self._by_id) >= MAX_SESSIONS:
                    oldest = min(self._by_id.values(), key=lambda s: s.expires)
                    del self._by_id[oldest.id]
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> ConsoleSession | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires <= time.time():
                del self._by_id[session_id]
                return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._by_id.pop(session_id, None)
