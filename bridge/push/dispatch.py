"""Accepted change notifications → debounced ``on_change(account_id, folder_id)`` calls.

Theory of operation. The receiver hands every *verified* notification to
``ChangeDispatcher.submit`` and answers Graph at once (GRAPH-MAIL-FACTS §19.3: 2xx within
3 s; "persist-then-ack" is satisfied because the delta sync that follows, not the
notification, is what the bridge acts on). ``submit`` only records the change in a small
per-account pending set; a worker task waits ``debounce`` seconds after the first change
of a burst, then turns the pending set into folders and calls ``on_change`` once per
(account, folder). So a burst — several messages, duplicated notifications (§19.3:
"duplicates possible") — costs one nudge per folder, and Graph's POST never waits on
a Graph call.

A notification is only a hint that "something changed in this account" (§19.3); its
content is used for nothing but choosing which folder to sync. One subscription covers
the whole mailbox (``users/{id}/messages``, §19.1), and basic notifications carry no
parent folder, so the folder is *located*: from the store for messages the bridge
already knows, from Graph (one GET) for new ones — see ``SubscriptionManager.locate``.
When the folder cannot be located, when a burst holds more than ``max_lookups``
messages of one account, or for lifecycle resyncs, the account gets one
``on_change(account_id, None)`` ("sync every folder") instead. A wrong guess costs one
extra delta round; polling remains the safety net either way.

Must not import aiohttp or anything outside the standard library and ``bridge.push``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class ChangeKind(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


OnChange = Callable[[str, str | None], None]
# (account_id, kind, message_id) → the folder that holds / held the message, None if unknown
FolderLocator = Callable[[str, ChangeKind, str], Awaitable[str | None]]


@dataclass(slots=True)
class _Pending:
    everything: bool = False
    messages: set[tuple[str, ChangeKind]] = field(default_factory=set)


class ChangeDispatcher:
    """Coalesces changes per account and calls ``on_change`` after a short debounce."""

    def __init__(
        self,
        on_change: OnChange,
        locate: FolderLocator,
        *,
        debounce: float = 0.5,
        max_lookups: int = 8,
    ) -> None:
        self._on_change = on_change
        self._locate = locate
        self.debounce = debounce
        self.max_lookups = max_lookups
        self._pending: dict[str, _Pending] = {}
        self._wake = asyncio.Event()
        self._processing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.nudges = 0  # on_change calls made (a metric)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._worker(), name="push-dispatch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- input (synchronous: called from the HTTP handler) --------------------------------
    def message_changed(self, account_id: str, kind: ChangeKind, message_id: str) -> None:
        pending = self._pending.setdefault(account_id, _Pending())
        if not pending.everything:
            pending.messages.add((message_id, kind))
            if len(pending.messages) > self.max_lookups:
                # Too many to locate one by one: one full pass is cheaper (and bounded).
                pending.everything = True
                pending.messages.clear()
        self._wake.set()

    def resync(self, account_id: str) -> None:
        """Sync every folder of the account (lifecycle ``missed``, a recreated subscription)."""
        pending = self._pending.setdefault(account_id, _Pending())
        pending.everything = True
        pending.messages.clear()
        self._wake.set()

    def forget(self, account_id: str) -> None:
        self._pending.pop(account_id, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- processing ----------------------------------------------------------------------
    async def flush(self) -> None:
        """Process everything submitted so far now (shutdown, tests); returns when done."""
        async with self._processing:
            await self._process()

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            # Debounce: let the rest of the burst arrive before syncing (issue 7).
            await asyncio.sleep(self.debounce)
            self._wake.clear()
            async with self._processing:
                try:
                    await self._process()
                except Exception:
                    log.exception("processing change notifications failed")

    async def _process(self) -> None:
        batch, self._pending = self._pending, {}
        for account_id, pending in batch.items():
            folders: set[str] = set()
            everything = pending.everything
            if not everything:
                for message_id, kind in sorted(pending.messages, key=lambda m: m[0]):
                    try:
                        folder = await self._locate(account_id, kind, message_id)
                    except Exception:
                        log.exception("locating a changed message failed")
                        folder = None
                    if folder is None:
                        everything = True
                        break
                    folders.add(folder)
            targets: Sequence[str | None] = [None] if everything else sorted(folders)
            for folder_id in targets:
                self.nudges += 1
                try:
                    self._on_change(account_id, folder_id)
                except Exception:
                    log.exception("on_change failed for account %s", account_id)
