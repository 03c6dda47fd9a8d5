"""Mailbox state in SQLite: folders, UID allocation, per-message state, subscriptions.

Owns the ``ms_*`` tables (component ``mailstate``) and the functions that read and write
them. Every function takes a ``sqlite_utils.Database`` and is meant to run inside
``Store.write``/``Store.read`` (so a caller composes several into one transaction), and
every query is scoped by ``account_id``.

Invariants kept here (ARCHITECTURE.md, "UIDVALIDITY"/"UID" rows):

- A folder's UIDVALIDITY is chosen once, when the folder is first recorded, from a
  per-account counter seeded with the current time (so it also grows across a lost and
  recreated mapping) and never changes while the folder id is known.
- UIDs come from the folder's ``uidnext`` and are never reused: expunging deletes the
  row but never lowers ``uidnext``.
- Every change to a folder's messages increments its ``highestmodseq`` and stamps the
  changed row with the new value (RFC 7162 §3.1.1 MODSEQ); removals bump it too.
- A folder's delta link is written only through :func:`finish_round`, which the sync
  engine calls in the same transaction as the changes of the round's last page.

Values cross this module as its own dataclasses; it must not import anything from the
bridge except ``bridge.store``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlite_utils

from bridge.store.db import register_migrations

_SCHEMA_1 = """
CREATE TABLE ms_accounts (
    account_id TEXT PRIMARY KEY,
    last_uidvalidity INTEGER NOT NULL DEFAULT 0,
    tree_synced_at REAL
);
CREATE TABLE ms_folders (
    account_id TEXT NOT NULL,
    folder_id TEXT NOT NULL,
    parent_id TEXT,
    display_name TEXT NOT NULL,
    well_known TEXT,
    hidden INTEGER NOT NULL DEFAULT 0,
    is_search INTEGER NOT NULL DEFAULT 0,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    delta_link TEXT,
    synced_at REAL,
    PRIMARY KEY (account_id, folder_id)
);
CREATE TABLE ms_messages (
    account_id TEXT NOT NULL,
    folder_id TEXT NOT NULL,
    uid INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    change_key TEXT NOT NULL,
    received TEXT NOT NULL,
    is_read INTEGER NOT NULL,
    is_draft INTEGER NOT NULL,
    flagged INTEGER NOT NULL,
    categories TEXT NOT NULL DEFAULT '[]',
    last_verb INTEGER,
    internet_message_id TEXT,
    last_modified TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    recent INTEGER NOT NULL DEFAULT 1,
    modseq INTEGER NOT NULL,
    body_hash TEXT,
    size INTEGER,
    summary TEXT,
    pinned INTEGER NOT NULL DEFAULT 0,
    remote_hash TEXT,
    PRIMARY KEY (account_id, folder_id, uid),
    FOREIGN KEY (account_id, folder_id)
        REFERENCES ms_folders(account_id, folder_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX ms_messages_by_id ON ms_messages(account_id, folder_id, message_id);
CREATE INDEX ms_messages_by_imid ON ms_messages(account_id, internet_message_id);
CREATE INDEX ms_messages_by_hash ON ms_messages(body_hash);
CREATE TABLE ms_subscriptions (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
"""

# An APPEND's intent, written before the create so that a crash between Graph's create
# and our store write is recognised when the client retries (see bridge.backend.cached).
_SCHEMA_2 = """
CREATE TABLE ms_pending_appends (
    account_id TEXT NOT NULL,
    folder_id TEXT NOT NULL,
    internet_message_id TEXT NOT NULL,
    started REAL NOT NULL,
    PRIMARY KEY (account_id, folder_id, internet_message_id)
);
"""

register_migrations("mailstate", [_SCHEMA_1, _SCHEMA_2])

#: Well-known folders Outlook itself hides (GRAPH-MAIL-FACTS §6.2); not IMAP mailboxes
#: unless hidden folders are configured.
HIDDEN_WELL_KNOWN = frozenset(
    {
        "outbox",
        "conversationhistory",
        "syncissues",
        "conflicts",
        "localfailures",
        "serverfailures",
        "searchfolders",
        "clutter",
        "recoverableitemsdeletions",
        "scheduled",
    }
)


@dataclass(frozen=True, slots=True)
class FolderRow:
    account_id: str
    folder_id: str
    parent_id: str | None
    display_name: str
    well_known: str | None
    hidden: bool
    is_search: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    delta_link: str | None
    synced_at: float | None


@dataclass(frozen=True, slots=True)
class MessageState:
    """The remote state of one message, as the store keeps it."""

    message_id: str
    change_key: str
    received: str  # ISO 8601, UTC
    is_read: bool
    is_draft: bool
    flagged: bool
    categories: tuple[str, ...] = ()
    last_verb: int | None = None
    internet_message_id: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRow:
    folder_id: str
    uid: int
    state: MessageState
    deleted: bool
    recent: bool
    modseq: int
    body_hash: str | None
    size: int | None
    summary: str | None
    pinned: bool
    #: SHA-256 of the last ``/$value`` seen from Graph (None for appended bytes), so
    #: that a draft's content change can be told from a flag change.
    remote_hash: str | None = None


_FOLDER_COLUMNS = (
    "account_id, folder_id, parent_id, display_name, well_known, hidden, is_search,"
    " uidvalidity, uidnext, highestmodseq, delta_link, synced_at"
)
_MESSAGE_COLUMNS = (
    "folder_id, uid, message_id, change_key, received, is_read, is_draft, flagged,"
    " categories, last_verb, internet_message_id, last_modified, deleted, recent, modseq,"
    " body_hash, size, summary, pinned, remote_hash"
)


def _folder(row: tuple) -> FolderRow:  # type: ignore[type-arg]
    return FolderRow(
        account_id=row[0],
        folder_id=row[1],
        parent_id=row[2],
        display_name=row[3],
        well_known=row[4],
        hidden=bool(row[5]),
        is_search=bool(row[6]),
        uidvalidity=row[7],
        uidnext=row[8],
        highestmodseq=row[9],
        delta_link=row[10],
        synced_at=row[11],
    )


def _message(row: tuple) -> MessageRow:  # type: ignore[type-arg]
    return MessageRow(
        folder_id=row[0],
        uid=row[1],
        state=MessageState(
            message_id=row[2],
            change_key=row[3],
            received=row[4],
            is_read=bool(row[5]),
            is_draft=bool(row[6]),
            flagged=bool(row[7]),
            categories=tuple(json.loads(row[8])),
            last_verb=row[9],
            internet_message_id=row[10],
            last_modified=row[11],
        ),
        deleted=bool(row[12]),
        recent=bool(row[13]),
        modseq=row[14],
        body_hash=row[15],
        size=row[16],
        summary=row[17],
        pinned=bool(row[18]),
        remote_hash=row[19],
    )


# -- accounts and folders ----------------------------------------------------------------


def _ensure_account(db: sqlite_utils.Database, account_id: str) -> None:
    db.execute("INSERT OR IGNORE INTO ms_accounts(account_id) VALUES (?)", [account_id])


def allocate_uidvalidity(db: sqlite_utils.Database, account_id: str, now: float) -> int:
    """A fresh UIDVALIDITY: the current time in seconds, or one more than the last one
    given out in this account, whichever is larger (RFC 3501 §2.3.1.1: must grow when a
    mailbox's UIDs are reassigned; a 32-bit value)."""
    _ensure_account(db, account_id)
    (last,) = db.execute(
        "SELECT last_uidvalidity FROM ms_accounts WHERE account_id = ?", [account_id]
    ).fetchone()
    value = max(int(now) & 0xFFFFFFFF, int(last) + 1)
    db.execute(
        "UPDATE ms_accounts SET last_uidvalidity = ? WHERE account_id = ?", [value, account_id]
    )
    return value


def tree_synced_at(db: sqlite_utils.Database, account_id: str) -> float | None:
    row = db.execute(
        "SELECT tree_synced_at FROM ms_accounts WHERE account_id = ?", [account_id]
    ).fetchone()
    return row[0] if row else None


def set_tree_synced(db: sqlite_utils.Database, account_id: str, now: float) -> None:
    _ensure_account(db, account_id)
    db.execute("UPDATE ms_accounts SET tree_synced_at = ? WHERE account_id = ?", [now, account_id])


def list_folders(db: sqlite_utils.Database, account_id: str) -> list[FolderRow]:
    rows = db.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM ms_folders WHERE account_id = ? ORDER BY folder_id",
        [account_id],
    ).fetchall()
    return [_folder(row) for row in rows]


def get_folder(db: sqlite_utils.Database, account_id: str, folder_id: str) -> FolderRow | None:
    row = db.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM ms_folders WHERE account_id = ? AND folder_id = ?",
        [account_id, folder_id],
    ).fetchone()
    return _folder(row) if row else None


def upsert_folder(
    db: sqlite_utils.Database,
    account_id: str,
    *,
    folder_id: str,
    parent_id: str | None,
    display_name: str,
    well_known: str | None,
    hidden: bool,
    is_search: bool,
    now: float | None = None,
) -> tuple[FolderRow, bool]:
    """Record a folder (new ones get a UIDVALIDITY). Returns (row, changed) where
    ``changed`` is true when the folder is new or its name, parent or role changed."""
    existing = get_folder(db, account_id, folder_id)
    if existing is None:
        uidvalidity = allocate_uidvalidity(db, account_id, time.time() if now is None else now)
        db.execute(
            "INSERT INTO ms_folders(account_id, folder_id, parent_id, display_name, well_known,"
            " hidden, is_search, uidvalidity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                account_id,
                folder_id,
                parent_id,
                display_name,
                well_known,
                int(hidden),
                int(is_search),
                uidvalidity,
            ],
        )
        row = get_folder(db, account_id, folder_id)
        assert row is not None
        return row, True
    # A folder's well-known role never goes away once learned (a listing may omit it).
    role = well_known or existing.well_known
    changed = (
        existing.parent_id != parent_id
        or existing.display_name != display_name
        or existing.well_known != role
        or existing.hidden != hidden
        or existing.is_search != is_search
    )
    if changed:
        db.execute(
            "UPDATE ms_folders SET parent_id = ?, display_name = ?, well_known = ?, hidden = ?,"
            " is_search = ? WHERE account_id = ? AND folder_id = ?",
            [parent_id, display_name, role, int(hidden), int(is_search), account_id, folder_id],
        )
        row = get_folder(db, account_id, folder_id)
        assert row is not None
        return row, True
    return existing, False


def delete_folder(db: sqlite_utils.Database, account_id: str, folder_id: str) -> list[str]:
    """Forget a folder and its messages; returns the body hashes whose pins to review."""
    hashes = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT body_hash FROM ms_messages WHERE account_id = ? AND folder_id = ?"
            " AND body_hash IS NOT NULL AND pinned = 1",
            [account_id, folder_id],
        ).fetchall()
    ]
    db.execute(
        "DELETE FROM ms_messages WHERE account_id = ? AND folder_id = ?", [account_id, folder_id]
    )
    db.execute(
        "DELETE FROM ms_folders WHERE account_id = ? AND folder_id = ?", [account_id, folder_id]
    )
    return hashes


