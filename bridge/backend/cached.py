"""CachedBackend: one account's mailbox in IMAP terms, kept in SQLite, written through to a Remote.

Theory of operation. Everything a client sees comes from the store
(``bridge.store.mailstate``) and the body blob cache (``bridge.store.blobs``); the
sync engine (``bridge.sync``) keeps both up to date from Graph's per-folder delta, and
this class writes client changes through to the ``Remote`` first and then records
Graph's answer (ARCHITECTURE.md, consistency rules). Events go out only after the
store transaction that caused them committed.

Folder names. The IMAP name of a folder is the path of its displayNames from the top,
``/``-delimited; the well-known inbox is ``INBOX``. A ``/`` inside a displayName is
shown as U+2215 DIVISION SLASH and a client's U+2215 is sent to Graph as ``/``, so
the Outlook folder ``Q1/Q2`` is one IMAP level that looks the same, and CREATE of that
name makes the same folder again. (A folder whose real name contains U+2215 therefore
shows, and is recreated, with ``/``: the price of a readable scheme.) Hidden folders,
the well-known folders Outlook hides (outbox, conversation history, sync issues, …)
and search folders are left out unless
``CacheSettings.include_hidden``. Subscriptions are local; folders are subscribed when
first recorded.

Bodies. BODY[] is the MIME of ``/$value`` stored byte-for-byte; its SHA-256, length
(RFC822.SIZE) and summary (ENVELOPE/BODYSTRUCTURE) are recorded in the message's row at
the first download and never recomputed for that UID. The guarantee "what is served for a
UID never changes" is kept by pinning: before any of BODY, RFC822.SIZE, ENVELOPE or
BODYSTRUCTURE of a message is served for the first time, its bytes are loaded (from the
cache or Graph) and pinned in the blob cache, and a pinned blob is never evicted while
a message references it. Bytes that were only prefetched may be evicted; if Graph later
returns different bytes for such a message, the new bytes replace the old (no client
has seen either). APPEND stores the client's original bytes, pinned, so the client
reads back exactly what it appended. Pinned bytes are not limited by the cache cap.

Writes. Flags go through ``Remote.update_flags`` (one ``$batch`` for many messages);
``\\Deleted`` stays local until EXPUNGE; COPY/MOVE through ``copy_messages`` /
``move_messages`` with COPYUID from the ids Graph returns (immutable ids: a moved
message keeps its id, gets a new UID in the destination and is expunged in the
source); EXPUNGE per ``CacheSettings.expunge_mode``. When Graph cannot be reached,
``Unavailable`` is raised and nothing changes locally; when a multi-message request
half-succeeds, what Graph did is recorded and announced and then an error is raised for
the rest — except COPY, whose partial copies are deleted again (RFC 3501 §6.4.7).
Every write Graph answered is reported to the sync engine (``SyncHooks.local_change``)
before its store write is queued, so that a delta page requested earlier cannot undo it;
a UID the engine already gave a message the bridge created or moved (it saw the change
first) is reused and not announced a second time.

Graph down. While the engine knows Graph is unreachable (``SyncHooks.reachable``),
LIST and SELECT answer from the store without trying Graph; otherwise they wait for a
refresh at most ``CacheSettings.interactive_wait`` seconds (Graph's client retries an
outage for minutes) and the refresh finishes in the background.

APPEND idempotence. ``Remote.create_message`` is never retried blindly: on
``OutcomeUnknown`` the target folder (and Drafts, where a MIME create lands first) is
searched for the message's Message-ID and a found message is adopted; only if none is
found is the create tried once more. A message without a Message-ID header is created
as is (the client's bytes are never altered), and an unknown outcome then answers
``Unavailable`` without a retry, because there is nothing to look it up by. Before the
create, the intent (folder, Message-ID) is journaled in the store and cleared in the
transaction that records the new UID; a journal entry left by a crash makes the
client's retry look the message up first (and adopt it, even if the sync has meanwhile
given it a UID) instead of creating a second one. An APPEND to
Sent Items whose Message-ID Graph already has there (the copy Graph's send saved)
adopts that copy: APPENDUID names it, and it serves the client's bytes unless a client
has already seen Graph's bytes under that UID.

Composition. ``bridge.sync.open_cached_backend(store, blobs, remote, identity, bus,
settings) -> (CachedBackend, SyncEngine)`` builds this class together with its sync
engine (which lives in ``bridge.sync`` because this package must not import it);
``CachedBackend(..., hooks=engine)`` is the wiring. The store must be opened after
importing this module (it registers the ``mailstate`` migrations).

Must not import: graph, sync, imap, smtp. May import store, mime, and backend.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlite_utils

from bridge import mime
from bridge.backend import flags as flagmap
from bridge.backend.errors import (
    BackendError,
    MailboxExists,
    MailboxNotFound,
    MessageGone,
    NoPermission,
    NotPermitted,
    Unavailable,
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
    DeleteMode,
    FlagChange,
    NewMessage,
    OutcomeUnknown,
    Remote,
    RemoteAuthError,
    RemoteConflict,
    RemoteError,
    RemoteFolder,
    RemoteMessage,
    RemoteNotFound,
    RemotePermissionError,
    RemoteUnavailable,
)
from bridge.backend.types import (
    HIERARCHY_DELIMITER,
    AccountIdentity,
    AppendResult,
    CopyResult,
    FetchNeed,
    MailboxInfo,
    MailboxSnapshot,
    MailboxStatus,
    MessageData,
    MessageInfo,
    Quota,
    SpecialUse,
    StoreOperation,
)
from bridge.store import Store
from bridge.store import mailstate as ms
from bridge.store.blobs import BlobCache, blob_hash

log = logging.getLogger(__name__)

INBOX = "INBOX"
_CANNOT_STORE = "Microsoft 365 cannot be reached right now, so storing the message failed."
SLASH_SUBSTITUTE = "\u2215"

SPECIAL_USE = {
    "sentitems": SpecialUse.SENT,
    "drafts": SpecialUse.DRAFTS,
    "deleteditems": SpecialUse.TRASH,
    "junkemail": SpecialUse.JUNK,
    "archive": SpecialUse.ARCHIVE,
}

#: Well-known folders Outlook itself hides (GRAPH-MAIL-FACTS §6.2).
HIDDEN_WELL_KNOWN = ms.HIDDEN_WELL_KNOWN


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Tuning of the cache and sync for one account (the lead maps config onto this)."""

    expunge_mode: DeleteMode = DeleteMode.SOFT
    include_hidden: bool = False
    #: Concurrent Graph requests per mailbox (Graph allows about 4).
    max_concurrency: int = 4
    #: Of those, how many the background prefetch may use.
    prefetch_concurrency: int = 1
    #: Prefetch requests per second at most (a share of 10,000 per 10 minutes).
    prefetch_rate: float = 4.0
    prefetch_days: int = 14
    #: When a client downloads bodies in ascending UID order (two FETCHes in a row
    #: that had to download, the second above the first), the next this many uncached
    #: bodies of the folder are downloaded ahead: clients such as mbsync fetch one
    #: message per command, and without read-ahead only one Graph request would be in
    #: flight. A client that stops early wastes at most this many downloads.
    read_ahead: int = 12
    #: LIST refreshes the folder tree when it is older than this (seconds).
    tree_max_age: float = 5.0
    #: SELECT/NOOP/IDLE refresh a folder whose last sync is older than this (seconds).
    folder_max_age: float = 10.0
    #: How long LIST (or SELECT of a never-synced folder) waits for Graph before
    #: answering from the cache; the refresh goes on in the background (seconds).
    interactive_wait: float = 10.0
    poll_watched: float = 15.0
    poll_idle: float = 300.0
    poll_tree: float = 600.0
    #: While webhooks are healthy, polling is only the safety net (seconds).
    poll_push: float = 900.0
    poll_jitter: float = 0.1
    #: A SELECT/NOOP/IDLE keeps a folder on the short poll interval this long (seconds).
    #: IDLE pokes every 120 s and NOOP pokes too, so a client that stays on the folder
    #: keeps it watched; a client that only passed through (mbsync SELECTs every folder
    #: once per run) stops costing a delta request every ``poll_watched`` seconds soon.
    watch_ttl: float = 300.0
    nudge_debounce: float = 0.2
    #: Pin the bytes a client has seen so they can never change (see module docstring).
    pin_served: bool = True

    @classmethod
    def from_config(cls, sync: Any) -> CacheSettings:
        """From the ``sync`` section of the bridge's config (``bridge.config.SyncConfig``,
        read by attribute so that this package need not import the config module)."""
        mode = str(getattr(getattr(sync, "expunge_mode", None), "value", "delete"))
        modes = {"delete": DeleteMode.SOFT, "soft": DeleteMode.SOFT}
        defaults = cls()
        return cls(
            expunge_mode=modes.get(mode) or DeleteMode(mode),
            include_hidden=bool(getattr(sync, "hidden_folders", defaults.include_hidden)),
            max_concurrency=int(
                getattr(sync, "max_concurrency_per_mailbox", defaults.max_concurrency)
            ),
            prefetch_days=int(getattr(sync, "prefetch_days", defaults.prefetch_days)),
            poll_watched=float(getattr(sync, "poll_interval", defaults.poll_watched)),
            poll_idle=float(getattr(sync, "background_poll_interval", defaults.poll_idle)),
        )


