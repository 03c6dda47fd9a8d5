"""``LoginThrottle``: failed-login delays and rate limits per peer address and per login.

Owns the sliding-window failure counts; shared by every session of one server so that a
password guesser cannot reset it by reconnecting. The clock is injected (tests drive a
fake one); the session does the actual waiting with its own injectable sleep.

Must not import anything outside the standard library.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class LoginThrottle:
    """Counts failures in a sliding window; answers how long to delay and whether to
    refuse outright."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        window: float = 300.0,
        max_failures_per_peer: int = 30,
        max_failures_per_login: int = 10,
        base_delay: float = 1.0,
        step_delay: float = 0.5,
        max_delay: float = 5.0,
    ) -> None:
        self._clock = clock
        self._window = window
        self._max_peer = max_failures_per_peer
        self._max_login = max_failures_per_login
        self._base = base_delay
        self._step = step_delay
        self._max_delay = max_delay
        self._by_peer: dict[str, deque[float]] = {}
        self._by_login: dict[str, deque[float]] = {}

    def _recent(self, table: dict[str, deque[float]], key: str) -> int:
        stamps = table.get(key)
        if stamps is None:
            return 0
        horizon = self._clock() - self._window
        while stamps and stamps[0] < horizon:
            stamps.popleft()
        if not stamps:
            del table[key]
            return 0
        return len(stamps)

    def is_blocked(self, peer: str, login: str | None) -> bool:
        """Too many recent failures from this peer or for this login: refuse without
        even asking the authenticator."""
        if self._recent(self._by_peer, peer) >= self._max_peer:
            return True
        return login is not None and self._recent(self._by_login, login.lower()) >= self._max_login

    def record_failure(self, peer: str, login: str | None) -> float:
        """Note a failure; returns the delay (seconds) before answering it, growing
        with the number of recent failures from the peer."""
        now = self._clock()
        self._by_peer.setdefault(peer, deque()).append(now)
        if login is not None:
            self._by_login.setdefault(login.lower(), deque()).append(now)
        failures = max(self._recent(self._by_peer, peer), 1)
        return min(self._base + self._step * (failures - 1), self._max_delay)

    def record_success(self, peer: str, login: str) -> None:
        """A correct password clears the login's count (the peer's stays: one peer may
        guess many logins)."""
        self._by_login.pop(login.lower(), None)
