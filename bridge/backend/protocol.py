"""The seam the IMAP session (and SMTP) talk to: ``MailBackend`` and ``Authenticator``.

A ``MailBackend`` is one account's mailbox in IMAP terms. Two implementations must pass
the same contract suite (``tests/contract/``): the in-memory reference backend
(``bridge.backend.memory``) and the Graph-backed ``CachedBackend``.

Rules every implementation follows:

- Names are Unicode, ``/``-delimited; ``INBOX`` is case-insensitive (RFC 3501 §5.1).
- Mailboxes are addressed by name for hierarchy commands and by the stable
  ``mailbox_id`` (from ``MailboxInfo``/``MailboxSnapshot``) once selected, so that a
  RENAME of a selected mailbox does not break the session.
- Every method either succeeds completely or raises a ``bridge.backend.errors``
  exception having changed nothing.
- Changes are announced on ``events`` after they are durable; a session learns about its
  own changes that way too (and de-duplicates by comparing with what it knows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from bridge.backend.events import EventBus
from bridge.backend.types import (
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
    StoreOperation,
)


@runtime_checkable
class MailBackend(Protocol):
    """One account's mailbox, as the IMAP session sees it."""

    identity: AccountIdentity
    events: EventBus

    # -- hierarchy (RFC 3501 §6.3) ---------------------------------------------------
    async def list_mailboxes(self) -> list[MailboxInfo]:
        """Every visible mailbox, parents before children."""

    async def create_mailbox(self, name: str) -> MailboxInfo:
        """Create ``name`` and any missing parents (RFC 3501 §6.3.3)."""

    async def delete_mailbox(self, name: str) -> None: ...

    async def rename_mailbox(self, old: str, new: str) -> None:
        """RENAME keeps UIDVALIDITY and UIDs; renaming INBOX moves its messages
        into a new mailbox and leaves INBOX empty (RFC 3501 §6.3.5)."""

    async def set_subscribed(self, name: str, subscribed: bool) -> None: ...

    async def status(self, name: str) -> MailboxStatus: ...

    # -- selected state ----------------------------------------------------------------
    async def select(self, name: str, read_only: bool) -> MailboxSnapshot:
        """Snapshot for SELECT/EXAMINE; also a hint to refresh the mailbox soon."""

    async def claim_recent(self, mailbox_id: str, uids: Iterable[int]) -> frozenset[int]:
        """Of ``uids`` (new to a session), those this session now owns as \\Recent."""

    async def poke(self, mailbox_id: str) -> None:
        """A client asked for news (NOOP, IDLE, CHECK): refresh if state is stale."""

    async def fetch(
        self, mailbox_id: str, uids: Sequence[int], need: FetchNeed
    ) -> list[MessageData]:
        """Data for ``uids`` that still exist, in UID order. Raises ``Unavailable`` if a
        body is needed, is not cached, and Graph cannot be reached."""

    async def store_flags(
        self,
        mailbox_id: str,
        uids: Sequence[int],
        operation: StoreOperation,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> list[MessageInfo]:
        """Apply a STORE; returns the new state of every message it touched."""

    async def append(
        self,
        name: str,
        message: bytes,
        flags: frozenset[str],
        internaldate: datetime | None,
    ) -> AppendResult: ...

    async def copy(self, mailbox_id: str, uids: Sequence[int], dest: str) -> CopyResult: ...

    async def move(self, mailbox_id: str, uids: Sequence[int], dest: str) -> CopyResult:
        """RFC 6851: like COPY, then the source messages are expunged."""

    async def expunge(self, mailbox_id: str, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only among ``uids`` if given: UID EXPUNGE).
        Returns the UIDs removed."""

    async def quota(self) -> Quota | None:
        """Storage usage, or None when the backend does not know it."""


@runtime_checkable
class Authenticator(Protocol):
    """Checks local credentials and opens the account's backend."""

    async def authenticate(self, login: str, password: str, peer: str) -> MailBackend | None:
        """The account's backend, or None for a wrong login or password."""