class SyncHooks(Protocol):
    """What CachedBackend asks of the sync engine (``bridge.sync.SyncEngine``)."""

    def watch(self, folder_id: str) -> None: ...

    def nudge(self, folder_id: str | None = None) -> None: ...

    async def refresh_tree(self, max_age: float) -> None: ...

    async def sync_folder(self, folder_id: str, *, only_if_unsynced: bool = False) -> None: ...

    def local_change(self, folder_id: str, message_ids: Iterable[str]) -> None:
        """Graph answered a write of ours to these messages of ``folder_id``; delta pages
        requested before now must not overrule what we are about to record."""

    def local_folder_change(self, folder_ids: Iterable[str]) -> None:
        """Graph answered a CREATE/DELETE/RENAME of ours; a folder list requested before
        now must not overrule what we are about to record."""

    def reachable(self) -> bool:
        """False while the last sync found Graph unreachable or refusing the sign-in:
        interactive commands then answer from the cache at once (the engine's polling
        finds out when Graph is back)."""


# -- names -----------------------------------------------------------------------------


def encode_component(display_name: str) -> str:
    """A displayName as one IMAP name component (see module docstring)."""
    return display_name.replace(HIERARCHY_DELIMITER, SLASH_SUBSTITUTE)


def decode_component(component: str) -> str:
    """The displayName for an IMAP name component."""
    return component.replace(SLASH_SUBSTITUTE, HIERARCHY_DELIMITER)


def normalize_name(name: str) -> str:
    """RFC 3501 §5.1: INBOX is case-insensitive; a trailing delimiter is dropped
    (§6.3.3: it declares the intent to create inferiors)."""
    name = name.rstrip(HIERARCHY_DELIMITER)
    head, sep, rest = name.partition(HIERARCHY_DELIMITER)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def folder_visible_alone(row: ms.FolderRow, include_hidden: bool) -> bool:
    if row.is_search:
        return include_hidden
    if row.hidden or (row.well_known in HIDDEN_WELL_KNOWN):
        return include_hidden
    return True


def folder_names(rows: Iterable[ms.FolderRow], include_hidden: bool) -> dict[str, str]:
    """folder_id → IMAP name for every visible folder (children of invisible folders are
    invisible too). On a name clash the folder with the smaller id wins."""
    by_id = {row.folder_id: row for row in rows}
    names: dict[str, str | None] = {}

    def name_of(folder_id: str, depth: int = 0) -> str | None:
        if folder_id in names:
            return names[folder_id]
        row = by_id.get(folder_id)
        result: str | None = None
        if row is not None and depth < 64 and folder_visible_alone(row, include_hidden):
            if row.well_known == "inbox":
                result = INBOX
            elif row.parent_id is None:
                result = encode_component(row.display_name)
            else:
                parent = name_of(row.parent_id, depth + 1)
                if parent is not None:
                    result = parent + HIERARCHY_DELIMITER + encode_component(row.display_name)
        names[folder_id] = result
        return result

    taken: dict[str, tuple[str, str]] = {}
    for folder_id in sorted(by_id):
        name = name_of(folder_id)
        if name is None:
            continue
        key = name.upper() if name.upper() == INBOX else name
        if key in taken:
            log.warning("two folders map to the IMAP name %r; showing one of them", name)
            continue
        taken[key] = (folder_id, name)
    return dict(taken.values())


# -- conversions ------------------------------------------------------------------------


def iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def state_from_remote(message: RemoteMessage) -> ms.MessageState:
    return ms.MessageState(
        message_id=message.id,
        change_key=message.change_key,
        received=iso(message.received),
        is_read=message.is_read,
        is_draft=message.is_draft,
        flagged=message.flagged,
        categories=tuple(message.categories),
        last_verb=message.last_verb,
        internet_message_id=message.internet_message_id,
        last_modified=iso(message.last_modified) if message.last_modified else None,
    )


def with_verb(state: ms.MessageState, verb: int | None) -> ms.MessageState:
    """``state`` with the last verb we know: POST/PATCH answers carry no extended
    properties (GRAPH-MAIL-FACTS §10.3), so Graph's answer alone would forget it."""
    return replace(state, last_verb=verb or None)


def flag_state(state: ms.MessageState) -> flagmap.RemoteFlagState:
    return flagmap.RemoteFlagState(
        is_read=state.is_read,
        flagged=state.flagged,
        is_draft=state.is_draft,
        categories=state.categories,
        last_verb=state.last_verb,
    )


def row_flags(row: ms.MessageRow) -> frozenset[str]:
    return flagmap.imap_flags(flag_state(row.state), deleted=row.deleted)


def message_info(row: ms.MessageRow) -> MessageInfo:
    return MessageInfo(uid=row.uid, flags=row_flags(row), modseq=row.modseq)


def summary_json(body: bytes) -> str:
    """The summary of ``body`` as stored in SQLite (computed once per UID)."""
    encoded = mime.summarize(body).to_json()
    return encoded if isinstance(encoded, str) else json.dumps(encoded)


def summary_from_json(text: str) -> Any:
    return mime.MessageSummary.from_json(text)


def unavailable(exc: RemoteError, doing: str) -> Unavailable:
    """A client-safe sentence for a failed remote call."""
    if isinstance(exc, RemoteAuthError):
        return Unavailable(
            f"Microsoft 365 refused the bridge's sign-in, so {doing} is not possible now."
        )
    return Unavailable(f"Microsoft 365 cannot be reached right now, so {doing} failed.")


def backend_error(exc: RemoteError, doing: str) -> BackendError:
    """The client-facing error for a per-message failure of a multi-message request."""
    if isinstance(exc, (RemoteUnavailable, RemoteAuthError)):
        return unavailable(exc, doing)
    if isinstance(exc, RemoteNotFound):
        return MessageGone("A message was removed by another client meanwhile.")
    if isinstance(exc, RemotePermissionError):
        return NoPermission(f"Microsoft 365 does not allow {doing}.")
    return NotPermitted(f"Microsoft 365 refused {doing}.")


