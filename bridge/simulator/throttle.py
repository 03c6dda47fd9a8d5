"""Outlook throttling per (app, mailbox) and the request counters tests read (§4).

Owns: the concurrency gate (4 in flight → 429 ApplicationThrottled "Application is over
its MailboxConcurrency limit."), the sliding request budget (10,000 per 600 s by
default), and per-mailbox ``Counters``. ``max_concurrency`` records the highest number
of requests the client had in flight at once *including* the one that was refused, so a
client that ever fires a fifth concurrent request is visible. Must not import anything
from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import GraphError


@dataclass(frozen=True, slots=True)
class Counters:
    requests: int
    max_concurrency: int
    by_kind: dict[str, int]
    throttled: int = 0
    in_flight: int = 0


@dataclass
class _MailboxStats:
    requests: int = 0
    max_concurrency: int = 0
    throttled: int = 0
    in_flight: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)


class Throttle:
    def __init__(
        self,
        clock: Callable[[], float],
        *,
        concurrency: int = 4,
        budget: int = 10_000,
        window: float = 600.0,
        retry_after: float = 1.0,
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.concurrency = concurrency
        self.budget = budget
        self.window = window
        self.retry_after = retry_after
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._history: dict[tuple[str, str], deque[float]] = {}
        self._stats: dict[str, _MailboxStats] = {}

    def acquire(self, app_id: str, mailbox_id: str, kind: str, method: str) -> None:
        """Admit one request or raise the 429 Graph would send."""
        key = (app_id, mailbox_id)
        with self._lock:
            stats = self._stats.setdefault(mailbox_id, _MailboxStats())
            stats.requests += 1
            stats.by_kind[f"{method} {kind}"] += 1
            attempted = sum(n for (a, mb), n in self._in_flight.items() if mb == mailbox_id) + 1
            stats.max_concurrency = max(stats.max_concurrency, attempted)
            if self._in_flight[key] >= self.concurrency:
                stats.throttled += 1
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    headers={"Retry-After": _fmt(self.retry_after)},
                )
            now = self.clock()
            hist = self._history.setdefault(key, deque())
            while hist and hist[0] <= now - self.window:
                hist.popleft()
            if len(hist) >= self.budget:
                stats.throttled += 1
                wait = max(1.0, hist[0] + self.window - now)
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    # The budget's message text is our guess (§4.1 gives only the limit).
                    "Application is over its request rate limit.",
                    headers={"Retry-After": _fmt(math.ceil(wait))},
                )
            hist.append(now)
            self._in_flight[key] += 1
            stats.in_flight += 1

    def release(self, app_id: str, mailbox_id: str) -> None:
        key = (app_id, mailbox_id)
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]
            stats = self._stats.get(mailbox_id)
            if stats:
                stats.in_flight -= 1

    def count_only(self, mailbox_id: str, kind: str, method: str) -> None:
        """Count a request that Outlook throttling does not govern (directory lookups)."""
        with self._lock:
            stats = self._stats.setdefault(mailbox_id, _MailboxStats())
            stats.requests += 1
            stats.by_kind[f"{method} {kind}"] += 1

    def counters(self, mailbox_id: str) -> Counters:
        with self._lock:
            s = self._stats.get(mailbox_id) or _MailboxStats()
            return Counters(
                requests=s.requests,
                max_concurrency=s.max_concurrency,
                by_kind=dict(s.by_kind),
                throttled=s.throttled,
                in_flight=s.in_flight,
            )

    def reset(self, mailbox_id: str | None = None) -> None:
        with self._lock:
            if mailbox_id is None:
                for s in self._stats.values():
                    _reset(s)
                self._history.clear()
            else:
                if mailbox_id in self._stats:
                    _reset(self._stats[mailbox_id])
                for key in [k for k in self._history if k[1] == mailbox_id]:
                    del self._history[key]


def _reset(s: _MailboxStats) -> None:
    s.requests = 0
    s.throttled = 0
    s.max_concurrency = s.in_flight
    s.by_kind.clear()


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"
