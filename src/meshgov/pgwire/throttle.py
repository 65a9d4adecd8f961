"""Login throttling: failed logins per user name and per client address, in bounded memory.

After a failed login the next attempt for the same user name (or from the same address) waits,
twice as long after each further failure up to a cap (as PostgreSQL's ``auth_delay``, but
growing); past ``max_failures`` within the window the login is refused with the same ``28P01`` a
wrong password gets. The user name is counted whether or not the user exists, so the throttle
answers an unknown user as it answers a known one. A successful login forgets the user's
failures, not the address's: otherwise one valid account would reset its address's count
between guesses at others.

Each counter is an LRU map of at most ``max_tracked`` keys (user names are kept as 16-byte
digests, so a long name costs no more than a short one); entries older than the window are
dropped as new ones come in. A flood of distinct names beyond ``max_tracked`` within one window
evicts the least recently failed keys, whose counts restart: the per-address counter is what
limits such a flood from one address.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# 2**16 × any sensible first delay is past any sensible cap; bounds the float arithmetic.
_MAX_DOUBLINGS = 16


@dataclass(frozen=True)
class LoginLimits:
    """``max_failures*`` 0 = that counter is off (e.g. per address behind a pooler, where every
    client has the pooler's address)."""

    max_failures: int = 10
    max_failures_per_address: int = 100
    window_seconds: float = 300.0
    delay_seconds: float = 0.1
    max_delay_seconds: float = 2.0
    max_tracked: int = 10_000


@dataclass
class _Failures:
    first_at: float
    last_at: float
    count: int


class FailureCounter:
    """Failures per key within a window (fixed, from the key's first failure), LRU-bounded."""

    def __init__(
        self, max_failures: int, window_seconds: float, max_tracked: int, clock: Callable[[], float]
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.max_tracked = max_tracked
        self._clock = clock
        self._entries: OrderedDict[str | bytes, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def count(self, key: str | bytes) -> int:
        if not self.max_failures:
            return 0
        entry = self._entries.get(key)
        if entry is None:
            return 0
        if self._clock() - entry.first_at >= self.window_seconds:
            del self._entries[key]
            return 0
        return entry.count

    def exceeded(self, key: str | bytes) -> bool:
        return bool(self.max_failures) and self.count(key) >= self.max_failures

    def record(self, key: str | bytes) -> bool:
        """One more failure for ``key``; True when it has just reached the limit."""
        if not self.max_failures:
            return False
        now = self._clock()
        count = self.count(key)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Failures(now, now, 1)
        else:
            entry.last_at, entry.count = now, count + 1
            self._entries.move_to_end(key)
        self._prune(now)
        return count + 1 == self.max_failures

    def forget(self, key: str | bytes) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def _prune(self, now: float) -> None:
        # The map is ordered by last failure: the front holds the stalest keys (a key whose last
        # failure is older than the window started it even earlier, so it has expired).
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            if now - oldest.last_at < self.window_seconds and len(self._entries) <= (
                self.max_tracked
            ):
                break
            del self._entries[key]


class LoginThrottle:
    """The delay and refusal of logins, from the failures of the user name and the address."""

    def __init__(self, limits: LoginLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.users = FailureCounter(
            limits.max_failures, limits.window_seconds, limits.max_tracked, clock
        )
        self.addresses = FailureCounter(
            limits.max_failures_per_address, limits.window_seconds, limits.max_tracked, clock
        )

    def delay(self, user: str, address: str) -> float:
        """Seconds to wait before this login is looked at (0 when neither key has failed)."""
        failures = max(self.users.count(_user_key(user)), self.addresses.count(address))
        if failures == 0:
            return 0.0
        growing = self.limits.delay_seconds * float(2 ** min(failures - 1, _MAX_DOUBLINGS))
        return min(growing, self.limits.max_delay_seconds)

    def refused(self, user: str, address: str) -> bool:
        return self.users.exceeded(_user_key(user)) or self.addresses.exceeded(address)

    def failed(self, user: str, address: str) -> tuple[bool, bool]:
        """Count a failed login; which of (user, address) has just reached its limit."""
        return self.users.record(_user_key(user)), self.addresses.record(address)

    def succeeded(self, user: str) -> None:
        self.users.forget(_user_key(user))

    def clear(self) -> None:
        self.users.clear()
        self.addresses.clear()


def _user_key(user: str) -> bytes:
    return hashlib.blake2b(user.encode("utf-8", "surrogatepass"), digest_size=16).digest()
