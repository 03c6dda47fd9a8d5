"""Rate limiting of failed SMTP AUTH attempts, per client address and per login name.

Owns: counting failures in a sliding window and saying when a key is locked out. The
submission server consults it before checking a password (a locked-out attempt is not
checked at all, so guessing gains nothing) and delays every failure. Per-peer limits
stop one client trying many logins; per-login limits stop many clients (or one behind
many addresses) guessing one password. Memory is bounded: keys without recent failures
are dropped, and at most ``max_keys`` are tracked.

Must not import anything outside the standard library. The clock is injectable.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthLimits:
    max_failures_per_peer: int = 20
    max_failures_per_login: int = 10
    window_seconds: float = 900.0
    failure_delay_seconds: float = 2.0
    max_keys: int = 10_000


class AuthFailureLimiter:
    def __init__(self, limits: AuthLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, peer: str, login: str) -> bool:
        """True when either the client address or the login is over its limit."""
        return (
            self._count("peer:" + peer) >= self._limits.max_failures_per_peer
            or self._count("login:" + login.casefold()) >= self._limits.max_failures_per_login
        )

    def record_failure(self, peer: str, login: str) -> None:
        now = self._clock()
        for key in ("peer:" + peer, "login:" + login.casefold()):
            stamps = self._failures.pop(key, None) or deque()
            stamps.append(now)
            self._failures[key] = stamps  # most recently failed keys at the end
        while len(self._failures) > self._limits.max_keys:
            self._failures.popitem(last=False)

    def record_success(self, login: str) -> None:
        """A correct password clears the login's count (not the peer's: one valid
        account must not let a client reset its budget for guessing others)."""
        self._failures.pop("login:" + login.casefold(), None)

    def _count(self, key: str) -> int:
        stamps = self._failures.get(key)
        if not stamps:
            return 0
        horizon = self._clock() - self._limits.window_seconds
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return 0
        return len(stamps)
