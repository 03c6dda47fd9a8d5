"""Fault injection knobs (settable at construction and at run time).

Owns: ``Faults`` — latency/jitter, random 503/504, connection resets, one-shot
"next N requests of route kind X fail with status S", delta replays, and notification
drop/duplicate/delay. The pipeline and the notifier read these fields on every use, so
changes take effect immediately. Must not import anything from ``bridge`` outside
``bridge.simulator``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class FailRule:
    kind: str  # a route kind ("message.get") or prefix ending in "*" ("message.*"), or "*"
    remaining: int
    status: int
    retry_after: float | None = None

    def applies(self, kind: str) -> bool:
        if self.kind == "*":
            return True
        if self.kind.endswith("*"):
            return kind.startswith(self.kind[:-1])
        return kind == self.kind


@dataclass
class Faults:
    """Mutable fault configuration. All rates are probabilities in [0, 1]."""

    latency: float = 0.0  # seconds added to every Graph request (while holding its slot)
    jitter: float = 0.0  # extra uniform random 0..jitter seconds
    error_rate: float = 0.0  # fraction of Graph requests answered with error_status
    error_status: int = 503  # 503 (with Retry-After) or 504
    retry_after: float = 1.0  # Retry-After sent with injected 503 / throttling 429s
    reset_rate: float = 0.0  # fraction of requests whose connection is aborted
    delta_replay: bool = False  # repeat the previous page's last entry on the next page
    delta_trailing_empty_page: bool = False  # end every round with an empty page
    notification_drop_rate: float = 0.0
    notification_duplicate_rate: float = 0.0
    notification_delay: float = 0.0  # seconds before a notification batch is POSTed
    seed: int | None = None
    rules: list[FailRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.rng = random.Random(self.seed)

    def fail_next(
        self, kind: str, count: int = 1, status: int = 503, retry_after: float | None = None
    ) -> None:
        """Make the next ``count`` requests whose route kind matches ``kind`` fail."""
        with self._lock:
            self.rules.append(FailRule(kind, count, status, retry_after))

    def take_rule(self, kind: str) -> FailRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.remaining > 0 and rule.applies(kind):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self.rules.remove(rule)
                    return rule
            return None

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self.rng.random() < rate

    def delay(self) -> float:
        if self.latency <= 0 and self.jitter <= 0:
            return 0.0
        with self._lock:
            return max(0.0, self.latency) + (self.rng.uniform(0, self.jitter) if self.jitter else 0)

    def clear(self) -> None:
        with self._lock:
            self.latency = self.jitter = 0.0
            self.error_rate = self.reset_rate = 0.0
            self.error_status = 503
            self.retry_after = 1.0
            self.delta_replay = self.delta_trailing_empty_page = False
            self.notification_drop_rate = self.notification_duplicate_rate = 0.0
            self.notification_delay = 0.0
            self.rules.clear()

    def snapshot(self) -> dict[str, object]:
        return {
            "latency": self.latency,
            "jitter": self.jitter,
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "retry_after": self.retry_after,
            "reset_rate": self.reset_rate,
            "delta_replay": self.delta_replay,
            "delta_trailing_empty_page": self.delta_trailing_empty_page,
            "notification_drop_rate": self.notification_drop_rate,
            "notification_duplicate_rate": self.notification_duplicate_rate,
            "notification_delay": self.notification_delay,
            "rules": [
                {"kind": r.kind, "remaining": r.remaining, "status": r.status} for r in self.rules
            ],
        }