def finish_round(
    db: sqlite_utils.Database, account_id: str, folder_id: str, delta_link: str | None, now: float
) -> None:
    """Save the delta link covering everything applied so far (in the same transaction)."""
    db.execute(
        "UPDATE ms_folders SET delta_link = ?, synced_at = ?"
        " WHERE account_id = ? AND folder_id = ?",
        [delta_link, now, account_id, folder_id],
    )


def bump_modseq(db: sqlite_utils.Database, account_id: str, folder_id: str) -> int:
    db.execute(
        "UPDATE ms_folders SET highestmodseq = highestmodseq + 1"
        " WHERE account_id = ? AND folder_id = ?",
        [account_id, folder_id],
    )
    row = db.execute(
        "SELECT highestmodseq FROM ms_folders WHERE account_id = ? AND folder_id = ?",
        [account_id, folder_id],
    ).fetchone()
    if row is None:
        raise LookupError(f"folder {folder_id!r} is not recorded")
    return int(row[0])


# -- subscriptions -------------------------------------------------------------------------


def subscriptions(db: sqlite_utils.Database, account_id: str) -> set[str]:
    return {
        row[0]
        for row in db.execute(
            "SELECT name FROM ms_subscriptions WHERE account_id = ?", [account_id]
        ).fetchall()
    }


