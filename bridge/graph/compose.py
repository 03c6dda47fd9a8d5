"""MIME → the Graph JSON the bridge posts: message bodies for APPEND, attachments, and
the split of a large message into a small MIME plus separately uploaded attachments.

Owns the decisions in facts §11-§13 about what travels where:

* APPEND without ``\\Draft`` (facts §12.2, strategy 2): the message is parsed with the
  stdlib ``email`` package and posted as JSON (subject, body — HTML if present else
  text —, addresses, Message-ID, importance, ``x-`` headers, extended properties for
  flags, dates and threading). Attachments never ride in that JSON: they are posted
  afterwards one by one, so a message of any size keeps its create request small.
* Large submissions (facts §13.2-§13.4): ``split_large_mime`` removes the biggest leaf
  parts that are not the message text until the base64 of the rest fits in one
  request; those parts are re-added as attachments to the draft built from the rest.

Pure functions; no I/O. Imports: the standard library and ``bridge.graph.model``.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import email.utils
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from bridge.graph.model import (
    MSGFLAG_READ,
    MSGFLAG_SUBMIT,
    PID_DELIVERY_TIME,
    PID_ICON_INDEX,
    PID_IN_REPLY_TO,
    PID_LAST_VERB,
    PID_MESSAGE_FLAGS,
    PID_REFERENCES,
    PID_SUBMIT_TIME,
    icon_for_verb,
)

# Facts §13.5: a request body stays under ~4 MB; base64 inflates by 4/3.
MAX_REQUEST_BYTES = 3_900_000
# Facts §11: inline attachment POSTs are for files < 3 MB; bigger ones need a session.
SMALL_ATTACHMENT = 3 * 1024 * 1024
# Facts §13.4: PUT chunks of <= 4 MB. 3 MiB keeps us clear of any "MB" reading.
UPLOAD_CHUNK = 3 * 1024 * 1024
# Facts §11: x- headers only; one codebase caps them at 5 — so do we.
MAX_X_HEADERS = 5


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    data: bytes = field(repr=False)
    is_inline: bool = False
    content_id: str | None = None

    def json(self) -> dict[str, Any]:
        """The fileAttachment body for ``POST .../attachments`` (facts §11)."""
        body: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": self.name,
            "contentType": self.content_type,
            "contentBytes": base64.b64encode(self.data).decode("ascii"),
            "isInline": self.is_inline,
        }
        if self.content_id:
            body["contentId"] = self.content_id
        return body

    def upload_item(self) -> dict[str, Any]:
        """The ``AttachmentItem`` of ``createUploadSession`` (facts §13.4)."""
        item: dict[str, Any] = {
            "attachmentType": "file",
            "name": self.name,
            "size": len(self.data),
            "contentType": self.content_type,
            "isInline": self.is_inline,
        }
        if self.content_id:
            item["contentId"] = self.content_id
        return {"AttachmentItem": item}


@dataclass(frozen=True, slots=True)
class ComposedMessage:
    """What ``create_message`` posts: the JSON body and the attachments to add after."""

    body: dict[str, Any]
    attachments: tuple[Attachment, ...]


_CRLF = email.policy.compat32.clone(linesep="\r\n")  # RFC 5322 §2.1: CRLF lines


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _parse(mime: bytes) -> Message:
    return email.message_from_bytes(mime, policy=email.policy.compat32)


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    text = str(email.header.make_header(email.header.decode_header(str(value))))
    return " ".join(text.split()) or None


def _addresses(msg: Message, name: str) -> list[dict[str, Any]]:
    values = msg.get_all(name) or []
    out = []
    for display, address in email.utils.getaddresses([str(v) for v in values]):
        if not address or "@" not in address:
            continue
        entry: dict[str, Any] = {"address": address}
        if display:
            decoded = str(email.header.make_header(email.header.decode_header(display)))
            entry["name"] = decoded
        out.append({"emailAddress": entry})
    return out


def _decode_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment" or part.get_filename():
        return True
    return part.get_content_maintype() not in ("text", "multipart")


def _leaves(msg: Message) -> Iterator[Message]:
    if msg.is_multipart():
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                yield from _leaves(sub)
    else:
        yield msg


def _body_parts(msg: Message) -> tuple[Message | None, Message | None]:
    """The first text/html and text/plain leaves that are message text, not files."""
    html = text = None
    for leaf in _leaves(msg):
        if _is_attachment(leaf):
            continue
        ctype = leaf.get_content_type()
        if ctype == "text/html" and html is None:
            html = leaf
        elif ctype == "text/plain" and text is None:
            text = leaf
    return html, text


def _attachment_of(part: Message, index: int) -> Attachment:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        # message/rfc822 parts are containers for the email package: serialise them.
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        data = first.as_bytes() if isinstance(first, Message) else b""
    ctype = part.get_content_type()
    name = part.get_filename()
    if not name:
        name = "message.eml" if ctype == "message/rfc822" else f"attachment-{index}"
    cid = part.get("Content-ID")
    content_id = str(cid).strip().strip("<>") if cid else None
    disposition = (part.get_content_disposition() or "").lower()
    inline = bool(content_id) and disposition != "attachment"
    return Attachment(str(name), ctype, data, inline, content_id)


def _attachment_parts(msg: Message) -> list[Message]:
    html, text = _body_parts(msg)
    chosen = {id(p) for p in (html, text) if p is not None}
    parts: list[Message] = []

    def walk(node: Message) -> None:
        if node.get_content_type() == "message/rfc822" and node is not msg:
            parts.append(node)  # an attached message is one file, not its inner parts
            return
        if node.is_multipart():
            for sub in node.get_payload():
                if isinstance(sub, Message):
                    walk(sub)
            return
        if id(node) in chosen:
            return
        if node.get_content_maintype() == "text" and not _is_attachment(node):
            return  # an alternative text rendering (e.g. text/plain next to the html)
        parts.append(node)

    walk(msg)
    return parts


def _importance(msg: Message) -> str | None:
    value = (_header(msg, "Importance") or "").lower()
    if value in {"low", "normal", "high"}:
        return value
    priority = (_header(msg, "X-Priority") or "").strip()[:1]
    if priority in {"1", "2"}:
        return "high"
    if priority in {"4", "5"}:
        return "low"
    return None


def _date(msg: Message) -> datetime | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compose_for_append(
    mime: bytes,
    *,
    is_read: bool,
    flagged: bool,
    categories: tuple[str, ...],
    last_verb: int | None,
    received: datetime | None,
    internet_message_id: str | None,
    now: datetime | None = None,
) -> ComposedMessage:
    """The JSON create body of a non-draft APPEND (facts §11, §12.2 strategy 2)."""
    msg = _parse(mime)
    html, text = _body_parts(msg)
    body: dict[str, Any] = {}
    subject = _header(msg, "Subject")
    if subject is not None:
        body["subject"] = subject
    if html is not None:
        body["body"] = {"contentType": "html", "content": _decode_text(html)}
    elif text is not None:
        body["body"] = {"contentType": "text", "content": _decode_text(text)}
    else:
        body["body"] = {"contentType": "text", "content": ""}
    for header, prop in (
        ("To", "toRecipients"),
        ("Cc", "ccRecipients"),
        ("Bcc", "bccRecipients"),
        ("Reply-To", "replyTo"),
    ):
        found = _addresses(msg, header)
        if found:
            body[prop] = found
    sender_from = _addresses(msg, "From")
    if sender_from:
        body["from"] = sender_from[0]
    sender = _addresses(msg, "Sender") or sender_from
    if sender:
        body["sender"] = sender[0]
    imid = internet_message_id or _header(msg, "Message-ID")
    if imid:
        body["internetMessageId"] = imid.strip()
    importance = _importance(msg)
    if importance:
        body["importance"] = importance
    x_headers: list[dict[str, str]] = []
    for name, value in msg.items():
        if name.lower().startswith("x-") and len(x_headers) < MAX_X_HEADERS:
            flat = " ".join(str(value).split())
            if flat and len(flat) <= 900:
                x_headers.append({"name": name, "value": flat})
    if x_headers:
        body["internetMessageHeaders"] = x_headers
    if categories:
        body["categories"] = list(categories)
    body["flag"] = {"flagStatus": "flagged" if flagged else "notFlagged"}

    # PidTagMessageFlags without UNSENT makes a non-draft (facts §11); READ mirrors \Seen.
    flags = MSGFLAG_SUBMIT | (MSGFLAG_READ if is_read else 0)
    date = _date(msg)
    delivered = received or date or now or datetime.now(UTC)
    props: list[dict[str, str]] = [
        {"id": PID_MESSAGE_FLAGS, "value": str(flags)},
        {"id": PID_DELIVERY_TIME, "value": _iso(delivered)},
    ]
    if date is not None:
        props.append({"id": PID_SUBMIT_TIME, "value": _iso(date)})
    in_reply_to = _header(msg, "In-Reply-To")
    if in_reply_to:
        props.append({"id": PID_IN_REPLY_TO, "value": in_reply_to})
    references = _header(msg, "References")
    if references:
        props.append({"id": PID_REFERENCES, "value": references})
    if last_verb:
        props.append({"id": PID_LAST_VERB, "value": str(last_verb)})
        props.append({"id": PID_ICON_INDEX, "value": str(icon_for_verb(last_verb))})
    body["singleValueExtendedProperties"] = props
    attachments = tuple(_attachment_of(p, i) for i, p in enumerate(_attachment_parts(msg), start=1))
    return ComposedMessage(body, attachments)


@dataclass(frozen=True, slots=True)
class SplitMime:
    """A message cut down to fit one request, plus the parts taken out of it."""

    mime: bytes
    removed: tuple[Attachment, ...]


def split_large_mime(mime: bytes, limit: int = MAX_REQUEST_BYTES) -> SplitMime:
    """Remove the largest non-text leaves until ``base64(mime)`` is under ``limit`` bytes.

    The remaining message is re-serialised by the ``email`` package (compat32 keeps the
    original header lines); removed parts come back as Graph attachments with their
    name, type, Content-ID and inline-ness, but not their other MIME headers.
    """
    if len(b64(mime)) < limit:
        return SplitMime(mime, ())
    msg = _parse(mime)
    candidates = _attachment_parts(msg)
    sized = sorted(
        ((len(p.as_bytes()), i, p) for i, p in enumerate(candidates)),
        key=lambda t: (-t[0], t[1]),
    )
    parents = _parent_map(msg)
    removed: list[tuple[int, Attachment]] = []
    current = mime
    for _size, index, part in sized:
        if len(b64(current)) < limit:
            break
        removed.append((index, _attachment_of(part, index + 1)))
        parent = parents[id(part)]
        payload = parent.get_payload()
        parent.set_payload([p for p in payload if p is not part])
        current = msg.as_bytes(policy=_CRLF)
    if len(b64(current)) >= limit:
        raise ValueError("the message text alone is larger than one Graph request allows")
    removed.sort(key=lambda t: t[0])  # keep the original attachment order
    return SplitMime(current, tuple(a for _, a in removed))


def _parent_map(msg: Message) -> dict[int, Message]:
    parents: dict[int, Message] = {}

    def walk(node: Message) -> None:
        if node.is_multipart():
            for sub in node.get_payload():
                if isinstance(sub, Message):
                    parents[id(sub)] = node
                    if sub.get_content_type() != "message/rfc822":
                        walk(sub)

    walk(msg)
    return parents


def chunks(data: bytes, size: int = UPLOAD_CHUNK) -> Iterator[tuple[int, bytes]]:
    for start in range(0, len(data), size):
        yield start, data[start : start + size]
