"""Sends whose outcome is unknown, so that a client's retry never sends twice.

When ``send_mime`` raises ``OutcomeUnknown`` the request left the bridge but no answer
came back: Graph may have accepted the message. The server answers 451 (the client keeps
the message and retries) and records (sending mailbox id, Message-ID) here. A retry of
the same Message-ID from the same mailbox first looks in that mailbox's Sent Items; if
the message is there it is answered 250 without sending again.

An attempt is recorded *before* the request leaves (and dropped again on a definite
answer), so that a crash of the bridge while Graph holds the request leaves the record
behind: the client never heard 250, retries after the restart, and the retry finds the
message in Sent Items instead of sending it twice.

The map lives in memory; ``persist`` (optional) is awaited with the full set of entries
by ``save()``, which the handler calls after every change and before it calls Graph, so
the composition root can keep the set on disk and pass it back as ``initial`` after a
restart. Entries expire after ``ttl_seconds`` (a client that has not retried by then
will not). Must not import anything outside the standard library.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UncertainSend:
    mailbox_id: str
    message_id: str
    since: float  # wall-clock seconds (time.time()) of the attempt, survives restarts


class UncertainSends:
    def __init__(
        self,
        initial: Iterable[UncertainSend] = (),
        *,
        persist: Callable[[tuple[UncertainSend, ...]], Awaitable[None]] | None = None,
        ttl_seconds: float = 5 * 24 * 3600.0,  # RFC 5321 §4.5.4.1: give up after 4-5 days
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._entries: dict[tuple[str, str], UncertainSend] = {
            (e.mailbox_id, e.message_id): e for e in initial
        }
        self._persist = persist
        self._dirty = False
        self._ttl = ttl_seconds
        self._clock = clock

    def record(self, mailbox_id: str, message_id: str) -> UncertainSend:
        entry = UncertainSend(mailbox_id, message_id, self._clock())
        self._entries[(mailbox_id, message_id)] = entry
        self._changed()
        return entry

    def get(self, mailbox_id: str, message_id: str) -> UncertainSend | None:
        entry = self._entries.get((mailbox_id, message_id))
        if entry is not None and self._clock() - entry.since > self._ttl:
            self.discard(mailbox_id, message_id)
            return None
        return entry

    def age(self, entry: UncertainSend) -> float:
        """Seconds since the uncertain attempt."""
        return self._clock() - entry.since

    def discard(self, mailbox_id: str, message_id: str) -> None:
        if self._entries.pop((mailbox_id, message_id), None) is not None:
            self._changed()

    def entries(self) -> tuple[UncertainSend, ...]:
        return tuple(self._entries.values())

    def _changed(self) -> None:
        self._dirty = True

    async def save(self) -> None:
        """Hand the current set to ``persist`` if it changed since the last save."""
        if self._persist is not None and self._dirty:
            self._dirty = False
            await self._persist(self.entries())