def set_subscribed(db: sqlite_utils.Database, account_id: str, name: str, on: bool) -> None:
    if on:
        db.execute(
            "INSERT OR IGNORE INTO ms_subscriptions(account_id, name) VALUES (?, ?)",
            [account_id, name],
        )
    else:
        db.execute(
            "DELETE FROM ms_subscriptions WHERE account_id = ? AND name = ?", [account_id, name]
        )


def rename_subscriptions(db: sqlite_utils.Database, account_id: str, old: str, new: str) -> None:
    """Subscriptions follow a RENAME, including those of inferior names."""
    for name in subscriptions(db, account_id):
        if name == old or name.startswith(old + "/"):
            set_subscribed(db, account_id, name, False)
            set_subscribed(db, account_id, new + name[len(old) :], True)


# -- messages ----------------------------------------------------------------------------


def messages(
    db: sqlite_utils.Database,
    account_id: str,
    folder_id: str,
    uids: Iterable[int] | None = None,
) -> list[MessageRow]:
    """Messages of a folder in UID order (only those among ``uids`` if given)."""
    if uids is None:
        rows = db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM ms_messages WHERE account_id = ? AND folder_id = ?"
            " ORDER BY uid",
            [account_id, folder_id],
        ).fetchall()
        return [_message(row) for row in rows]
    wanted = sorted(set(uids))
    result: list[MessageRow] = []
    # Chunked: SQLite limits the number of host parameters.
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM ms_messages WHERE account_id = ? AND folder_id = ?"
            f" AND uid IN ({marks}) ORDER BY uid",
            [account_id, folder_id, *chunk],
        ).fetchall()
        result.extend(_message(row) for row in rows)
    return result


