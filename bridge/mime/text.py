"""Decoded text for SEARCH and a few header conveniences.

Owns RFC 2047 encoded-word decoding, RFC 2231 parameter decoding, transfer-encoding
decoding (RFC 2045 §6), charset decoding with replacement, the text of a message's
text/* parts for SEARCH BODY/TEXT, the case-insensitive match SEARCH uses
(RFC 3501 §6.4.4: "case-insensitive"; we casefold, which also folds ß/ss and friends),
and lenient readers for Date, Message-ID and address headers.

Unlike ENVELOPE, everything here is decoded: it is what a human would search for.
Never raises on any input.

Must not import anything outside the standard library.
"""

from __future__ import annotations

import binascii
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from bridge.mime.envelopes import MISSING_DOMAIN, MISSING_MAILBOX, parse_address_list
from bridge.mime.headers import (
    HeaderField,
    find_field,
    find_fields,
    parse_content_type,
    parse_disposition,
    parse_header_block,
    parse_transfer_encoding,
)
from bridge.mime.structure import MessagePart, PartKind, header_end, parse_structure

__all__ = [
    "TextPart",
    "addresses",
    "contains_ci",
    "decode_body",
    "decode_rfc2231",
    "decode_transfer",
    "decode_words",
    "field_values",
    "header_values",
    "message_id",
    "parts_text",
    "searchable_text",
    "sent_date",
    "text_parts",
    "to_text",
    "top_fields",
]

_ASCII_ALIASES = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us"})


def to_text(raw: bytes, charset: str | None) -> str:
    """Bytes in ``charset`` to text, replacing what does not decode.

    No charset, US-ASCII (RFC 2045 §5.2 default, often wrongly declared for 8-bit
    mail) and unknown charsets are read as UTF-8, which is a superset of ASCII.
    """
    name = (charset or "").strip().strip('"').lower()
    if name and name not in _ASCII_ALIASES:
        try:
            return raw.decode(name, "replace")
        except (LookupError, ValueError, TypeError):
            pass
    return raw.decode("utf-8", "replace")


# RFC 2047 §2: encoded-word = "=?" charset "?" encoding "?" encoded-text "?="
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if encoding in "bB":
        data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        data += b"=" * (-len(data) % 4)
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            return b""
    return binascii.a2b_qp(data, header=True)  # RFC 2047 §4.2: "_" is a space


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in an (unfolded) header value.

    Whitespace between adjacent encoded words is dropped (RFC 2047 §6.2). Adjacent
    words in the same charset are joined before decoding, because some mailers split
    one multi-byte character across two words.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = b""
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 §5 language suffix
        if pending_charset is not None and between.strip(" \t") == "":
            if charset.lower() != pending_charset.lower():
                out.append(to_text(pending, pending_charset))
                pending = b""
        else:
            if pending_charset is not None:
                out.append(to_text(pending, pending_charset))
                pending = b""
            out.append(between)
        pending += _word_bytes(match.group(2), match.group(3))
        pending_charset = charset
        pos = match.end()
    if pending_charset is not None:
        out.append(to_text(pending, pending_charset))
    out.append(value[pos:])
    return "".join(out)


def decode_rfc2231(name: str, value: str) -> tuple[str, str]:
    """Decode one (merged) parameter: ``name*`` with ``charset'lang'%XX`` → text.

    Plain values may carry RFC 2047 words (Outlook writes filenames that way), so
    those are decoded too. Returns the parameter name without the ``*``.
    """
    if name.endswith("*"):
        parts = value.split("'", 2)
        if len(parts) == 3:
            charset, _language, encoded = parts
            return name[:-1], to_text(unquote_to_bytes(encoded), charset or None)
        return name[:-1], to_text(unquote_to_bytes(value), None)
    return name, decode_words(value)


def _decoded_field(name: str, value: str) -> str:
    lowered = name.lower()
    if lowered == "content-type":
        media = parse_content_type(value)
        if media is not None:
            params = "".join('; {}="{}"'.format(*decode_rfc2231(k, v)) for k, v in media.params)
            return f"{media.maintype}/{media.subtype}{params}"
    elif lowered == "content-disposition":
        disposition = parse_disposition(value)
        if disposition is not None:
            params = "".join(
                '; {}="{}"'.format(*decode_rfc2231(k, v)) for k, v in disposition.params
            )
            return disposition.kind + params
    return decode_words(value)


def header_values(message: bytes, name: str, root: MessagePart | None = None) -> list[str]:
    """Every value of header ``name`` of the top-level message, unfolded and decoded.

    RFC 2047 words are decoded; for Content-Type and Content-Disposition the RFC 2231
    parameters are decoded too and the value is rebuilt as ``type; p="value"``.
    """
    fields = root.fields if root is not None else top_fields(message)
    return field_values(message, fields, name)


def top_fields(message: bytes) -> tuple[HeaderField, ...]:
    """The top-level header fields only: no MIME scan of the body (cheap for SEARCH)."""
    return parse_header_block(message, 0, header_end(message, 0, len(message)))


