"""The ``Remote`` protocol: one mailbox in remote (Graph) terms, for CachedBackend and sync.

``bridge.graph`` implements it; ``bridge.backend.cached`` and ``bridge.sync`` consume it.
Nothing here knows URLs or JSON: ids are opaque strings (Graph immutable ids), folder
roles are Graph well-known names. Must not import outside the standard library.

Exception tree (all raised by Remote implementations)::

    RemoteError                      any failure; .code is Graph's error.code if known
    ├── RemoteUnavailable            transient: throttled, 5xx, network; retry later
    │   └── OutcomeUnknown           a non-idempotent request may or may not have happened
    ├── RemoteAuthError              the app cannot get a token (AADSTS…); needs an admin
    ├── RemotePermissionError        403: a missing role, or policy blocks this mailbox
    ├── RemoteNotFound               404: the item or folder is gone
    ├── RemoteConflict               409: e.g. a folder of that name exists
    ├── RemoteRejected               other 4xx: the request itself was refused
    └── DeltaTokenExpired            410: start the folder's delta round again
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class RemoteError(Exception):
    """A remote call failed. ``str()`` is one actionable sentence, safe to log."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.request_id = request_id


class RemoteUnavailable(RemoteError):
    """Transient: throttling, outage, timeout. ``retry_after`` in seconds if known."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class OutcomeUnknown(RemoteUnavailable):
    """A create/send/copy/move left the client but no answer came back."""


class RemoteAuthError(RemoteError):
    pass


class RemotePermissionError(RemoteError):
    pass


class RemoteNotFound(RemoteError):
    pass


class RemoteConflict(RemoteError):
    pass


class RemoteRejected(RemoteError):
    pass


class DeltaTokenExpired(RemoteError):
    pass


class DeleteMode(enum.Enum):
    SOFT = "soft"  # DELETE: recoverable items, leaves every visible folder
    TRASH = "trash"  # move to deleteditems
    PERMANENT = "permanent"  # permanentDelete


@dataclass(frozen=True, slots=True)
class RemoteMailbox:
    """The mailbox owner as resolved by ``GET /users/{u}``."""

    id: str
    email: str | None
    user_principal_name: str
    display_name: str


@dataclass(frozen=True, slots=True)
class RemoteFolder:
    id: str
    display_name: str
    parent_id: str | None  # None for top-level folders (children of msgfolderroot)
    well_known: str | None = None  # "inbox", "sentitems", … when it is one
    child_count: int = 0
    total_count: int = 0
    unread_count: int = 0
    hidden: bool = False
    is_search_folder: bool = False


@dataclass(frozen=True, slots=True)
class RemoteMessage:
    """Metadata of one message, as delta and list pages deliver it."""

    id: str
    change_key: str
    folder_id: str
    received: datetime
    is_read: bool
    is_draft: bool
    flagged: bool
    categories: tuple[str, ...] = ()
    last_verb: int | None = None  # PidTagLastVerbExecuted: 102/103 replied, 104 forwarded
    internet_message_id: str | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeltaPage:
    """One page of a per-folder message delta round.

    Exactly one of ``next_link`` / ``delta_link`` is set: ``next_link`` means the round
    goes on, ``delta_link`` ends it and is what to store for the next round.
    """

    messages: tuple[RemoteMessage, ...]
    removed_ids: tuple[str, ...]
    next_link: str | None = None
    delta_link: str | None = None


@dataclass(frozen=True, slots=True)
class FlagChange:
    """Desired flag state for one message (None = leave as is)."""

    message_id: str
    is_read: bool | None = None
    flagged: bool | None = None
    categories: tuple[str, ...] | None = None
    last_verb: int | None = None  # 0 = clear


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to create in a folder (IMAP APPEND)."""

    folder_id: str
    mime: bytes
    is_draft: bool
    is_read: bool
    flagged: bool = False
    categories: tuple[str, ...] = ()
    last_verb: int | None = None
    received: datetime | None = None
    internet_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    request_id: str | None = None
    sent_message_id: str | None = None  # the Sent Items copy, when known (draft+send)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    resource: str
    expires: datetime
    client_state: str = field(repr=False, default="")


@runtime_checkable
class Remote(Protocol):
    """One mailbox of a tenant, reached with the app's token."""

    mailbox: RemoteMailbox

    async def list_folders(self, include_hidden: bool = False) -> list[RemoteFolder]:
        """The whole folder tree, flattened, parents before children."""

    async def create_folder(self, parent_id: str | None, name: str) -> RemoteFolder: ...

    async def rename_folder(self, folder_id: str, name: str) -> RemoteFolder: ...

    async def move_folder(self, folder_id: str, parent_id: str | None) -> RemoteFolder: ...

    async def delete_folder(self, folder_id: str) -> None: ...

    async def message_delta(self, folder_id: str, link: str | None) -> DeltaPage:
        """One page: the first of a new round when ``link`` is None, else the page
        ``link`` (a next or delta link from an earlier page) points at."""

    async def get_message(self, message_id: str) -> RemoteMessage: ...

    async def get_mime(self, message_id: str) -> bytes:
        """``/$value``: the MIME Exchange generates for the message."""

    async def update_flags(
        self, changes: Sequence[FlagChange]
    ) -> dict[str, RemoteMessage | RemoteError]:
        """Apply many flag changes (``$batch``); per message the new state or the error."""

    async def move_messages(
        self, message_ids: Sequence[str], dest_folder_id: str
    ) -> dict[str, RemoteMessage | RemoteError]: ...

    async def copy_messages(
        self, message_ids: Sequence[str], dest_folder_id: str
    ) -> dict[str, RemoteMessage | RemoteError]: ...

    async def delete_messages(
        self, message_ids: Sequence[str], mode: DeleteMode
    ) -> dict[str, RemoteError | None]: ...

    async def create_message(self, message: NewMessage) -> RemoteMessage:
        """Create (APPEND). Not retried blindly: on ``OutcomeUnknown`` the caller looks
        for the message by Internet Message-ID before trying again."""

    async def find_by_internet_message_id(
        self, folder_id: str, internet_message_id: str
    ) -> list[RemoteMessage]: ...

    async def send_mime(self, mime: bytes) -> SendResult:
        """Send as this mailbox; Graph accepted it (202) when this returns."""
