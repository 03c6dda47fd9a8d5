"""The sync engine: Graph's folder tree and per-folder message deltas → store → events.

Theory of operation. One ``SyncEngine`` per account. A *pass* lists the folder tree
(``Remote.list_folders``) and records it (new folders get a UIDVALIDITY, vanished ones
are forgotten and announced with ``MailboxReset``), then runs one delta *round* per
visible folder (GRAPH-MAIL-FACTS §16):

- A folder without a saved delta link gets a *full round*: every page is collected,
  then one transaction reconciles the store with it by immutable id — messages not in
  the round are expunged, known ones updated, new ones given UIDs in ascending
  ``receivedDateTime`` order — and saves the round's delta link. The first sync of a
  folder and the recovery from an expired token (``DeltaTokenExpired``, 410) are the
  same code, so a recovery never changes UIDVALIDITY or renumbers a message.
- A folder with a delta link gets an *incremental round*: each page is applied in its
  own transaction as it arrives; the new delta link is saved only with the last page.
  A crash mid-round replays the round from the old link; replays are idempotent
  because a message already known with the same changeKey is skipped, a known id never
  gets a second UID, and a removal of an unknown id is a no-op.

A draft whose content changed in Outlook (changeKey changed and Graph's ``/$value``
differs from the one recorded, or — when Graph's bytes were never fetched — the
changeKey changed while the flags did not) is expunged and re-added under a new UID,
because the bytes served for a UID never change. Flag-only changes update the row and
bump its modseq. (APPEND of a draft records Graph's bytes' hash, so the byte comparison
applies to drafts a client saved.)

Events are published after the transaction that caused them commits.

Client writes racing a round. A delta page (or folder list) Graph generated before one
of the bridge's own writes can arrive after that write committed; applied as it is, it
would resurrect a moved or expunged message under a new UID, expunge a just-appended or
just-copied one (full rounds reconcile by absence), roll flags back, or undo a CREATE/
DELETE/RENAME. So ``CachedBackend`` reports every write Graph answered
(``local_change``/``local_folder_change``) before queueing its store write, and each
page or tree read remembers the journal position at which it was requested: what it
says about ids written after that is ignored (the next round, requested later, reports
their state after the write). The journal is pruned as rounds finish.

Coalescing. A ``sync_folder`` call that waited for the folder's lock while a round that
began *after* the call completed returns at once (that round saw everything the call
was for); SELECT of a never-synced folder and the initial pass use
``only_if_unsynced``, so a client arriving during the initial sync never makes a folder
cost two rounds, and a LIST during the pass's tree read waits for it instead of
repeating it.

Scheduling. ``start()`` runs an initial pass, then a loop that syncs each folder when
it is due: every ``poll_watched`` seconds for folders a session selected or idles on
(``watch``; a watch lasts ``watch_ttl`` and is renewed by every SELECT/NOOP/IDLE),
every ``poll_idle`` seconds for the rest, the tree every ``poll_tree`` seconds, each
interval jittered. ``nudge(folder_id)`` (webhooks, SELECT of a stale folder) makes a
folder due now, debounced; ``sync_now()`` runs a pass (or one folder) and returns when
it is done — the tests use it instead of sleeping. A background prefetch downloads the
bodies of recent mail through the shared ``BodyLoader`` with at most
``prefetch_concurrency`` requests at a time and ``prefetch_rate`` per second, leaving
the rest of the mailbox's request budget to interactive FETCHes. All tasks belong to one
task group; a failing folder is logged and retried at its next turn without stopping
the others.

Must not import imap, smtp or graph (it consumes the ``Remote`` protocol only).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import functools
import inspect
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from bridge.backend import flags as flagmap
from bridge.backend.cached import (
    BodyLoader,
    CacheSettings,
    flag_state,
    folder_names,
    iso,
    message_info,
    state_from_remote,
    summary_json,
)
from bridge.backend.events import (
    EventBus,
    FlagsChanged,
    MailboxesChanged,
    MailboxReset,
    MailEvent,
    MessagesAdded,
    MessagesExpunged,
)
from bridge.backend.remote import (
    DeltaTokenExpired,
    Remote,
    RemoteAuthError,
    RemoteError,
    RemoteFolder,
    RemoteMessage,
    RemoteNotFound,
    RemoteUnavailable,
)
from bridge.store import Store
from bridge.store import mailstate as ms
from bridge.store.blobs import BlobCache, blob_hash

log = logging.getLogger(__name__)


class AccountState(enum.Enum):
    """What ``account show`` reports; passed to ``on_state`` on every transition."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CONNECT_ERROR = "connectError"
    AUTHENTICATION_ERROR = "authenticationError"


