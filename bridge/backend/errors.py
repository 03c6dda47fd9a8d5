"""Errors a mail backend raises, in IMAP terms.

The session maps each to a tagged response with an RFC 5530 response code, using
``str(error)`` as the human text, so the message must be safe to show a client: one
sentence, no secrets, no internal detail.
"""

from __future__ import annotations


class BackendError(Exception):
    """Base: the operation failed and changed nothing."""

    #: RFC 5530 response code the session puts in brackets, or None.
    response_code: str | None = None


class MailboxNotFound(BackendError):
    response_code = "NONEXISTENT"


class MailboxExists(BackendError):
    response_code = "ALREADYEXISTS"


class NotPermitted(BackendError):
    """The operation is refused by policy (e.g. deleting a well-known folder)."""

    response_code = "CANNOT"


class NoPermission(BackendError):
    response_code = "NOPERM"


class Unavailable(BackendError):
    """Graph is unreachable, throttling, or the account cannot authenticate right now."""

    response_code = "UNAVAILABLE"


class TooBig(BackendError):
    response_code = "TOOBIG"


class OverQuota(BackendError):
    response_code = "OVERQUOTA"


class MessageGone(BackendError):
    """A message vanished remotely between the client's view and this command."""

    response_code = "EXPUNGEISSUED"
