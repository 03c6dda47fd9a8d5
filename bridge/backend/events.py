"""Mailbox change events and the per-account bus that carries them to sessions.

Events are published only after the store transaction that caused them committed
(ARCHITECTURE.md, consistency rules). Subscribers are plain callables run synchronously
on the event loop: a session only queues the update and wakes its writer, so a
subscriber must never block or await. Must not import outside the standard library.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bridge.backend.types import MessageInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    """New messages (new UIDs) in a mailbox."""

    mailbox_id: str
    uidvalidity: int
    messages: tuple[MessageInfo, ...]


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """Flags of existing messages changed (by a client or in Outlook)."""

    mailbox_id: str
    uidvalidity: int
    messages: tuple[MessageInfo, ...]


@dataclass(frozen=True, slots=True)
class MessagesExpunged:
    """Messages left a mailbox for good."""

    mailbox_id: str
    uidvalidity: int
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MailboxesChanged:
    """The hierarchy changed (created, renamed, deleted); LIST answers differ now."""

    account_id: str


@dataclass(frozen=True, slots=True)
class MailboxReset:
    """A mailbox was deleted or its UIDVALIDITY changed: selecting sessions must close."""

    mailbox_id: str


MailEvent = MessagesAdded | FlagsChanged | MessagesExpunged | MailboxesChanged | MailboxReset
Subscriber = Callable[[MailEvent], None]


class EventBus:
    """Fan-out of committed changes to every interested session of one account."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Register ``subscriber``; returns the function that unregisters it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            try:
                self._subscribers.remove(subscriber)
            except ValueError:
                pass

        return unsubscribe

    def publish(self, event: MailEvent) -> None:
        # Copy: a subscriber may unsubscribe while we iterate (a session closing on
        # MailboxReset). One faulty subscriber must not starve the others.
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s", type(event).__name__)

    def __len__(self) -> int:
        return len(self._subscribers)