#: ``on_state(state, error)``; may return an awaitable (it is then run as a task).
StateCallback = Callable[[str, str | None], Any]


@dataclass(frozen=True, slots=True)
class _NewBody:
    """Bytes of a draft whose content changed, downloaded before the transaction."""

    digest: str
    size: int
    summary: str


class SyncEngine:
    """Keeps one account's store in step with its Graph mailbox."""

    def __init__(
        self,
        store: Store,
        remote: Remote,
        account_id: str,
        bus: EventBus,
        blobs: BlobCache,
        *,
        settings: CacheSettings | None = None,
        loader: BodyLoader | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_state: StateCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.remote = remote
        self.account_id = account_id
        self.bus = bus
        self.blobs = blobs
        self.settings = settings or CacheSettings()
        self.loader = loader or BodyLoader(store, blobs, remote, account_id, self.settings)
        self._clock = clock
        self._wall = wall
        self._on_state = on_state
        self._rng = rng or random.Random()
        self._folder_locks: dict[str, asyncio.Lock] = {}
        #: Orders sync_folder calls and round starts: folder id → the ticket taken when
        #: its last completed round began (coalesces calls queued behind a round).
        self._tickets = itertools.count()
        self._round_began: dict[str, int] = {}
        #: The local-change journal (see ``local_change``): folder id → message id →
        #: sequence number of the bridge's own latest write to that message there.
        self._local: dict[str, dict[str, int]] = {}
        self._local_seq = 0
        #: The same for folders (CREATE/DELETE/RENAME): folder id → sequence number.
        self._local_folders: dict[str, int] = {}
        #: Sequence numbers at which the delta requests now in flight were started.
        self._rounds: collections.Counter[int] = collections.Counter()
        self._tree_lock = asyncio.Lock()
        self._tree_synced: float | None = None
        self._due: dict[str, float] = {}
        self._tree_due = 0.0
        self._watched: dict[str, float] = {}
        #: Set by the push layer while this account's webhooks work.
        self.push_healthy = False
        self._pending: set[str | None] = set()
        self._wake = asyncio.Event()
        self._prefetch_wake = asyncio.Event()
        self._prefetch_limit = asyncio.Semaphore(max(1, self.settings.prefetch_concurrency))
        self._task: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Future[Any]] = set()
        self.state = AccountState.CONNECTING
        self.error: str | None = None
        self._progress: dict[str, Any] = {
            "phase": "initial",
            "folders_total": 0,
            "folders_done": 0,
            "messages_seen": 0,
            "prefetched": 0,
            "last_pass": None,
            "failed_folders": 0,
        }

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._main(), name=f"sync:{self.account_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _main(self) -> None:
        # The first client's LIST often reads the tree just before this pass starts:
        # a tree younger than ``tree_max_age`` is not read again.
        await self._guarded(self._tracked(self._pass(tree_max_age=self.settings.tree_max_age)))
        async with asyncio.TaskGroup() as group:
            group.create_task(self._prefetch_loop())
            group.create_task(self._poll_loop())

    # -- what CachedBackend and webhooks call ------------------------------------------
    def watch(self, folder_id: str) -> None:
        """A session selected or idles on ``folder_id``: poll it often for a while."""
        now = self._clock()
        self._watched[folder_id] = now + self.settings.watch_ttl
        soon = now + self.settings.poll_watched
        if self._due.get(folder_id, soon + 1) > soon:
            self._due[folder_id] = soon
            self._wake.set()

    def reachable(self) -> bool:
        """Whether the last sync reached Graph (see ``CachedBackend``: interactive
        commands do not wait for Graph while it is known to be down)."""
        return self.state not in (AccountState.CONNECT_ERROR, AccountState.AUTHENTICATION_ERROR)

    def unwatch(self, folder_id: str) -> None:
        self._watched.pop(folder_id, None)

    def nudge(self, folder_id: str | None = None) -> None:
        """Something changed (in ``folder_id``, or anywhere if None): sync soon."""
        self._pending.add(folder_id)
        self._wake.set()

    async def refresh_tree(self, max_age: float) -> None:
        """Re-read the folder tree unless it was read less than ``max_age`` seconds ago.
        Checked again once the tree lock is held: a LIST that arrives while the initial
        pass reads the tree waits for that read instead of repeating it."""
        if self._tree_fresh(max_age):
            return
        async with self._tree_lock:
            if self._tree_fresh(max_age):
                return
            await self._sync_tree_locked()

    def _tree_fresh(self, max_age: float) -> bool:
        return self._tree_synced is not None and self._clock() - self._tree_synced < max_age

    def local_change(self, folder_id: str, message_ids: Iterable[str]) -> None:
        """The bridge itself just changed these messages in ``folder_id`` in Graph
        (APPEND, COPY/MOVE, STORE, EXPUNGE) and is about to record Graph's answer.

        A delta page requested before this call may describe the messages as they were
        before that write; applying it afterwards would resurrect a moved or expunged
        message under a new UID, expunge a just-appended one (full rounds), or roll
        flags back. So pages (and full rounds) started earlier leave these ids alone;
        the next round, started later, reports their state after the write."""
        self._local_seq += 1
        journal = self._local.setdefault(folder_id, {})
        for message_id in message_ids:
            journal[message_id] = self._local_seq

    def local_folder_change(self, folder_ids: Iterable[str]) -> None:
        """The bridge itself just created, deleted, renamed or moved these folders in
        Graph: a folder list requested before now must not undo that in the store."""
        self._local_seq += 1
        for folder_id in folder_ids:
            self._local_folders[folder_id] = self._local_seq

    def _round_begin(self) -> int:
        self._rounds[self._local_seq] += 1
        return self._local_seq

    def _round_end(self, started: int) -> None:
        self._rounds[started] -= 1
        if self._rounds[started] <= 0:
            del self._rounds[started]
        # Entries no running round started before are no longer needed.
        oldest = min(self._rounds, default=self._local_seq)
        for folder_id in list(self._local):
            journal = {m: seq for m, seq in self._local[folder_id].items() if seq > oldest}
            if journal:
                self._local[folder_id] = journal
            else:
                del self._local[folder_id]
        self._local_folders = {f: seq for f, seq in self._local_folders.items() if seq > oldest}

    def _locally_changed(self, folder_id: str, since: int) -> frozenset[str]:
        """Ids the bridge wrote in ``folder_id`` after a round started at ``since``."""
        journal = self._local.get(folder_id, {})
        return frozenset(m for m, seq in journal.items() if seq > since)

    def progress(self) -> dict[str, Any]:
        """The initial sync's progress and the engine's state, for logs and ``account show``."""
        return dict(self._progress, state=self.state.value, error=self.error)

    async def sync_now(self, folder_id: str | None = None) -> None:
        """Sync one folder, or the tree and every visible folder; returns when done.
        Raises the first ``RemoteError`` after every folder had its turn."""
        if folder_id is not None:
            await self._tracked(self.sync_folder(folder_id))
            return
        await self._tracked(self._pass())

    async def _pass(self, tree_max_age: float = 0.0) -> None:
        await self.refresh_tree(tree_max_age)
        folder_ids = await self._syncable()
        rows = await self.store.read(lambda db: ms.list_folders(db, self.account_id))
        # A folder never synced needs one round, whoever runs it (a client's SELECT may
        # be running it already); a synced one gets a fresh incremental round.
        unsynced = {row.folder_id for row in rows if row.delta_link is None}
        await self._sync_folders(folder_ids, unsynced=unsynced)
        self._progress["phase"] = "steady"
        self._progress["last_pass"] = self._wall()
        self._prefetch_wake.set()

    async def _tracked(self, work: Awaitable[None]) -> None:
        """Run ``work`` and report the account's state from how it went."""
        try:
            await work
        except RemoteAuthError as exc:
            self._set_state(AccountState.AUTHENTICATION_ERROR, str(exc))
            raise
        except RemoteUnavailable as exc:
            self._set_state(AccountState.CONNECT_ERROR, str(exc))
            raise
        self._set_state(AccountState.CONNECTED, None)

    # -- state --------------------------------------------------------------------------
    def _set_state(self, state: AccountState, error: str | None) -> None:
        if state is self.state and error == self.error:
            return
        self.state, self.error = state, error
        if state is AccountState.CONNECTED:
            log.info("account %s: connected", self.account_id)
        else:
            log.warning("account %s: %s (%s)", self.account_id, state.value, error)
        if self._on_state is not None:
            try:
                result = self._on_state(state.value, error)
                if inspect.isawaitable(result):
                    # An async callback (e.g. recording the state in the store).
                    task = asyncio.ensure_future(result)
                    self._callbacks.add(task)
                    task.add_done_callback(self._state_callback_done)
            except Exception:
                log.exception("account state callback failed")

    def _state_callback_done(self, task: asyncio.Future[Any]) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("account state callback failed: %s", task.exception())

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except RemoteError as exc:
            log.warning("sync of account %s failed: %s", self.account_id, exc)
        except Exception:
            log.exception("sync of account %s failed", self.account_id)

    def _publish(self, events: Sequence[MailEvent]) -> None:
        for event in events:
            self.bus.publish(event)

    # -- the folder tree ---------------------------------------------------------------
    async def _syncable(self) -> list[str]:
        rows = await self.store.read(lambda db: ms.list_folders(db, self.account_id))
        names = folder_names(rows, self.settings.include_hidden)
        # INBOX first: it is what the user waits for.
        return sorted(names, key=lambda fid: (names[fid] != "INBOX", names[fid]))

    async def sync_tree(self) -> None:
        async with self._tree_lock:
            await self._sync_tree_locked()

    async def _sync_tree_locked(self) -> None:
        started = self._round_begin()
        try:
            folders = await self.remote.list_folders(include_hidden=self.settings.include_hidden)
            # Folders the bridge changed after the list was requested: the list is older
            # than the store for them (see ``local_folder_change``).
            skip = {f for f, seq in self._local_folders.items() if seq > started}
            events = await self._record_tree(folders, skip)
        finally:
            self._round_end(started)
        self._tree_synced = self._clock()
        self._publish(events)

    async def _record_tree(self, folders: list[RemoteFolder], skip: set[str]) -> list[MailEvent]:
        now = self._wall()
        folders = [folder for folder in folders if folder.id not in skip]

        def write(db: sqlite_utils.Database) -> list[MailEvent]:
            known = {row.folder_id for row in ms.list_folders(db, self.account_id)}
            changed = False
            for folder in folders:
                _, folder_changed = ms.upsert_folder(
                    db,
                    self.account_id,
                    folder_id=folder.id,
                    parent_id=folder.parent_id,
                    display_name=folder.display_name,
                    well_known=folder.well_known,
                    hidden=folder.hidden,
                    is_search=folder.is_search_folder,
                    now=now,
                )
                changed = changed or folder_changed
            events: list[MailEvent] = []
            listed = {folder.id for folder in folders}
            for folder_id in sorted(known - listed - skip):
                hashes = ms.delete_folder(db, self.account_id, folder_id)
                for digest in hashes:
                    if not ms.hash_still_pinned(db, digest):
                        self.blobs.unpin_sync(digest)
                events.append(MailboxReset(folder_id))
                changed = True
            names = folder_names(ms.list_folders(db, self.account_id), True)
            for folder_id in sorted(listed - known):
                # New folders start subscribed (subscriptions are local only).
                if folder_id in names:
                    ms.set_subscribed(db, self.account_id, names[folder_id], True)
            ms.set_tree_synced(db, self.account_id, now)
            if changed:
                events.append(MailboxesChanged(self.account_id))
            return events

        return await self.store.write(write)

    # -- one folder ---------------------------------------------------------------------
    async def _sync_folders(
        self, folder_ids: Sequence[str], *, unsynced: frozenset[str] | set[str] = frozenset()
    ) -> None:
        if self._progress["phase"] == "initial":
            self._progress["folders_total"] = len(folder_ids)
            self._progress["folders_done"] = 0
        failures: list[RemoteError] = []
        limit = asyncio.Semaphore(2)

        async def one(folder_id: str) -> None:
            async with limit:
                try:
                    await self.sync_folder(folder_id, only_if_unsynced=folder_id in unsynced)
                except RemoteError as exc:
                    log.warning("sync of folder %s failed: %s", folder_id, exc)
                    failures.append(exc)
                finally:
                    if self._progress["phase"] == "initial":
                        self._progress["folders_done"] += 1
                        log.info(
                            "initial sync of %s: %d/%d folders, %d messages",
                            self.account_id,
                            self._progress["folders_done"],
                            self._progress["folders_total"],
                            self._progress["messages_seen"],
                        )

        await asyncio.gather(*(one(folder_id) for folder_id in folder_ids))
        self._progress["failed_folders"] = len(failures)
        if failures:
            # Prefer reporting an auth problem over a transient one.
            auth = [exc for exc in failures if isinstance(exc, RemoteAuthError)]
            raise (auth or failures)[0]

    async def sync_folder(self, folder_id: str, *, only_if_unsynced: bool = False) -> None:
        """One delta round for ``folder_id`` (full if it has no delta link).

        ``only_if_unsynced`` (SELECT of a folder never synced): do nothing if the folder
        has a delta link by the time it is our turn, e.g. because the initial pass was
        syncing it while we waited for the lock — one round is enough."""
        ticket = next(self._tickets)
        lock = self._folder_locks.setdefault(folder_id, asyncio.Lock())
        async with lock:
            if self._round_began.get(folder_id, -1) > ticket:
                # A round that began after this call was made has completed while we
                # waited for the lock: it saw whatever this call was meant to pick up.
                return
            row = await self.store.read(lambda db: ms.get_folder(db, self.account_id, folder_id))
            if row is None:
                return
            if only_if_unsynced and row.delta_link is not None:
                return
            began = next(self._tickets)
            try:
                if row.delta_link is None:
                    await self._full_round(row)
                else:
                    try:
                        await self._incremental_round(row, row.delta_link)
                    except DeltaTokenExpired:
                        log.info("delta token of folder %s expired; full round", folder_id)
                        await self._full_round(row)
            except RemoteNotFound:
                # The folder went away: the tree sync forgets it.
                log.info("folder %s is gone; refreshing the folder tree", folder_id)
                self._tree_synced = None
                self.nudge(None)
                return
            self._round_began[folder_id] = began
            self._due[folder_id] = self._clock() + self._interval(folder_id)

    async def _incremental_round(self, row: ms.FolderRow, link: str) -> None:
        current: str | None = link
        while current is not None:
            started = self._round_begin()
            try:
                page = await self.remote.message_delta(row.folder_id, current)
                bodies = await self._changed_drafts(row.folder_id, page.messages)
                # Computed on the loop right before the write is queued: a client write
                # noted later is queued (and committed) after this page.
                events = await self.store.write(
                    functools.partial(
                        self._apply,
                        folder=row,
                        messages=page.messages,
                        removed_ids=page.removed_ids,
                        new_bodies=bodies,
                        final_link=page.delta_link,
                        reconcile=False,
                        skip=self._locally_changed(row.folder_id, started),
                    )
                )
            finally:
                self._round_end(started)
            self._publish(events)
            self._progress["messages_seen"] += len(page.messages)
            current = None if page.delta_link else page.next_link

    async def _full_round(self, row: ms.FolderRow) -> None:
        for attempt in range(3):
            started = self._round_begin()
            try:
                if await self._full_round_once(row, started, last=attempt == 2):
                    return
            finally:
                self._round_end(started)

    async def _full_round_once(self, row: ms.FolderRow, started: int, *, last: bool) -> bool:
        """One attempt at a full round; False if an in-flight link expired (retry)."""
        collected: dict[str, RemoteMessage] = {}
        link: str | None = None
        final: str | None = None
        try:
            while True:
                page = await self.remote.message_delta(row.folder_id, link)
                for message in page.messages:
                    collected[message.id] = message
                for removed in page.removed_ids:
                    collected.pop(removed, None)
                self._progress["messages_seen"] += len(page.messages)
                if page.delta_link is not None:
                    final = page.delta_link
                    break
                if page.next_link is None:
                    break
                link = page.next_link
        except DeltaTokenExpired:
            # Even an in-flight nextLink can expire (§16.5): start the round again.
            if last:
                raise
            return False
        await self._reconcile(row, list(collected.values()), final, started)
        return True

    async def _reconcile(
        self, row: ms.FolderRow, messages: list[RemoteMessage], final: str | None, started: int
    ) -> None:
        bodies = await self._changed_drafts(row.folder_id, messages)
        skip = self._locally_changed(row.folder_id, started)
        events = await self.store.write(
            lambda db: self._apply(
                db, row, messages, (), bodies, final_link=final, reconcile=True, skip=skip
            )
        )
        self._publish(events)

    async def _changed_drafts(
        self, folder_id: str, messages: Sequence[RemoteMessage]
    ) -> dict[str, _NewBody | None]:
        """Drafts whose content (not just flags) changed: id → new bytes if downloaded."""
        drafts = [m for m in messages if m.is_draft]
        if not drafts:
            return {}

        def read(db: sqlite_utils.Database) -> dict[str, ms.MessageRow]:
            found: dict[str, ms.MessageRow] = {}
            for message in drafts:
                row = ms.message_by_remote_id(db, self.account_id, folder_id, message.id)
                if row is not None:
                    found[message.id] = row
            return found

        known = await self.store.read(read)
        changed: dict[str, _NewBody | None] = {}
        for message in drafts:
            row = known.get(message.id)
            if row is None or row.state.change_key == message.change_key:
                continue
            if row.remote_hash is not None:
                # We know what Graph served before: compare bytes.
                try:
                    data = await self.loader.download(message.id)
                except RemoteNotFound:
                    continue
                digest = await asyncio.to_thread(blob_hash, data)
                if digest != row.remote_hash:
                    summary = await asyncio.to_thread(summary_json, data)
                    await self.blobs.put(data)
                    changed[message.id] = _NewBody(digest, len(data), summary)
                continue
            # Graph's bytes were never fetched, so no client saw them: a new changeKey
            # with the same flags can only be content (lastModifiedDateTime has whole
            # seconds, too coarse to tell two edits apart).
            new_state = state_from_remote(message)
            same_flags = flagmap.imap_flags(flag_state(row.state)) == flagmap.imap_flags(
                flag_state(new_state)
            )
            if same_flags:
                changed[message.id] = None
        return changed

    def _apply(
        self,
        db: sqlite_utils.Database,
        folder: ms.FolderRow,
        messages: Sequence[RemoteMessage],
        removed_ids: Sequence[str],
        new_bodies: dict[str, _NewBody | None],
        *,
        final_link: str | None,
        reconcile: bool,
        skip: frozenset[str] = frozenset(),
    ) -> list[MailEvent]:
        """Apply one page (or a whole full round) in the caller's transaction. Ids in
        ``skip`` were written by the bridge after the page was requested (see
        ``local_change``): what the page says about them is older than the store."""
        account = self.account_id
        fresh = ms.get_folder(db, account, folder.folder_id)
        if fresh is None:
            return []  # the folder was deleted meanwhile
        known = ms.remote_ids(db, account, folder.folder_id)
        latest: dict[str, RemoteMessage] = {}
        for message in messages:
            if message.id not in skip:
                latest[message.id] = message
        to_remove: list[int] = [
            known[mid]
            for mid in removed_ids
            if mid in known and mid not in latest and mid not in skip
        ]
        if reconcile:
            to_remove.extend(
                uid for mid, uid in known.items() if mid not in latest and mid not in skip
            )
        to_add: list[tuple[RemoteMessage, _NewBody | None]] = []
        changed: list[int] = []
        for message in latest.values():
            uid = known.get(message.id)
            if uid is None:
                to_add.append((message, None))
                continue
            row = ms.message_by_remote_id(db, account, folder.folder_id, message.id)
            assert row is not None
            if row.state.change_key == message.change_key:
                continue  # a replay, or our own write coming back
            if message.id in new_bodies:
                # Draft content changed: the old UID goes, the message comes back new.
                to_remove.append(uid)
                to_add.append((message, new_bodies[message.id]))
                continue
            new_state = state_from_remote(message)
            if (
                new_state.last_modified
                and row.state.last_modified
                and new_state.last_modified < row.state.last_modified
            ):
                continue  # older than what a write of ours already recorded
            differs = flagmap.imap_flags(flag_state(new_state)) != flagmap.imap_flags(
                flag_state(row.state)
            )
            ms.update_state(db, account, folder.folder_id, uid, new_state, bump=differs)
            if differs:
                changed.append(uid)
        removed, hashes = ms.remove_messages(db, account, folder.folder_id, sorted(set(to_remove)))
        for digest in hashes:
            if not ms.hash_still_pinned(db, digest):
                self.blobs.unpin_sync(digest)
        added: list[ms.MessageRow] = []
        # RFC 3501 §2.3.1.1 allows any ascending order; receivedDateTime order makes
        # the first sync look like the mailbox did in Outlook.
        to_add.sort(key=lambda item: (iso(item[0].received), item[0].id))
        for message, body in to_add:
            added.append(
                ms.add_message(
                    db,
                    account,
                    folder.folder_id,
                    state_from_remote(message),
                    body_hash=body.digest if body else None,
                    size=body.size if body else None,
                    summary=body.summary if body else None,
                    remote_hash=body.digest if body else None,
                )
            )
        if final_link is not None:
            ms.finish_round(db, account, folder.folder_id, final_link, self._wall())
        events: list[MailEvent] = []
        if removed:
            events.append(MessagesExpunged(folder.folder_id, fresh.uidvalidity, tuple(removed)))
        new_rows = [row for row in added if row.uid >= fresh.uidnext]
        if new_rows:
            events.append(
                MessagesAdded(
                    folder.folder_id,
                    fresh.uidvalidity,
                    tuple(message_info(row) for row in new_rows),
                )
            )
        if changed:
            rows = ms.messages(db, account, folder.folder_id, changed)
            events.append(
                FlagsChanged(
                    folder.folder_id, fresh.uidvalidity, tuple(message_info(r) for r in rows)
                )
            )
        return events

    # -- scheduling ---------------------------------------------------------------------
    def set_push_healthy(self, healthy: bool) -> None:
        """Webhooks for this account work (or stopped working). While they do, polling is
        only the safety net: watched folders poll at the idle interval, the rest at
        ``poll_push``. When they stop, every folder is rescheduled at once."""
        if healthy == self.push_healthy:
            return
        self.push_healthy = healthy
        self._due.clear()
        self._wake.set()

    def _interval(self, folder_id: str) -> float:
        now = self._clock()
        expiry = self._watched.get(folder_id)
        if expiry is not None and expiry < now:
            del self._watched[folder_id]
            expiry = None
        if self.push_healthy:
            base = self.settings.poll_idle if expiry is not None else self.settings.poll_push
        else:
            base = self.settings.poll_watched if expiry is not None else self.settings.poll_idle
        jitter = self.settings.poll_jitter
        return base * (1 + self._rng.uniform(-jitter, jitter))

    async def _poll_loop(self) -> None:
        now = self._clock()
        self._tree_due = now + self.settings.poll_tree
        for folder_id in await self._syncable():
            self._due.setdefault(folder_id, now + self._interval(folder_id))
        while True:
            now = self._clock()
            upcoming = [self._tree_due, *self._due.values()]
            timeout = max(0.0, min(upcoming) - now)
            if not self._pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._pending:
                # Debounce: a burst of notifications becomes one sync per folder.
                await asyncio.sleep(self.settings.nudge_debounce)
            pending, self._pending = self._pending, set()
            try:
                await self._poll_once(pending)
            except Exception:
                # A bug or a store failure must not end polling for the account.
                log.exception("polling of account %s failed", self.account_id)
                await asyncio.sleep(1.0)

    async def _poll_once(self, pending: set[str | None]) -> None:
        now = self._clock()
        everything = None in pending
        if everything or self._tree_due <= now:
            jitter = self._rng.uniform(-self.settings.poll_jitter, self.settings.poll_jitter)
            self._tree_due = now + self.settings.poll_tree * (1 + jitter)
            await self._guarded(self._tracked(self.sync_tree()))
        syncable = await self._syncable()
        due = [
            fid
            for fid in syncable
            if everything or fid in pending or self._due.get(fid, now) <= now
        ]
        for fid in list(self._due):
            if fid not in syncable:
                del self._due[fid]
        for fid in syncable:
            self._due.setdefault(fid, now + self._interval(fid))
        if due:
            for fid in due:
                self._due[fid] = now + self._interval(fid)
            await self._guarded(self._tracked(self._sync_folders(due)))
            self._prefetch_wake.set()

    # -- prefetch -------------------------------------------------------------------------
    async def _prefetch_loop(self) -> None:
        while True:
            await self._prefetch_wake.wait()
            self._prefetch_wake.clear()
            try:
                await self.prefetch()
            except RemoteError as exc:
                log.info("prefetch paused: %s", exc)
            except Exception:
                log.exception("prefetch failed")

    async def prefetch(self, limit: int = 500) -> int:
        """Download bodies of recent messages not yet cached; returns how many."""
        if self.settings.prefetch_days <= 0:
            return 0
        folders = await self._syncable()
        since = iso(
            datetime.fromtimestamp(self._wall(), UTC) - timedelta(days=self.settings.prefetch_days)
        )
        rows = await self.store.read(
            lambda db: ms.bodies_missing(db, self.account_id, folders, since, limit)
        )
        done = 0
        pause = 1.0 / self.settings.prefetch_rate if self.settings.prefetch_rate > 0 else 0.0
        for row in rows:
            async with self._prefetch_limit:
                try:
                    await self.loader.load(row)
                except RemoteNotFound:
                    continue
            done += 1
            self._progress["prefetched"] += 1
            if pause:
                await asyncio.sleep(pause)
        return done
