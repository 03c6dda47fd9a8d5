"""MessageSummary: everything FETCH needs about a message except its bytes.

Owns ``summarize`` (one scan of the message → ENVELOPE, BODY, BODYSTRUCTURE, sizes)
and the summary's JSON form, which the backend stores in SQLite next to the message so
that ``FETCH 1:* (ENVELOPE BODYSTRUCTURE RFC822.SIZE)`` never touches message bytes.

The nested values are those a serialiser writes (see ``bodystructure``): ``str``,
``int``, ``None`` and tuples. JSON turns tuples into lists; ``from_json`` turns them
back, so ``MessageSummary.from_json(s.to_json()) == s``.

Must not import anything outside the standard library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.mime.bodystructure import BodyStructure, ImapValue, body_structures
from bridge.mime.envelopes import envelope
from bridge.mime.structure import parse_structure
from bridge.mime.text import message_id, sent_date

__all__ = ["SUMMARY_VERSION", "MessageSummary", "summarize"]

# Bump when the summary's content changes meaning, so caches know to recompute.
SUMMARY_VERSION = 1


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What FETCH ENVELOPE/BODY/BODYSTRUCTURE/RFC822.SIZE answer, precomputed.

    ``size`` is ``len(message)`` (RFC822.SIZE, also the length of BODY[]);
    ``header_size`` the length of BODY[HEADER] (blank line included); ``body_size`` of
    BODY[TEXT]; ``lines`` the LF count of the whole message. ``message_id`` and
    ``sent_date`` (ISO 8601 with offset, from the Date header) serve threading and
    SEARCH SENTBEFORE/SENTON/SENTSINCE without another parse.
    """

    envelope: tuple[ImapValue, ...]
    body: BodyStructure
    bodystructure: BodyStructure
    size: int
    header_size: int
    body_size: int
    lines: int
    message_id: str | None = None
    sent_date: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": SUMMARY_VERSION,
                "envelope": self.envelope,
                "body": self.body,
                "bodystructure": self.bodystructure,
                "size": self.size,
                "header_size": self.header_size,
                "body_size": self.body_size,
                "lines": self.lines,
                "message_id": self.message_id,
                "sent_date": self.sent_date,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> MessageSummary:
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("v") != SUMMARY_VERSION:
            raise ValueError("not a MessageSummary of this version")
        return cls(
            envelope=_tuples(raw["envelope"]),
            body=_tuples(raw["body"]),
            bodystructure=_tuples(raw["bodystructure"]),
            size=int(raw["size"]),
            header_size=int(raw["header_size"]),
            body_size=int(raw["body_size"]),
            lines=int(raw["lines"]),
            message_id=raw.get("message_id"),
            sent_date=raw.get("sent_date"),
        )


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples, recursively."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def summarize(message: bytes) -> MessageSummary:
    """Scan ``message`` once and compute its summary. Never raises on any bytes."""
    root = parse_structure(message)
    body, bodystructure = body_structures(message, root)
    date = sent_date(message, root)
    return MessageSummary(
        envelope=envelope(message, root).to_imap(),
        body=body,
        bodystructure=bodystructure,
        size=len(message),
        header_size=root.header_size,
        body_size=root.body_size,
        lines=message.count(b"\n"),
        message_id=message_id(message, root),
        sent_date=None if date is None else date.isoformat(),
    )