def message_by_remote_id(
    db: sqlite_utils.Database, account_id: str, folder_id: str, message_id: str
) -> MessageRow | None:
    row = db.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM ms_messages WHERE account_id = ? AND folder_id = ?"
        " AND message_id = ?",
        [account_id, folder_id, message_id],
    ).fetchone()
    return _message(row) if row else None


def remote_ids(db: sqlite_utils.Database, account_id: str, folder_id: str) -> dict[str, int]:
    """message_id → UID for a folder."""
    return {
        row[0]: row[1]
        for row in db.execute(
            "SELECT message_id, uid FROM ms_messages WHERE account_id = ? AND folder_id = ?",
            [account_id, folder_id],
        ).fetchall()
    }


def add_message(
    db: sqlite_utils.Database,
    account_id: str,
    folder_id: str,
    state: MessageState,
    *,
    body_hash: str | None = None,
    size: int | None = None,
    summary: str | None = None,
    pinned: bool = False,
    deleted: bool = False,
    remote_hash: str | None = None,
) -> MessageRow:
    """Give ``state`` the folder's next UID. Idempotent: a message already in the folder
    (same remote id) keeps its UID and is returned unchanged."""
    existing = message_by_remote_id(db, account_id, folder_id, state.message_id)
    if existing is not None:
        return existing
    row = db.execute(
        "SELECT uidnext FROM ms_folders WHERE account_id = ? AND folder_id = ?",
        [account_id, folder_id],
    ).fetchone()
    if row is None:
        raise LookupError(f"folder {folder_id!r} is not recorded")
    uid = int(row[0])
    db.execute(
        "UPDATE ms_folders SET uidnext = ? WHERE account_id = ? AND folder_id = ?",
        [uid + 1, account_id, folder_id],
    )
    modseq = bump_modseq(db, account_id, folder_id)
    db.execute(
        f"INSERT INTO ms_messages(account_id, {_MESSAGE_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            account_id,
            folder_id,
            uid,
            state.message_id,
            state.change_key,
            state.received,
            int(state.is_read),
            int(state.is_draft),
            int(state.flagged),
            json.dumps(list(state.categories)),
            state.last_verb,
            state.internet_message_id,
            state.last_modified,
            int(deleted),
            1,
            modseq,
            body_hash,
            size,
            summary,
            int(pinned),
            remote_hash,
        ],
    )
    added = message_by_remote_id(db, account_id, folder_id, state.message_id)
    assert added is not None
    return added