def _log_late_failure(task: asyncio.Future[None]) -> None:
    """Done-callback of a refresh a client stopped waiting for: retrieve its outcome."""
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, RemoteError):
        log.info("a background refresh failed: %s", exc)
    elif exc is not None:
        log.error("a background refresh failed", exc_info=exc)


def _unpin_unreferenced(db: sqlite_utils.Database, blobs: BlobCache, hashes: Iterable[str]) -> None:
    for digest in hashes:
        if not ms.hash_still_pinned(db, digest):
            blobs.unpin_sync(digest)


# -- body loading ---------------------------------------------------------------------------


class BodyLoader:
    """Downloads ``/$value`` for one account through the mailbox's concurrency limit,
    stores the bytes and records hash, size and summary. Shared by FETCH (on demand)
    and the sync engine's prefetch."""

    def __init__(
        self,
        store: Store,
        blobs: BlobCache,
        remote: Remote,
        account_id: str,
        settings: CacheSettings,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.remote = remote
        self.account_id = account_id
        self.settings = settings
        self._limit = asyncio.Semaphore(max(1, settings.max_concurrency))
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._loading: dict[tuple[str, int], asyncio.Future[tuple[ms.MessageRow, bytes]]] = {}

    async def download(self, message_id: str) -> bytes:
        """The MIME for ``message_id``; concurrent callers for one id share one request."""
        pending = self._inflight.get(message_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[message_id] = future
        try:
            async with self._limit:
                data = await self.remote.get_mime(message_id)
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting; do not warn about an unretrieved exception.
            future.exception()
            raise
        else:
            future.set_result(data)
            return data
        finally:
            del self._inflight[message_id]

    async def load(self, row: ms.MessageRow) -> tuple[ms.MessageRow, bytes]:
        """Fetch and record the body of ``row``; returns the updated row and the bytes
        now served for it. Concurrent loads of one UID share one load (download *and*
        record), so a second caller never downloads between the first one's download
        and its store write."""
        key = (row.folder_id, row.uid)
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[tuple[ms.MessageRow, bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self._loading[key] = future
        try:
            result = await self._load(row)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # nobody else may be waiting
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._loading[key]

    async def _load(self, row: ms.MessageRow) -> tuple[ms.MessageRow, bytes]:
        data: bytes | None = None
        if row.body_hash is None:
            # ``row`` may be stale: the prefetch works through a list read long ago, and
            # a client's FETCH may have loaded this body meanwhile (or the reverse).
            # One store read is far cheaper than a second ``/$value``.
            current = await self.store.read(
                lambda db: ms.message_by_remote_id(
                    db, self.account_id, row.folder_id, row.state.message_id
                )
            )
            if current is not None and current.uid == row.uid and current.body_hash is not None:
                cached = await self.blobs.get(current.body_hash)
                if cached is not None and current.summary is not None:
                    return current, cached
        if row.body_hash is not None and row.summary is None:
            # Only the summary is missing (older summary version): same bytes, no request.
            data = await self.blobs.get(row.body_hash)
        from_graph = data is None
        if data is None:
            data = await self.download(row.state.message_id)
        # Hashing and writing a large body happen in a worker thread, never on the loop.
        digest = await self.blobs.put(data, pin=row.pinned)
        if row.body_hash is not None and digest != row.body_hash:
            if row.pinned:
                # The pinned blob vanished from disk (a wiped cache): Graph's bytes are
                # all that is left, and a client that saw the old ones will notice.
                log.error(
                    "cached bytes of UID %d in folder %s were lost; serving Graph's new copy",
                    row.uid,
                    row.folder_id,
                )
            else:
                log.info("re-downloaded body of UID %d differs; no client saw it", row.uid)
        remote_hash = digest if from_graph else row.remote_hash
        summary = row.summary
        if row.body_hash != digest or summary is None:
            summary = await asyncio.to_thread(summary_json, data)
        updated = replace(
            row, body_hash=digest, size=len(data), summary=summary, remote_hash=remote_hash
        )
        if updated != row:
            await self.store.write(
                lambda db: ms.record_body(
                    db,
                    self.account_id,
                    row.folder_id,
                    row.uid,
                    body_hash=digest,
                    size=len(data),
                    summary=summary,
                    remote_hash=remote_hash,
                )
            )
        return updated, data


# -- the backend ------------------------------------------------------------------------------


class CachedBackend:
    """The Graph-backed ``MailBackend`` of one account."""

    def __init__(
        self,
        store: Store,
        blobs: BlobCache,
        remote: Remote,
        identity: AccountIdentity,
        events: EventBus,
        settings: CacheSettings | None = None,
        *,
        hooks: SyncHooks | None = None,
        loader: BodyLoader | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.remote = remote
        self.identity = identity
        self.events = events
        self.settings = settings or CacheSettings()
        self.hooks = hooks
        self.account_id = identity.account_id
        self.loader = loader or BodyLoader(store, blobs, remote, self.account_id, self.settings)
        self._summaries: OrderedDict[str, Any] = OrderedDict()
        #: Read-ahead: folder id → highest UID already scheduled; the running loads.
        self._ahead: dict[str, int] = {}
        #: folder id → highest UID of the last FETCH there that had to download.
        self._last_read: dict[str, int] = {}  # highest UID whose body a client read
        self._ahead_tasks: set[asyncio.Task[None]] = set()

    # -- helpers ---------------------------------------------------------------------------
    def _publish(self, events: Iterable[MailEvent]) -> None:
        for event in events:
            self.events.publish(event)

    def _note(self, folder_id: str, message_ids: Iterable[str]) -> None:
        """Tell the sync engine that Graph just answered a write of ours (see
        ``SyncHooks.local_change``): called after Graph's answer and before the store
        write that records it is queued."""
        if self.hooks is not None:
            self.hooks.local_change(folder_id, list(message_ids))

    async def _refresh(self, work: Callable[[SyncHooks], Awaitable[None]], doing: str) -> None:
        """Run an interactive refresh (``work(hooks)``) unless Graph is known to be down,
        waiting at most ``interactive_wait``: Graph's client retries outages for minutes,
        and a client must get its cached answer long before that. A refresh that takes
        longer carries on in the background."""
        hooks = self.hooks
        if hooks is None or not hooks.reachable():
            return
        task = asyncio.ensure_future(work(hooks))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.settings.interactive_wait)
        except TimeoutError:
            log.info("%s is slow; answering from the cache", doing)
            task.add_done_callback(_log_late_failure)
        except RemoteError as exc:
            log.info("%s failed; answering from the cache: %s", doing, exc)

    def _note_folders(self, *folder_ids: str) -> None:
        if self.hooks is not None:
            self.hooks.local_folder_change(folder_ids)

    async def _tree(self) -> tuple[dict[str, ms.FolderRow], dict[str, str]]:
        """(folder_id → row for all recorded folders, IMAP name → folder_id if visible)."""
        rows = await self.store.read(lambda db: ms.list_folders(db, self.account_id))
        by_id = {row.folder_id: row for row in rows}
        names = folder_names(rows, self.settings.include_hidden)
        return by_id, {name: folder_id for folder_id, name in names.items()}

    async def _folder_by_name(self, name: str) -> tuple[ms.FolderRow, str]:
        by_id, by_name = await self._tree()
        name = normalize_name(name)
        folder_id = by_name.get(name)
        if folder_id is None and self.hooks is not None:
            # Perhaps made in Outlook since the last look, or the first tree sync is
            # still running: look again before saying no.
            max_age = self.settings.tree_max_age
            await self._refresh(lambda h: h.refresh_tree(max_age), "reading the folder tree")
            by_id, by_name = await self._tree()
            folder_id = by_name.get(name)
        if folder_id is None:
            raise MailboxNotFound(f"There is no mailbox named {name}.")
        return by_id[folder_id], name

    async def _folder(self, mailbox_id: str) -> tuple[ms.FolderRow, str]:
        by_id, by_name = await self._tree()
        row = by_id.get(mailbox_id)
        names = {folder_id: name for name, folder_id in by_name.items()}
        if row is None or mailbox_id not in names:
            raise MailboxNotFound("That mailbox no longer exists.")
        return row, names[mailbox_id]

    def _special_use(self, row: ms.FolderRow) -> SpecialUse | None:
        return SPECIAL_USE.get(row.well_known or "")

    async def _record_folder(
        self, folder: RemoteFolder, *, subscribe_as: str | None = None
    ) -> ms.FolderRow:
        def write(db: sqlite_utils.Database) -> ms.FolderRow:
            if subscribe_as is not None:
                ms.set_subscribed(db, self.account_id, subscribe_as, True)
            row, _ = ms.upsert_folder(
                db,
                self.account_id,
                folder_id=folder.id,
                parent_id=folder.parent_id,
                display_name=folder.display_name,
                well_known=folder.well_known,
                hidden=folder.hidden,
                is_search=folder.is_search_folder,
            )
            return row

        return await self.store.write(write)

    # -- hierarchy (RFC 3501 §6.3) ------------------------------------------------------
    async def list_mailboxes(self) -> list[MailboxInfo]:
        # Folder changes made in Outlook appear at the next LIST.
        max_age = self.settings.tree_max_age
        await self._refresh(lambda h: h.refresh_tree(max_age), "reading the folder tree")
        by_id, by_name = await self._tree()
        subscribed = await self.store.read(lambda db: ms.subscriptions(db, self.account_id))
        visible = set(by_name.values())
        parents = {by_id[f].parent_id for f in visible}
        infos = [
            MailboxInfo(
                name=name,
                mailbox_id=folder_id,
                special_use=self._special_use(by_id[folder_id]),
                has_children=folder_id in parents,
                selectable=True,
                subscribed=name in subscribed,
            )
            for name, folder_id in by_name.items()
        ]
        # INBOX first, then by name: a parent's name is a prefix of its children's.
        infos.sort(key=lambda info: (info.name != INBOX, info.name.split(HIERARCHY_DELIMITER)))
        return infos

    async def create_mailbox(self, name: str) -> MailboxInfo:
        name = normalize_name(name)
        if not name:
            raise NotPermitted("A mailbox name cannot be empty.")
        _, by_name = await self._tree()
        if name in by_name:
            raise MailboxExists(f"The mailbox {name} already exists.")
        folder_id = await self._ensure_path(name, by_name)
        self._publish([MailboxesChanged(self.account_id)])
        return MailboxInfo(name=name, mailbox_id=folder_id, subscribed=True)

    async def _ensure_path(self, name: str, by_name: dict[str, str]) -> str:
        """Create every missing folder along ``name``; returns the last folder's id."""
        parts = name.split(HIERARCHY_DELIMITER)
        if any(part == "" for part in parts):
            raise NotPermitted("A mailbox name cannot contain an empty level.")
        parent_id: str | None = None
        path = ""
        for part in parts:
            path = part if not path else path + HIERARCHY_DELIMITER + part
            existing = by_name.get(path)
            if existing is not None:
                parent_id = existing
                continue
            try:
                folder = await self.remote.create_folder(parent_id, decode_component(part))
            except RemoteConflict as exc:
                raise MailboxExists(f"A folder named {part} already exists there.") from exc
            except (RemoteUnavailable, RemoteAuthError) as exc:
                raise unavailable(exc, "creating the mailbox") from exc
            except RemotePermissionError as exc:
                raise NoPermission("Microsoft 365 does not allow creating that folder.") from exc
            except RemoteError as exc:
                raise NotPermitted("Microsoft 365 refused to create that folder.") from exc
            self._note_folders(folder.id)
            row = await self._record_folder(folder, subscribe_as=path)
            by_name[path] = row.folder_id
            parent_id = row.folder_id
        assert parent_id is not None
        return parent_id

    async def delete_mailbox(self, name: str) -> None:
        row, name = await self._folder_by_name(name)
        if row.well_known is not None:
            raise NotPermitted(f"{name} is a standard folder and cannot be deleted.")
        by_id, _ = await self._tree()
        if any(other.parent_id == row.folder_id for other in by_id.values()):
            # RFC 3501 §6.3.4 would keep the inferiors; Graph deletes them with the
            # parent, so refuse rather than lose them.
            raise NotPermitted(f"{name} has subfolders; delete them first.")
        try:
            await self.remote.delete_folder(row.folder_id)
        except RemoteNotFound:
            pass
        except (RemoteUnavailable, RemoteAuthError) as exc:
            raise unavailable(exc, "deleting the mailbox") from exc
        except RemoteError as exc:
            raise NotPermitted("Microsoft 365 refused to delete that folder.") from exc
        self._note_folders(row.folder_id)

        def write(db: sqlite_utils.Database) -> None:
            hashes = ms.delete_folder(db, self.account_id, row.folder_id)
            ms.set_subscribed(db, self.account_id, name, False)
            _unpin_unreferenced(db, self.blobs, hashes)

        await self.store.write(write)
        self._publish([MailboxReset(row.folder_id), MailboxesChanged(self.account_id)])

    async def rename_mailbox(self, old: str, new: str) -> None:
        row, old = await self._folder_by_name(old)
        new = normalize_name(new)
        _, by_name = await self._tree()
        if new in by_name:
            raise MailboxExists(f"The mailbox {new} already exists.")
        if new == old or new.startswith(old + HIERARCHY_DELIMITER):
            raise NotPermitted("A mailbox cannot be renamed into itself.")
        if row.well_known == "inbox":
            await self._rename_inbox(row, new, by_name)
            return
        if row.well_known is not None:
            raise NotPermitted(f"{old} is a standard folder and cannot be renamed.")
        parent_name, _, leaf = new.rpartition(HIERARCHY_DELIMITER)
        if not leaf:
            raise NotPermitted("A mailbox name cannot be empty.")
        parent_id = await self._ensure_path(parent_name, by_name) if parent_name else None
        folder: RemoteFolder | None = None
        try:
            if parent_id != row.parent_id:
                folder = await self.remote.move_folder(row.folder_id, parent_id)
            if decode_component(leaf) != row.display_name:
                folder = await self.remote.rename_folder(row.folder_id, decode_component(leaf))
        except RemoteConflict as exc:
            raise MailboxExists(f"A folder named {leaf} already exists there.") from exc
        except (RemoteUnavailable, RemoteAuthError) as exc:
            raise unavailable(exc, "renaming the mailbox") from exc
        except RemoteError as exc:
            raise NotPermitted("Microsoft 365 refused to rename that folder.") from exc
        self._note_folders(row.folder_id)

        def write(db: sqlite_utils.Database) -> None:
            # Keyed on the folder id: UIDVALIDITY, UIDs and modseqs stay as they are.
            ms.upsert_folder(
                db,
                self.account_id,
                folder_id=row.folder_id,
                parent_id=parent_id,
                display_name=folder.display_name if folder else decode_component(leaf),
                well_known=row.well_known,
                hidden=row.hidden,
                is_search=row.is_search,
            )
            ms.rename_subscriptions(db, self.account_id, old, new)

        await self.store.write(write)
        self._publish([MailboxesChanged(self.account_id)])

    async def _rename_inbox(self, inbox: ms.FolderRow, new: str, by_name: dict[str, str]) -> None:
        """RFC 3501 §6.3.5: renaming INBOX moves all its messages to a new mailbox and
        leaves INBOX empty (its UIDVALIDITY and UIDNEXT unchanged)."""
        await self._ensure_path(new, by_name)
        self._publish([MailboxesChanged(self.account_id)])
        rows = await self.store.read(lambda db: ms.messages(db, self.account_id, inbox.folder_id))
        if rows:
            await self.move(inbox.folder_id, [row.uid for row in rows], new)

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        name = normalize_name(name)
        if subscribed:
            await self._folder_by_name(name)
        await self.store.write(lambda db: ms.set_subscribed(db, self.account_id, name, subscribed))
        # LSUB answers differ now.
        self._publish([MailboxesChanged(self.account_id)])

    async def status(self, name: str) -> MailboxStatus:
        row, _ = await self._folder_by_name(name)

        def read(db: sqlite_utils.Database) -> tuple[ms.FolderRow | None, ms.FolderCounts]:
            return (
                ms.get_folder(db, self.account_id, row.folder_id),
                ms.folder_counts(db, self.account_id, row.folder_id),
            )

        fresh, counts = await self.store.read(read)
        if fresh is None:
            raise MailboxNotFound("That mailbox no longer exists.")
        return MailboxStatus(
            messages=counts.messages,
            recent=counts.recent,
            uidnext=fresh.uidnext,
            uidvalidity=fresh.uidvalidity,
            unseen=counts.unseen,
            highestmodseq=fresh.highestmodseq,
            size=counts.size,
        )

    # -- selected state ------------------------------------------------------------------
    async def select(self, name: str, read_only: bool) -> MailboxSnapshot:
        row, name = await self._folder_by_name(name)
        if self.hooks is not None:
            self.hooks.watch(row.folder_id)
            if row.synced_at is None:
                # Never synced: give the client a populated view if Graph answers.
                folder_id = row.folder_id
                await self._refresh(
                    lambda h: h.sync_folder(folder_id, only_if_unsynced=True),
                    "the first sync of a selected folder",
                )
            elif time.time() - row.synced_at > self.settings.folder_max_age:
                self.hooks.nudge(row.folder_id)

        def read(db: sqlite_utils.Database) -> tuple[ms.FolderRow | None, list[ms.MessageRow]]:
            return (
                ms.get_folder(db, self.account_id, row.folder_id),
                ms.messages(db, self.account_id, row.folder_id),
            )

        if read_only:
            fresh, rows = await self.store.read(read)
            recent = frozenset(r.uid for r in rows if r.recent)
        else:

            def claim(
                db: sqlite_utils.Database,
            ) -> tuple[ms.FolderRow | None, list[ms.MessageRow], set[int]]:
                fresh, rows = read(db)
                claimed = ms.claim_recent(
                    db, self.account_id, row.folder_id, [r.uid for r in rows if r.recent]
                )
                return fresh, rows, claimed

            fresh, rows, claimed = await self.store.write(claim)
            recent = frozenset(claimed)
        if fresh is None:
            raise MailboxNotFound("That mailbox no longer exists.")
        return MailboxSnapshot(
            mailbox_id=row.folder_id,
            name=name,
            uidvalidity=fresh.uidvalidity,
            uidnext=fresh.uidnext,
            highestmodseq=fresh.highestmodseq,
            messages=tuple(message_info(r) for r in rows),
            permanent_flags=flagmap.PERMANENT_FLAGS,
            allows_new_keywords=True,
            read_only=read_only,
            recent_uids=recent,
        )

    async def claim_recent(self, mailbox_id: str, uids: Iterable[int]) -> frozenset[int]:
        await self._folder(mailbox_id)
        wanted = list(uids)
        claimed = await self.store.write(
            lambda db: ms.claim_recent(db, self.account_id, mailbox_id, wanted)
        )
        return frozenset(claimed)

    async def poke(self, mailbox_id: str) -> None:
        row, _ = await self._folder(mailbox_id)
        if self.hooks is None:
            return
        self.hooks.watch(row.folder_id)
        if row.synced_at is None or time.time() - row.synced_at > self.settings.folder_max_age:
            self.hooks.nudge(row.folder_id)

    async def fetch(
        self, mailbox_id: str, uids: Sequence[int], need: FetchNeed
    ) -> list[MessageData]:
        await self._folder(mailbox_id)
        rows = await self.store.read(lambda db: ms.messages(db, self.account_id, mailbox_id, uids))
        content = FetchNeed.SIZE | FetchNeed.SUMMARY | FetchNeed.BODY
        bodies: dict[int, bytes] = {}
        if need & content:
            rows, bodies = await self._ensure_bodies(rows, need)
        result: list[MessageData] = []
        for row in rows:
            body = bodies.get(row.uid) if need & FetchNeed.BODY else None
            if need & FetchNeed.BODY and body is None:
                continue  # vanished remotely; the next sync expunges it
            result.append(
                MessageData(
                    uid=row.uid,
                    flags=row_flags(row) if need & FetchNeed.FLAGS else None,
                    internaldate=(
                        from_iso(row.state.received) if need & FetchNeed.INTERNALDATE else None
                    ),
                    size=row.size if need & FetchNeed.SIZE else None,
                    summary=(
                        self._summary(row) if need & FetchNeed.SUMMARY and row.summary else None
                    ),
                    body=body,
                    modseq=row.modseq,
                )
            )
        return result

    def _summary(self, row: ms.MessageRow) -> Any:
        """The parsed summary, or None if it was stored by an older summary version."""
        if row.summary is None or row.body_hash is None:
            return None
        cached = self._summaries.get(row.body_hash)
        if cached is None:
            try:
                cached = summary_from_json(row.summary)
            except (ValueError, KeyError, TypeError):
                return None
            self._summaries[row.body_hash] = cached
            if len(self._summaries) > 2048:
                self._summaries.popitem(last=False)
        else:
            self._summaries.move_to_end(row.body_hash)
        return cached

    async def _ensure_bodies(
        self, rows: list[ms.MessageRow], need: FetchNeed
    ) -> tuple[list[ms.MessageRow], dict[int, bytes]]:
        """Make sure every row has its body recorded (and, for BODY, its bytes at hand);
        pin what is about to be served for the first time."""
        pin = self.settings.pin_served
        bodies: dict[int, bytes] = {}
        to_load: list[ms.MessageRow] = []
        to_read: list[ms.MessageRow] = []
        for row in rows:
            wants_bytes = bool(need & FetchNeed.BODY) or (pin and not row.pinned)
            if row.body_hash is not None and need & FetchNeed.SUMMARY and not self._summary(row):
                # Stored by an older summary version: recompute from the same bytes.
                row = replace(row, summary=None)
            if row.body_hash is None or row.summary is None:
                to_load.append(row)
            elif wants_bytes:
                to_read.append(row)
        if to_read:
            # One thread hop for the whole chunk, not one per message.
            cached = await self.blobs.get_many(r.body_hash for r in to_read if r.body_hash)
            for row in to_read:
                data = cached.get(row.body_hash or "")
                if data is None:
                    to_load.append(row)
                else:
                    bodies[row.uid] = data
        updated: dict[int, ms.MessageRow] = {}
        gone: set[int] = set()
        if rows and need & FetchNeed.BODY:
            # A client reading bodies forward (mbsync, offlineimap, fetchmail ask for one
            # message per command): keep the read-ahead window topped up on every read,
            # hits included, so Graph always has requests in flight; refilling only on a
            # miss would stall once per window.
            folder_id = rows[0].folder_id
            top = max(row.uid for row in rows)
            previous = self._last_read.get(folder_id)
            self._last_read[folder_id] = top
            if previous is not None and previous < min(row.uid for row in rows):
                self._read_ahead(folder_id, top)
        if to_load:
            results = await asyncio.gather(
                *(self.loader.load(row) for row in to_load), return_exceptions=True
            )
            failure: BaseException | None = None
            for row, outcome in zip(to_load, results, strict=True):
                if isinstance(outcome, RemoteNotFound):
                    gone.add(row.uid)
                elif isinstance(outcome, (RemoteUnavailable, RemoteAuthError)):
                    failure = failure or unavailable(outcome, "loading the message")
                elif isinstance(outcome, BaseException):
                    failure = failure or outcome
                else:
                    new_row, data = outcome
                    updated[row.uid] = new_row
                    bodies[row.uid] = data
            if failure is not None:
                raise failure
            if gone and self.hooks is not None:
                self.hooks.nudge(rows[0].folder_id)
        rows = [updated.get(row.uid, row) for row in rows if row.uid not in gone]
        if pin:
            first_seen = [row for row in rows if not row.pinned and row.uid in bodies]
            if first_seen:
                await self._pin(first_seen, bodies)
                rows = [replace(row, pinned=True) if row in first_seen else row for row in rows]
        return rows, bodies

    def _read_ahead(self, folder_id: str, after_uid: int) -> None:
        """Start downloading the next few uncached bodies after ``after_uid`` in the
        background (see ``CacheSettings.read_ahead``). The loads share the mailbox's
        concurrency limit, and a FETCH that asks for one of them joins its load."""
        window = self.settings.read_ahead
        if window <= 0:
            return
        if self._ahead.get(folder_id, 0) >= after_uid + window // 2:
            return  # enough is on its way already
        task = asyncio.create_task(self._load_ahead(folder_id, after_uid, window))
        self._ahead_tasks.add(task)
        task.add_done_callback(self._ahead_done)

    async def _load_ahead(self, folder_id: str, after_uid: int, window: int) -> None:
        rows = await self.store.read(
            lambda db: ms.bodies_missing_after(db, self.account_id, folder_id, after_uid, window)
        )
        if not rows:
            # Nothing uncached ahead: look again only after half a window more reads.
            self._ahead[folder_id] = max(self._ahead.get(folder_id, 0), after_uid + window)
            return
        self._ahead[folder_id] = max(self._ahead.get(folder_id, 0), rows[-1].uid)
        results = await asyncio.gather(
            *(self.loader.load(row) for row in rows), return_exceptions=True
        )
        for outcome in results:
            if isinstance(outcome, RemoteError):
                log.info("read-ahead stopped: %s", outcome)
                break

    def _ahead_done(self, task: asyncio.Task[None]) -> None:
        self._ahead_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("read-ahead failed: %s", task.exception())

    async def _pin(self, rows: list[ms.MessageRow], bodies: dict[int, bytes]) -> None:
        def write(db: sqlite_utils.Database) -> None:
            for row in rows:
                assert row.body_hash is not None
                ms.mark_pinned(db, self.account_id, row.folder_id, row.uid)
                # In the writer thread, so that no concurrent unpin can interleave; the
                # bytes are at hand in case eviction took them since they were read.
                self.blobs.pin_sync(row.body_hash)
                if not self.blobs.contains(row.body_hash):
                    self.blobs.put_sync(bodies[row.uid], pin=True)

        await self.store.write(write)

    async def store_flags(
        self,
        mailbox_id: str,
        uids: Sequence[int],
        operation: StoreOperation,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> list[MessageInfo]:
        folder, _ = await self._folder(mailbox_id)
        rows = await self.store.read(lambda db: ms.messages(db, self.account_id, mailbox_id, uids))
        if unchanged_since is not None:
            # RFC 7162 §3.1.3: messages modified since are not touched.
            rows = [row for row in rows if row.modseq <= unchanged_since]
        targets: dict[int, flagmap.RemoteFlagTarget] = {}
        changes: list[FlagChange] = []
        for row in rows:
            current = row_flags(row)
            wanted = _apply(operation, current, flags)
            target = flagmap.remote_target(flag_state(row.state), wanted)
            targets[row.uid] = target
            if target.changes_remote:
                changes.append(
                    FlagChange(
                        message_id=row.state.message_id,
                        is_read=target.is_read,
                        flagged=target.flagged,
                        categories=target.categories,
                        last_verb=target.last_verb,
                    )
                )
        answers: dict[str, RemoteMessage | RemoteError] = {}
        if changes:
            try:
                answers = await self.remote.update_flags(changes)
            except (RemoteUnavailable, RemoteAuthError) as exc:
                raise unavailable(exc, "changing the flags") from exc
            except RemoteError as exc:
                raise NotPermitted("Microsoft 365 refused the flag change.") from exc
            self._note(mailbox_id, answers)
        failure: RemoteError | None = None

        def write(db: sqlite_utils.Database) -> tuple[list[MessageInfo], list[MessageInfo]]:
            touched: list[MessageInfo] = []
            changed: list[MessageInfo] = []
            for row in rows:
                target = targets[row.uid]
                fresh = ms.message_by_remote_id(
                    db, self.account_id, mailbox_id, row.state.message_id
                )
                if fresh is None:
                    continue  # expunged meanwhile
                # Without a remote change the state stays whatever the store has now
                # (the sync may have moved it on since ``rows`` was read).
                new_state = fresh.state
                if target.changes_remote:
                    answer = answers.get(row.state.message_id)
                    if not isinstance(answer, RemoteMessage):
                        continue
                    verb = target.last_verb if target.last_verb is not None else row.state.last_verb
                    new_state = with_verb(state_from_remote(answer), verb)
                before = row_flags(fresh)
                if new_state != fresh.state:
                    flags_differ = flagmap.imap_flags(flag_state(new_state)) != flagmap.imap_flags(
                        flag_state(fresh.state)
                    )
                    ms.update_state(
                        db, self.account_id, mailbox_id, fresh.uid, new_state, bump=flags_differ
                    )
                if target.deleted != fresh.deleted:
                    ms.set_deleted(db, self.account_id, mailbox_id, fresh.uid, target.deleted)
                after_row = ms.message_by_remote_id(
                    db, self.account_id, mailbox_id, row.state.message_id
                )
                assert after_row is not None
                info = message_info(after_row)
                touched.append(info)
                if info.flags != before:
                    changed.append(info)
            return touched, changed

        refused: BackendError | None = None
        for change in changes:
            answer = answers.get(change.message_id)
            if answer is None or isinstance(answer, (RemoteUnavailable, RemoteAuthError)):
                failure = failure or (answer or RemoteUnavailable("no answer for a flag change"))
            elif isinstance(answer, RemoteError) and not isinstance(answer, RemoteNotFound):
                refused = refused or NotPermitted("Microsoft 365 refused some of the flag changes.")
        touched, changed = await self.store.write(write)
        if changed:
            self._publish([FlagsChanged(mailbox_id, folder.uidvalidity, tuple(changed))])
        if failure is not None:
            raise unavailable(failure, "changing some of the flags")
        if refused is not None:
            raise refused
        return touched

    async def append(
        self,
        name: str,
        message: bytes,
        flags: frozenset[str],
        internaldate: datetime | None,
    ) -> AppendResult:
        folder, name = await self._folder_by_name(name)
        lowered = {flag.lower() for flag in flags}
        is_draft = "\\draft" in lowered or folder.well_known == "drafts"
        target = flagmap.remote_target(
            flagmap.RemoteFlagState(False, False, is_draft, (), None), flags
        )
        internet_id = mime.message_id(message)
        new = NewMessage(
            folder_id=folder.folder_id,
            mime=message,
            is_draft=is_draft,
            is_read=bool(target.is_read),
            flagged=bool(target.flagged),
            categories=target.categories or (),
            last_verb=target.last_verb or None,
            received=internaldate,
            internet_message_id=internet_id,
        )
        created: RemoteMessage | None = None
        if internet_id is not None:
            # Journal the intent first: if we crash after Graph's create but before the
            # store write, the client's retry finds the first attempt's message.
            earlier = await self.store.write(
                lambda db: ms.begin_append(
                    db, self.account_id, folder.folder_id, internet_id, time.time()
                )
            )
            if earlier is not None:
                created = await self._find_created(new, folder, since=earlier)
        if created is None:
            created = await self._sent_copy(new, folder) or await self._create(new, folder)
        # Graph may not honour every flag on create (a MIME create is read): converge.
        follow = flagmap.remote_target(
            flag_state(state_from_remote(created)), frozenset(f for f in flags)
        )
        if follow.changes_remote:
            try:
                answers = await self.remote.update_flags(
                    [
                        FlagChange(
                            created.id,
                            is_read=follow.is_read,
                            flagged=follow.flagged,
                            categories=follow.categories,
                            last_verb=follow.last_verb,
                        )
                    ]
                )
                answer = answers.get(created.id)
                if isinstance(answer, RemoteMessage):
                    created = answer
            except RemoteError as exc:
                log.warning("flags of an appended message could not be set: %s", exc)
        remote_hash: str | None = None
        if created.is_draft:
            # Graph's own rendering of the draft, so that a later edit in Outlook can be
            # told from a flag change by comparing bytes (bridge.sync.engine).
            try:
                remote_hash = await asyncio.to_thread(
                    blob_hash, await self.loader.download(created.id)
                )
            except RemoteError as exc:
                log.info("could not read back an appended draft: %s", exc)
        summary = await asyncio.to_thread(summary_json, message)
        # The client's bytes go to disk before the transaction (a worker thread, not the
        # store's single writer, which every account shares); the write pins them.
        digest = await self.blobs.put(message)
        state = state_from_remote(created)
        if created.last_verb is None:
            state = with_verb(
                state, follow.last_verb if follow.last_verb is not None else new.last_verb
            )

        def write(db: sqlite_utils.Database) -> tuple[ms.MessageRow, bool]:
            if internet_id is not None:
                ms.end_append(db, self.account_id, folder.folder_id, internet_id)
            self.blobs.pin_sync(digest)
            if not self.blobs.contains(digest):
                self.blobs.put_sync(message, pin=True)  # evicted meanwhile: rare
            # The sync engine may have seen the new message first and announced its UID.
            known = ms.message_by_remote_id(db, self.account_id, folder.folder_id, created.id)
            row = ms.add_message(
                db,
                self.account_id,
                folder.folder_id,
                state,
                body_hash=digest,
                size=len(message),
                summary=summary,
                pinned=True,
                deleted=target.deleted,
                remote_hash=remote_hash,
            )
            if row.body_hash != digest:
                if row.pinned and row.body_hash is not None:
                    # An existing UID (the Sent Items copy) whose bytes a client has
                    # already seen: those stay what the UID serves.
                    _unpin_unreferenced(db, self.blobs, [digest])
                    return row, known is None
                # The sync engine saw the new message first and gave it its UID; the
                # client's own bytes still win for that UID (no client saw others).
                ms.record_body(
                    db,
                    self.account_id,
                    folder.folder_id,
                    row.uid,
                    body_hash=digest,
                    size=len(message),
                    summary=summary,
                    remote_hash=remote_hash or row.remote_hash,
                    pin=True,
                )
                row = replace(
                    row, body_hash=digest, size=len(message), summary=summary, pinned=True
                )
            return row, known is None

        self._note(folder.folder_id, [created.id])
        row, new_uid = await self.store.write(write)
        if new_uid:
            # Announced once: a UID the sync engine gave first was announced by it.
            self._publish(
                [MessagesAdded(folder.folder_id, folder.uidvalidity, (message_info(row),))]
            )
        return AppendResult(uidvalidity=folder.uidvalidity, uid=row.uid)

    async def _create(self, new: NewMessage, folder: ms.FolderRow) -> RemoteMessage:
        """``create_message`` that never duplicates (see module docstring)."""
        for attempt in range(2):
            try:
                return await self.remote.create_message(new)
            except OutcomeUnknown as exc:
                if new.internet_message_id is None or attempt == 1:
                    raise unavailable(exc, "storing the message") from exc
                found = await self._find_created(new, folder)
                if found is not None:
                    return found
                log.info("APPEND outcome unknown and not found; creating once more")
            except (RemoteUnavailable, RemoteAuthError) as exc:
                raise unavailable(exc, "storing the message") from exc
            except RemotePermissionError as exc:
                raise NoPermission("Microsoft 365 does not allow adding messages there.") from exc
            except RemoteError as exc:
                raise NotPermitted("Microsoft 365 refused the message.") from exc
        raise Unavailable(
            "Microsoft 365 cannot be reached right now, so storing the message failed."
        )

    async def _sent_copy(self, new: NewMessage, folder: ms.FolderRow) -> RemoteMessage | None:
        """A client saving what it just sent into Sent Items: Graph's send already put
        a copy there (GRAPH-MAIL-FACTS §13), so adopt that copy instead of making a
        duplicate. Only for Sent Items and only by Message-ID."""
        if folder.well_known != "sentitems" or new.internet_message_id is None:
            return None
        try:
            found = await self.remote.find_by_internet_message_id(
                folder.folder_id, new.internet_message_id
            )
        except (RemoteUnavailable, RemoteAuthError) as exc:
            raise unavailable(exc, "storing the message") from exc
        except RemoteError as exc:
            log.info("Sent Items lookup failed; creating the message: %s", exc)
            return None
        # The copy may already have a UID (synced meanwhile): APPEND answers that UID.
        return found[0] if found else None

    async def _find_created(
        self, new: NewMessage, folder: ms.FolderRow, *, since: float | None = None
    ) -> RemoteMessage | None:
        """The message an earlier create of ``new`` made, if Graph has it: one the store
        does not know yet, or (``since``: after a crash the sync may have recorded it)
        one Graph last modified after the earlier attempt started."""
        assert new.internet_message_id is not None
        places = [folder.folder_id]
        if new.is_draft and folder.well_known != "drafts":
            places.append("drafts")
        for place in places:
            try:
                found = await self.remote.find_by_internet_message_id(
                    place, new.internet_message_id
                )
            except RemoteError as exc:
                raise unavailable(exc, "storing the message") from exc
            known = await self.store.read(
                lambda db: set(ms.remote_ids(db, self.account_id, folder.folder_id))
            )
            candidates = [
                m
                for m in found
                if m.id not in known
                or (
                    since is not None
                    and m.last_modified is not None
                    and m.last_modified.timestamp() >= since - 60
                )
            ]
            if not candidates:
                continue
            hit = candidates[-1]
            if place != folder.folder_id:
                try:
                    moved = await self.remote.move_messages([hit.id], folder.folder_id)
                except RemoteError as exc:
                    raise unavailable(exc, "storing the message") from exc
                answer = moved.get(hit.id)
                if not isinstance(answer, RemoteMessage):
                    raise Unavailable(_CANNOT_STORE)
                hit = answer
            return hit
        return None

    async def copy(self, mailbox_id: str, uids: Sequence[int], dest: str) -> CopyResult:
        return await self._transfer(mailbox_id, uids, dest, move=False)

    async def move(self, mailbox_id: str, uids: Sequence[int], dest: str) -> CopyResult:
        return await self._transfer(mailbox_id, uids, dest, move=True)

    async def _transfer(
        self, mailbox_id: str, uids: Sequence[int], dest: str, *, move: bool
    ) -> CopyResult:
        source, _ = await self._folder(mailbox_id)
        target, _ = await self._folder_by_name(dest)
        rows = await self.store.read(lambda db: ms.messages(db, self.account_id, mailbox_id, uids))
        if not rows:
            return CopyResult(target.uidvalidity, (), ())
        ids = [row.state.message_id for row in rows]
        doing = "moving the messages" if move else "copying the messages"
        if move and target.folder_id == source.folder_id:
            return await self._renumber(source, rows)
        try:
            if move:
                answers = await self.remote.move_messages(ids, target.folder_id)
            else:
                answers = await self.remote.copy_messages(ids, target.folder_id)
        except (RemoteUnavailable, RemoteAuthError) as exc:
            raise unavailable(exc, doing) from exc
        except RemoteError as exc:
            raise NotPermitted(f"Microsoft 365 refused {doing}.") from exc
        no_answer = RemoteUnavailable("no answer")
        done = [(row, answers.get(row.state.message_id, no_answer)) for row in rows]
        if move:
            self._note(source.folder_id, [row.state.message_id for row, _ in done])
        succeeded = [(row, ans) for row, ans in done if isinstance(ans, RemoteMessage)]
        failed = [ans for _, ans in done if not isinstance(ans, RemoteMessage)]
        if failed and not move:
            # RFC 3501 §6.4.7: a failed COPY leaves the destination as it was.
            if succeeded:
                try:
                    await self.remote.delete_messages(
                        [ans.id for _, ans in succeeded], DeleteMode.PERMANENT
                    )
                except RemoteError as exc:
                    log.warning("could not undo a partial COPY: %s", exc)
            raise backend_error(failed[0], doing)

        self._note(target.folder_id, [answer.id for _, answer in succeeded])

        def write(
            db: sqlite_utils.Database,
        ) -> tuple[list[tuple[int, ms.MessageRow]], list[int], set[int]]:
            pairs: list[tuple[int, ms.MessageRow]] = []
            fresh: set[int] = set()
            for row, answer in succeeded:
                known = ms.message_by_remote_id(db, self.account_id, target.folder_id, answer.id)
                state = state_from_remote(answer)
                if answer.last_verb is None:
                    state = with_verb(state, row.state.last_verb)
                added = ms.add_message(
                    db,
                    self.account_id,
                    target.folder_id,
                    state,
                    body_hash=row.body_hash,
                    size=row.size,
                    summary=row.summary,
                    pinned=row.pinned,
                    deleted=row.deleted,
                    # A copy is a new item whose MIME Graph may render anew.
                    remote_hash=row.remote_hash if move else None,
                )
                pairs.append((row.uid, added))
                if known is None:
                    fresh.add(added.uid)
            removed: list[int] = []
            if move and succeeded:
                # The body rows moved with the hash, so no pin needs review here.
                removed, _ = ms.remove_messages(
                    db, self.account_id, mailbox_id, [row.uid for row, _ in succeeded]
                )
            return pairs, removed, fresh

        pairs, removed, fresh = await self.store.write(write)
        events: list[MailEvent] = []
        # UIDs the sync engine gave first (it saw the destination change before this
        # write committed) were announced by it already.
        announce = sorted((added for _, added in pairs if added.uid in fresh), key=lambda r: r.uid)
        if announce:
            events.append(
                MessagesAdded(
                    target.folder_id,
                    target.uidvalidity,
                    tuple(message_info(added) for added in announce),
                )
            )
        if removed:
            events.append(MessagesExpunged(mailbox_id, source.uidvalidity, tuple(removed)))
        self._publish(events)
        if failed:
            raise backend_error(failed[0], doing)
        pairs.sort(key=lambda pair: pair[0])
        return CopyResult(
            uidvalidity=target.uidvalidity,
            source_uids=tuple(uid for uid, _ in pairs),
            dest_uids=tuple(added.uid for _, added in pairs),
        )

    async def _renumber(self, folder: ms.FolderRow, rows: list[ms.MessageRow]) -> CopyResult:
        """MOVE into the same mailbox (RFC 6851 §3.3 allows it): nothing changes in
        Graph; the messages get new UIDs and the old ones are expunged."""
        self._note(folder.folder_id, [row.state.message_id for row in rows])

        def write(db: sqlite_utils.Database) -> tuple[list[int], list[ms.MessageRow]]:
            removed, _ = ms.remove_messages(
                db, self.account_id, folder.folder_id, [row.uid for row in rows]
            )
            added = [
                ms.add_message(
                    db,
                    self.account_id,
                    folder.folder_id,
                    row.state,
                    body_hash=row.body_hash,
                    size=row.size,
                    summary=row.summary,
                    pinned=row.pinned,
                    deleted=row.deleted,
                    remote_hash=row.remote_hash,
                )
                for row in rows
            ]
            return removed, added

        removed, added = await self.store.write(write)
        self._publish(
            [
                MessagesExpunged(folder.folder_id, folder.uidvalidity, tuple(removed)),
                MessagesAdded(
                    folder.folder_id, folder.uidvalidity, tuple(message_info(r) for r in added)
                ),
            ]
        )
        return CopyResult(
            uidvalidity=folder.uidvalidity,
            source_uids=tuple(row.uid for row in rows),
            dest_uids=tuple(row.uid for row in added),
        )

    async def expunge(self, mailbox_id: str, uids: Sequence[int] | None = None) -> list[int]:
        folder, _ = await self._folder(mailbox_id)
        rows = await self.store.read(lambda db: ms.messages(db, self.account_id, mailbox_id, uids))
        rows = [row for row in rows if row.deleted]
        if not rows:
            return []
        mode = self.settings.expunge_mode
        if mode is DeleteMode.TRASH and folder.well_known == "deleteditems":
            mode = DeleteMode.SOFT
        try:
            answers = await self.remote.delete_messages(
                [row.state.message_id for row in rows], mode
            )
        except (RemoteUnavailable, RemoteAuthError) as exc:
            raise unavailable(exc, "expunging") from exc
        except RemoteError as exc:
            raise NotPermitted("Microsoft 365 refused to delete the messages.") from exc
        self._note(mailbox_id, answers)
        gone: list[int] = []
        failures: list[RemoteError] = []
        for row in rows:
            answer = answers.get(row.state.message_id, RemoteUnavailable("no answer"))
            if answer is None or isinstance(answer, RemoteNotFound):
                gone.append(row.uid)  # deleted now, or already gone remotely
            else:
                failures.append(answer)

        def write(db: sqlite_utils.Database) -> list[int]:
            removed, hashes = ms.remove_messages(db, self.account_id, mailbox_id, gone)
            _unpin_unreferenced(db, self.blobs, hashes)
            return removed

        removed = await self.store.write(write) if gone else []
        if removed:
            self._publish([MessagesExpunged(mailbox_id, folder.uidvalidity, tuple(removed))])
        if failures:
            raise backend_error(failures[0], "expunging some of the messages")
        return removed

    async def quota(self) -> Quota | None:
        # Graph's mailbox usage needs a report API the app is not granted: unknown.
        return None


def _apply(
    operation: StoreOperation, current: frozenset[str], flags: frozenset[str]
) -> frozenset[str]:
    wanted = {flag for flag in flags if flag.lower() != "\\recent"}
    if operation is StoreOperation.REPLACE:
        result = set(wanted)
    elif operation is StoreOperation.ADD:
        result = set(current) | wanted
    else:
        lowered = {flag.lower() for flag in wanted}
        result = {flag for flag in current if flag.lower() not in lowered}
    # \Draft is read-only (GRAPH-MAIL-FACTS §12.1): keep it as Graph has it.
    result = {flag for flag in result if flag.lower() != "\\draft"}
    if any(flag.lower() == "\\draft" for flag in current):
        result.add(flagmap.DRAFT)
    return frozenset(result)
