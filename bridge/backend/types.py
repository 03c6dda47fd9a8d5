"""Value types that cross the seam between the IMAP session and a mail backend.

Everything here is in IMAP terms: mailbox names (Unicode, ``/``-delimited, not yet
modified-UTF-7 encoded — the wire layer does that), UIDs, flags. Nothing here knows
about Graph. Must not import anything outside the standard library.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

HIERARCHY_DELIMITER = "/"

#: System flags of RFC 3501 §2.3.2 that a backend may keep.
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})


class SpecialUse(enum.Enum):
    """RFC 6154 special-use attributes."""

    ALL = "\\All"
    ARCHIVE = "\\Archive"
    DRAFTS = "\\Drafts"
    FLAGGED = "\\Flagged"
    JUNK = "\\Junk"
    SENT = "\\Sent"
    TRASH = "\\Trash"


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    """One entry of the mailbox hierarchy, as LIST needs it."""

    name: str
    mailbox_id: str
    special_use: SpecialUse | None = None
    has_children: bool = False
    selectable: bool = True
    subscribed: bool = False


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """What STATUS and LIST-STATUS report (RFC 3501 §6.3.10, RFC 7162 §3.1.2.1)."""

    messages: int
    recent: int
    uidnext: int
    uidvalidity: int
    unseen: int
    highestmodseq: int
    size: int | None = None


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """The per-message state a session tracks for its sequence-number view."""

    uid: int
    flags: frozenset[str]
    modseq: int = 0


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """A mailbox's state at SELECT/EXAMINE time.

    ``messages`` is sorted by UID; its position + 1 is the message sequence number.
    ``recent_uids`` are the messages this session owns as \\Recent (RFC 3501 §2.3.2:
    a message is recent in at most one session).
    """

    mailbox_id: str
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: tuple[MessageInfo, ...]
    permanent_flags: frozenset[str]
    allows_new_keywords: bool
    read_only: bool
    recent_uids: frozenset[int] = frozenset()


class FetchNeed(enum.Flag):
    """Which parts of a message a FETCH or SEARCH needs from the backend."""

    NONE = 0
    FLAGS = enum.auto()
    INTERNALDATE = enum.auto()
    SIZE = enum.auto()
    SUMMARY = enum.auto()  # ENVELOPE and BODYSTRUCTURE (mime.MessageSummary)
    BODY = enum.auto()  # the full RFC 822 bytes, for sections and text search


@dataclass(frozen=True, slots=True)
class MessageData:
    """What the backend returns for one message of a FETCH/SEARCH.

    Fields that were not asked for are ``None``. ``summary`` is a
    ``bridge.mime.MessageSummary`` (typed ``Any`` here so that this module stays free of
    imports); it is computed once per message from ``body`` and cached by the backend.
    ``size`` always equals ``len(body)``.
    """

    uid: int
    flags: frozenset[str] | None = None
    internaldate: datetime | None = None
    size: int | None = None
    summary: Any = None
    body: bytes | None = None
    modseq: int = 0


class StoreOperation(enum.Enum):
    """STORE FLAGS / +FLAGS / -FLAGS (RFC 3501 §6.4.6)."""

    REPLACE = "FLAGS"
    ADD = "+FLAGS"
    REMOVE = "-FLAGS"


@dataclass(frozen=True, slots=True)
class AppendResult:
    """APPENDUID data (RFC 4315 §3)."""

    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True)
class CopyResult:
    """COPYUID data (RFC 4315 §3): source UIDs paired in order with destination UIDs."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Quota:
    """RFC 9208 STORAGE usage and limit, in kibibytes as the RFC counts them."""

    root: str
    used_kib: int
    limit_kib: int


@dataclass(frozen=True, slots=True)
class AccountIdentity:
    """Who a logged-in local user is; handed to a session after authentication."""

    account_id: str
    login: str
    email: str
    send_as: tuple[str, ...] = field(default=())