def update_state(
    db: sqlite_utils.Database,
    account_id: str,
    folder_id: str,
    uid: int,
    state: MessageState,
    *,
    bump: bool = True,
) -> int:
    """Replace a message's remote state; returns its modseq. ``bump=False`` records a
    change no client can see (a new changeKey, the same flags) without a new modseq,
    so CONDSTORE clients are not sent useless updates."""
    if bump:
        modseq = bump_modseq(db, account_id, folder_id)
    else:
        row = db.execute(
            "SELECT modseq FROM ms_messages WHERE account_id = ? AND folder_id = ? AND uid = ?",
            [account_id, folder_id, uid],
        ).fetchone()
        modseq = int(row[0]) if row else 0
    db.execute(
        "UPDATE ms_messages SET change_key = ?, received = ?, is_read = ?, is_draft = ?,"
        " flagged = ?, categories = ?, last_verb = ?, internet_message_id = ?,"
        " last_modified = ?, modseq = ? WHERE account_id = ? AND folder_id = ? AND uid = ?",
        [
            state.change_key,
            state.received,
            int(state.is_read),
            int(state.is_draft),
            int(state.flagged),
            json.dumps(list(state.categories)),
            state.last_verb,
            state.internet_message_id,
            state.last_modified,
            modseq,
            account_id,
            folder_id,
            uid,
        ],
    )
    return modseq


def set_deleted(
    db: sqlite_utils.Database, account_id: str, folder_id: str, uid: int, deleted: bool
) -> int:
    """Set the local ``\\Deleted`` flag; returns the new modseq."""
    modseq = bump_modseq(db, account_id, folder_id)
    db.execute(
        "UPDATE ms_messages SET deleted = ?, modseq = ?"
        " WHERE account_id = ? AND folder_id = ? AND uid = ?",
        [int(deleted), modseq, account_id, folder_id, uid],
    )
    return modseq


def remove_messages(
    db: sqlite_utils.Database, account_id: str, folder_id: str, uids: Sequence[int]
) -> tuple[list[int], list[str]]:
    """Expunge ``uids``; returns (uids removed, pinned body hashes to review)."""
    rows = messages(db, account_id, folder_id, uids)
    if not rows:
        return [], []
    bump_modseq(db, account_id, folder_id)
    for row in rows:
        db.execute(
            "DELETE FROM ms_messages WHERE account_id = ? AND folder_id = ? AND uid = ?",
            [account_id, folder_id, row.uid],
        )
    hashes = sorted({row.body_hash for row in rows if row.body_hash and row.pinned})
    return [row.uid for row in rows], hashes


def record_body(
    db: sqlite_utils.Database,
    account_id: str,
    folder_id: str,
    uid: int,
    *,
    body_hash: str,
    size: int,
    summary: str,
    remote_hash: str | None,
    pin: bool = False,
) -> None:
    """Record the bytes a UID serves: at the first download, or when the bytes were
    re-downloaded or re-summarized (see ``bridge.backend.cached`` on pinning); with
    ``pin``, the client's own bytes of an APPEND, which must never be evicted."""
    db.execute(
        "UPDATE ms_messages SET body_hash = ?, size = ?, summary = ?, remote_hash = ?,"
        " pinned = pinned OR ? WHERE account_id = ? AND folder_id = ? AND uid = ?",
        [body_hash, size, summary, remote_hash, pin, account_id, folder_id, uid],
    )


def mark_pinned(db: sqlite_utils.Database, account_id: str, folder_id: str, uid: int) -> None:
    db.execute(
        "UPDATE ms_messages SET pinned = 1 WHERE account_id = ? AND folder_id = ? AND uid = ?",
        [account_id, folder_id, uid],
    )


def hash_still_pinned(db: sqlite_utils.Database, body_hash: str) -> bool:
    """Whether any message (of any account: blobs are shared by content) still needs
    ``body_hash`` kept."""
    row = db.execute(
        "SELECT 1 FROM ms_messages WHERE body_hash = ? AND pinned = 1 LIMIT 1", [body_hash]
    ).fetchone()
    return row is not None


def claim_recent(
    db: sqlite_utils.Database, account_id: str, folder_id: str, uids: Iterable[int]
) -> set[int]:
    """Of ``uids``, those still \\Recent; they stop being recent for everyone else
    (RFC 3501 §2.3.2)."""
    rows = messages(db, account_id, folder_id, uids)
    claimed = {row.uid for row in rows if row.recent}
    for uid in claimed:
        db.execute(
            "UPDATE ms_messages SET recent = 0 WHERE account_id = ? AND folder_id = ? AND uid = ?",
            [account_id, folder_id, uid],
        )
    return claimed