def field_values(message: bytes, fields: tuple[HeaderField, ...], name: str) -> list[str]:
    """``header_values`` over already parsed ``fields`` (several names, one parse)."""
    return [_decoded_field(f.name, f.value(message)) for f in find_fields(fields, name)]


def decode_transfer(body: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); unknown encodings pass through.

    Broken base64 (bad padding, stray characters) decodes as far as it can.
    """
    mechanism = (encoding or "").lower()
    if mechanism == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:
            return b""
    if mechanism == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


def decode_body(message: bytes, part: MessagePart) -> bytes:
    """The body of ``part`` with its Content-Transfer-Encoding undone."""
    cte = find_field(part.fields, "Content-Transfer-Encoding")
    encoding = parse_transfer_encoding(None if cte is None else cte.value(message))
    return decode_transfer(message[part.body_start : part.end], encoding)


_TAG = re.compile(r"<(?:script|style)\b.*?</(?:script|style)\s*>|<!--.*?-->|<[^>]*>", re.S | re.I)


def _leaves(part: MessagePart) -> list[MessagePart]:
    if part.kind is PartKind.MULTIPART:
        return [leaf for child in part.children for leaf in _leaves(child)]
    if part.kind is PartKind.MESSAGE and part.encapsulated is not None:
        return _leaves(part.encapsulated)
    return [part]


@dataclass(frozen=True, slots=True)
class TextPart:
    """Where one text/* leaf's body lies and how to decode it: what SEARCH BODY/TEXT read.

    A message's text parts are a few offsets and names, so a caller can keep them per
    message and turn the bytes into searchable text again without a MIME scan.
    """

    body_start: int
    end: int
    encoding: str | None
    charset: str | None
    html: bool


def text_parts(message: bytes, root: MessagePart | None = None) -> tuple[TextPart, ...]:
    """The text/* leaves of ``message``, in order (forwarded messages' included)."""
    tree = root if root is not None else parse_structure(message)
    parts: list[TextPart] = []
    for leaf in _leaves(tree):
        if leaf.media.maintype.lower() != "text":
            continue
        cte = find_field(leaf.fields, "Content-Transfer-Encoding")
        parts.append(
            TextPart(
                leaf.body_start,
                leaf.end,
                parse_transfer_encoding(None if cte is None else cte.value(message)),
                leaf.media.param("charset"),
                leaf.media.subtype.lower() == "html",
            )
        )
    return tuple(parts)


def parts_text(message: bytes, parts: tuple[TextPart, ...]) -> str:
    """``searchable_text`` from the ``text_parts`` of the same bytes."""
    texts: list[str] = []
    for part in parts:
        raw = decode_transfer(message[part.body_start : part.end], part.encoding)
        text = to_text(raw, part.charset)
        if part.html:
            text = html.unescape(_TAG.sub(" ", text))
        texts.append(text)
    return "\n".join(texts)


def searchable_text(message: bytes, root: MessagePart | None = None) -> str:
    """The decoded text of every text/* part, for SEARCH BODY and TEXT.

    Transfer encodings and charsets are decoded (with replacement); HTML has its tags
    removed and entities resolved so that "hello world" matches ``hello <b>world``.
    Parts inside forwarded messages count: they are part of the body.
    """
    return parts_text(message, text_parts(message, root))


def contains_ci(haystack: str, needle: str) -> bool:
    """RFC 3501 §6.4.4 substring match, case-insensitively (Unicode casefolding)."""
    return needle.casefold() in haystack.casefold()


def _header(message: bytes, name: str, root: MessagePart | None) -> str | None:
    fields = (
        root.fields
        if root is not None
        else parse_header_block(message, 0, header_end(message, 0, len(message)))
    )
    found = find_field(fields, name)
    return None if found is None else found.value(message)


def sent_date(message: bytes, root: MessagePart | None = None) -> datetime | None:
    """The Date header as an aware datetime, leniently; ``None`` when unusable.

    A zone of ``-0000`` (RFC 5322 §3.3: "no information") or a missing zone is UTC.
    """
    value = _header(message, "Date", root)
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


_MSGID = re.compile(r"<[^<>\s]*>")


def message_id(message: bytes, root: MessagePart | None = None) -> str | None:
    """The Message-ID (``<...>`` included) or ``None``; junk around it is dropped."""
    value = _header(message, "Message-ID", root)
    if not value:
        return None
    match = _MSGID.search(value)
    return match.group(0) if match else value.split()[0]


def addresses(message: bytes, name: str, root: MessagePart | None = None) -> list[str]:
    """The ``mailbox@host`` addresses of every header ``name`` (group members included)."""
    fields = (
        root.fields
        if root is not None
        else parse_header_block(message, 0, header_end(message, 0, len(message)))
    )
    found: list[str] = []
    for field in find_fields(fields, name):
        for address in parse_address_list(field.value(message)):
            if address.mailbox in (None, MISSING_MAILBOX) or address.host in (
                None,
                MISSING_DOMAIN,
            ):
                continue
            found.append(f"{address.mailbox}@{address.host}")
    return found
