"""SMTP replies the submission server sends, and the mapping of Remote errors to them.

Owns: the reply value type, turning any text into one safe reply line, and the table
that decides whether a Graph failure is temporary (4xx: the client keeps the message and
retries, so nothing is lost) or permanent (5xx: the client bounces it to its user).
Must not import anything but the Remote exception tree and the standard library.

Mapping (RFC 5321 §4.2.2/§4.2.3 reply codes, RFC 3463 enhanced codes)::

    RemoteUnavailable, HTTP 429/503 throttling  451 4.4.5  system congestion
    OutcomeUnknown                              451 4.4.2  connection dropped mid-send
    RemoteUnavailable (outage, timeout)         451 4.4.1  no answer from Graph
    RemoteAuthError (the app cannot get a token)
                                                451 4.3.0  a bridge-side problem an
                                                           administrator must fix; the
                                                           client's own AUTH succeeded,
                                                           so neither 535 nor 454 (both
                                                           are replies to AUTH, RFC 4954
                                                           §6) applies, and the message
                                                           must not bounce for it
    RemotePermissionError (ErrorSendAsDenied…)  550 5.7.1  refused for this sender
    RemoteNotFound (the sending mailbox)        550 5.1.8  bad sender's system address
    RemoteRejected, size (413, …SizeExceeded)   552 5.3.4  message too big for system
    RemoteRejected, recipient codes             550 5.1.3  bad destination address
    RemoteRejected, anything else               554 5.6.0  the message was refused
    any other RemoteError                       451 4.3.0  unknown: retrying is safe,
                                                           bouncing could lose mail

The human text is the RemoteError's sentence (designed to be safe to show) reduced to
one line of printable ASCII — never ``str()`` of an arbitrary exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.backend.remote import (
    OutcomeUnknown,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemotePermissionError,
    RemoteRejected,
    RemoteUnavailable,
)

# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including the code and CRLF.
_MAX_TEXT = 400


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    enhanced: str  # RFC 3463 / RFC 2034 enhanced status code
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {one_line(self.text)}"

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def outcome(self) -> str:
        """The word the submission log uses for this reply."""
        if self.code < 400:
            return "sent"
        return "deferred" if self.temporary else "refused"


def one_line(text: str) -> str:
    """Printable ASCII on one line, trimmed: safe to put after a reply code."""
    flat = " ".join(text.split())
    cleaned = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in flat)
    if len(cleaned) > _MAX_TEXT:
        cleaned = cleaned[: _MAX_TEXT - 3].rstrip() + "..."
    return cleaned or "no reason given"


_SIZE_CODES = ("ErrorMessageSizeExceeded", "ErrorRequestEntityTooLarge", "RequestEntityTooLarge")
_RECIPIENT_MARKERS = ("recipient",)


def reply_for_remote_error(error: RemoteError) -> Reply:
    """The reply for a failed ``send_mime`` (see the module docstring for the table)."""
    reason = str(error)
    if isinstance(error, OutcomeUnknown):
        return Reply(
            451,
            "4.4.2",
            "Microsoft 365 did not confirm the send; it may or may not have gone out. "
            "Retry: the bridge checks Sent Items first and will not send it twice",
        )
    if isinstance(error, RemoteUnavailable):
        if error.status in (429, 503) or error.retry_after is not None:
            return Reply(451, "4.4.5", f"Microsoft 365 is throttling; try again later ({reason})")
        return Reply(451, "4.4.1", f"Microsoft 365 is unavailable; try again later ({reason})")
    if isinstance(error, RemoteAuthError):
        return Reply(451, "4.3.0", "The bridge cannot sign in to Microsoft 365; try again later")
    if isinstance(error, RemotePermissionError):
        return Reply(550, "5.7.1", f"Microsoft 365 refused this sender: {reason}")
    if isinstance(error, RemoteNotFound):
        return Reply(550, "5.1.8", f"The sending mailbox was not found: {reason}")
    if isinstance(error, RemoteRejected):
        code = error.code or ""
        if error.status == 413 or code in _SIZE_CODES:
            return Reply(552, "5.3.4", f"Message too big for Microsoft 365: {reason}")
        if any(marker in code.lower() for marker in _RECIPIENT_MARKERS):
            return Reply(550, "5.1.3", f"Microsoft 365 refused a recipient: {reason}")
        return Reply(554, "5.6.0", f"Microsoft 365 refused the message: {reason}")
    return Reply(451, "4.3.0", f"Sending failed; try again later ({reason})")