@dataclass(frozen=True, slots=True)
class FolderCounts:
    messages: int
    unseen: int
    recent: int
    size: int | None


def folder_counts(db: sqlite_utils.Database, account_id: str, folder_id: str) -> FolderCounts:
    row = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(is_read = 0), 0), COALESCE(SUM(recent), 0),"
        " SUM(size), COALESCE(SUM(size IS NULL), 0)"
        " FROM ms_messages WHERE account_id = ? AND folder_id = ?",
        [account_id, folder_id],
    ).fetchone()
    size = None if row[4] else int(row[3] or 0)
    return FolderCounts(messages=row[0], unseen=row[1], recent=row[2], size=size)


def find_by_internet_message_id(
    db: sqlite_utils.Database, account_id: str, folder_id: str, internet_message_id: str
) -> MessageRow | None:
    row = db.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM ms_messages WHERE account_id = ? AND folder_id = ?"
        " AND internet_message_id = ? ORDER BY uid LIMIT 1",
        [account_id, folder_id, internet_message_id],
    ).fetchone()
    return _message(row) if row else None


def bodies_missing(
    db: sqlite_utils.Database,
    account_id: str,
    folder_ids: Sequence[str],
    since: str,
    limit: int,
) -> list[MessageRow]:
    """Messages received at or after ``since`` (ISO) whose body was never downloaded,
    newest first: what the background prefetch should fetch next."""
    if not folder_ids:
        return []
    marks = ",".join("?" * len(folder_ids))
    rows = db.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM ms_messages WHERE account_id = ?"
        f" AND folder_id IN ({marks}) AND body_hash IS NULL AND received >= ?"
        " ORDER BY received DESC LIMIT ?",
        [account_id, *folder_ids, since, limit],
    ).fetchall()
    return [_message(row) for row in rows]


def bodies_missing_after(
    db: sqlite_utils.Database,
    account_id: str,
    folder_id: str,
    after_uid: int,
    limit: int,
) -> list[MessageRow]:
    """The next ``limit`` messages of a folder above ``after_uid`` (UID order) whose body
    was never downloaded: a FETCH's read-ahead."""
    rows = db.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM ms_messages WHERE account_id = ? AND folder_id = ?"
        " AND uid > ? AND body_hash IS NULL ORDER BY uid LIMIT ?",
        [account_id, folder_id, after_uid, limit],
    ).fetchall()
    return [_message(row) for row in rows]


def begin_append(
    db: sqlite_utils.Database,
    account_id: str,
    folder_id: str,
    internet_message_id: str,
    now: float,
) -> float | None:
    """Record an APPEND about to be sent to Graph; returns when an earlier, unfinished
    attempt with the same Message-ID started (None if there was none)."""
    row = db.execute(
        "SELECT started FROM ms_pending_appends"
        " WHERE account_id = ? AND folder_id = ? AND internet_message_id = ?",
        [account_id, folder_id, internet_message_id],
    ).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO ms_pending_appends(account_id, folder_id, internet_message_id,"
            " started) VALUES (?, ?, ?, ?)",
            [account_id, folder_id, internet_message_id, now],
        )
        return None
    return float(row[0])


def end_append(
    db: sqlite_utils.Database, account_id: str, folder_id: str, internet_message_id: str
) -> None:
    db.execute(
        "DELETE FROM ms_pending_appends"
        " WHERE account_id = ? AND folder_id = ? AND internet_message_id = ?",
        [account_id, folder_id, internet_message_id],
    )


def sync_progress(db: sqlite_utils.Database, account_id: str) -> dict[str, int]:
    """How far the account's sync has come, for ``account show`` (a separate process from
    the daemon, so it reads the store rather than asking the engine)."""
    hidden = sorted(HIDDEN_WELL_KNOWN)
    folders, done = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(delta_link IS NOT NULL), 0) FROM ms_folders"
        " WHERE account_id = ? AND hidden = 0 AND is_search = 0"
        f" AND COALESCE(well_known, '') NOT IN ({', '.join('?' * len(hidden))})",
        [account_id, *hidden],
    ).fetchone()
    messages, cached = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(body_hash IS NOT NULL), 0) FROM ms_messages"
        " WHERE account_id = ?",
        [account_id],
    ).fetchone()
    return {
        "folders": folders,
        "foldersSynced": done,
        "messages": messages,
        "bodiesCached": cached,
    }
