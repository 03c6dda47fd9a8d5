"""BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, grammar §9 ``body``; RFC 9051 §7.5.2).

Owns turning a scanned ``MessagePart`` tree into the nested values a serialiser
writes: ``str`` for strings, ``None`` for NIL, ``int`` for numbers, tuples for
parenthesised lists. BODY is the same structure without extension data.

Choices where RFC 3501 leaves room, all matching Dovecot 2.3 (checked against a real
``dovecot imap`` while writing this):

* media type, subtype, parameter names and values, encodings and disposition types are
  sent in the case the message used; only defaults are ours, and they are lowercase:
  ``"text" "plain"``, ``("charset" "us-ascii")``, ``"7bit"``. A text/* part without a
  charset parameter gets ``"charset" "us-ascii"`` appended (RFC 2045 §5.2 default);
* RFC 2231 continuations are merged (see ``headers._merge_rfc2231``), not decoded;
* body-fld-lang is always a list when present; body-fld-md5 is the Content-MD5 value;
* sizes are octets of the body exactly as stored and lines count LF characters in it
  (a last line without a line ending is not counted), so they agree with what
  ``extract_section`` serves even for bare-LF mail (Dovecot would count CRLF there,
  because it serves CRLF; we serve the stored bytes).

Differences from Dovecot, on purpose: a syntactically invalid Content-Type becomes
text/plain (RFC 2045 §5.2) where Dovecot sends the garbage with an empty subtype, and a
multipart without a boundary becomes text/plain so its content stays reachable.

Must not import anything outside the standard library.
"""

from __future__ import annotations

from bridge.mime.envelopes import ImapValue, envelope
from bridge.mime.headers import (
    find_field,
    parse_content_language,
    parse_disposition,
    parse_transfer_encoding,
)
from bridge.mime.structure import MessagePart, PartKind, parse_structure

__all__ = ["BodyStructure", "ImapValue", "body_structure", "body_structures"]

BodyStructure = tuple[ImapValue, ...]


def _flatten(params: tuple[tuple[str, str], ...]) -> tuple[str, ...] | None:
    """body-fld-param: ``("name" "value" ...)`` or NIL when there are none."""
    if not params:
        return None
    flat: list[str] = []
    for key, value in params:
        flat.append(key)
        flat.append(value)
    return tuple(flat)


def _extension(data: bytes, part: MessagePart) -> tuple[ImapValue, ...]:
    """body-fld-dsp, body-fld-lang, body-fld-loc (shared by single and multipart)."""
    fields = part.fields

    def value(name: str) -> str | None:
        found = find_field(fields, name)
        return None if found is None else found.value(data)

    disposition = parse_disposition(value("Content-Disposition"))
    dsp: ImapValue = (
        None if disposition is None else (disposition.kind, _flatten(disposition.params))
    )
    return (dsp, parse_content_language(value("Content-Language")), value("Content-Location"))


def _single(data: bytes, part: MessagePart) -> tuple[BodyStructure, BodyStructure]:
    media = part.media
    params = media.params
    is_text = media.maintype.lower() == "text"
    if is_text and media.param("charset") is None:
        params = (*params, ("charset", "us-ascii"))
    fields = part.fields

    def value(name: str) -> str | None:
        found = find_field(fields, name)
        return None if found is None else found.value(data)

    cte = find_field(fields, "Content-Transfer-Encoding")
    encoding = parse_transfer_encoding(None if cte is None else cte.value(data)) or "7bit"
    basic: list[ImapValue] = [
        media.maintype,
        media.subtype,
        _flatten(params),
        value("Content-ID"),
        value("Content-Description"),
        encoding,
        part.body_size,
    ]
    basic_ext = list(basic)
    inner = part.encapsulated
    if inner is not None:
        # RFC 3501 §7.4.2: envelope, body structure and line count of the
        # encapsulated message follow the basic fields.
        env = envelope(data, inner).to_imap()
        inner_basic, inner_ext = _structures(data, inner)
        lines = data.count(b"\n", part.body_start, part.end)
        basic += [env, inner_basic, lines]
        basic_ext += [env, inner_ext, lines]
    elif is_text:
        lines = data.count(b"\n", part.body_start, part.end)
        basic.append(lines)
        basic_ext.append(lines)
    basic_ext.append(value("Content-MD5"))
    basic_ext.extend(_extension(data, part))
    return tuple(basic), tuple(basic_ext)


def _structures(data: bytes, part: MessagePart) -> tuple[BodyStructure, BodyStructure]:
    """(BODY, BODYSTRUCTURE) of one entity, computed in a single walk."""
    if part.kind is not PartKind.MULTIPART:
        return _single(data, part)
    basic: list[ImapValue] = []
    ext: list[ImapValue] = []
    for child in part.children:
        child_basic, child_ext = _structures(data, child)
        basic.append(child_basic)
        ext.append(child_ext)
    basic.append(part.media.subtype)
    ext.append(part.media.subtype)
    ext.append(_flatten(part.media.params))
    ext.extend(_extension(data, part))
    return tuple(basic), tuple(ext)


def body_structures(
    message: bytes, entity: MessagePart | None = None
) -> tuple[BodyStructure, BodyStructure]:
    """``(BODY, BODYSTRUCTURE)`` of ``message`` (or of ``entity`` within it) in one pass."""
    return _structures(message, parse_structure(message) if entity is None else entity)


def body_structure(
    message: bytes, entity: MessagePart | None = None, *, extended: bool = True
) -> BodyStructure:
    """BODYSTRUCTURE (``extended=True``) or BODY (``extended=False``) of ``message``."""
    basic, ext = body_structures(message, entity)
    return ext if extended else basic
