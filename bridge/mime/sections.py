"""Byte-exact BODY[section] extraction (RFC 3501 §6.4.5, RFC 9051 §6.4.5.1).

Owns mapping a section specifier — part number, then ``HEADER``, ``HEADER.FIELDS``,
``HEADER.FIELDS.NOT``, ``TEXT`` or ``MIME`` — to a slice of the stored message bytes.
Nothing is re-serialised, so what we serve is what Graph gave us.

Rules where RFC 3501 leaves room, following Dovecot 2.3 (checked against it):

* a part number that does not exist gives empty bytes, not an error;
* ``n.HEADER``/``n.TEXT``/``n.HEADER.FIELDS`` on a part that is not message/rfc822 give
  empty bytes (RFC 3501 only defines them for MESSAGE/RFC822 parts);
* ``1.MIME`` of a non-multipart message is the message header (part 1 *is* the
  message body there);
* ``HEADER.FIELDS`` returns the matching fields with their continuation lines in the
  order they appear, then the blank line that ended the header block (for an
  unterminated header block: CRLF after HEADER.FIELDS, nothing after .NOT, as Dovecot).

Cost: with a ``structure`` from ``parse_structure`` passed in, extraction is a slice,
O(size of the section). Without one, the empty section, ``HEADER``, ``TEXT`` and
``HEADER.FIELDS`` of the top-level message only scan the header block; part numbers
scan the MIME tree once (fast, no decoding).

Must not import anything outside the standard library.
"""

from __future__ import annotations

from bridge.mime.headers import HeaderField, parse_header_block
from bridge.mime.structure import MessagePart, PartKind, find_part, header_end, parse_structure

__all__ = ["SECTION_TEXTS", "extract_section", "partial"]

SECTION_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})


def partial(data: bytes, origin: int, count: int) -> bytes:
    """RFC 3501 §6.4.5 ``<origin.count>``: bytes from ``origin``, at most ``count``.

    An origin beyond the end gives empty bytes ("a partial fetch that starts at octet
    origin beyond the end of the data returns an empty string").
    """
    if origin < 0 or count < 0:
        return b""
    return data[origin : origin + count]


def _selected_fields(
    data: bytes,
    fields: tuple[HeaderField, ...],
    start: int,
    body_start: int,
    names: tuple[str, ...],
    negate: bool,
) -> bytes:
    wanted = {name.lower() for name in names}
    selected = [f for f in fields if (f.name.lower() in wanted) != negate]
    out = b"".join(data[f.start : f.end] for f in selected)
    # the blank line exactly as it ended the header block
    blank = data[fields[-1].end if fields else start : body_start]
    if not blank and not negate:
        # An unterminated header block has no blank line to copy. Dovecot ends
        # HEADER.FIELDS with CRLF anyway and HEADER.FIELDS.NOT with nothing; we match.
        blank = b"\r\n"
    return out + blank


def _message_section(
    data: bytes,
    start: int,
    body_start: int,
    end: int,
    text: str,
    fields: tuple[str, ...],
    parsed: tuple[HeaderField, ...] | None,
) -> bytes:
    """HEADER / TEXT / HEADER.FIELDS[.NOT] of the message spanning ``[start, end)``."""
    if text == "HEADER":
        return data[start:body_start]
    if text == "TEXT":
        return data[body_start:end]
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        if parsed is None:
            parsed = parse_header_block(data, start, body_start)
        return _selected_fields(
            data, parsed, start, body_start, fields, negate=text.endswith(".NOT")
        )
    return b""


def extract_section(
    message: bytes,
    section_part: tuple[int, ...],
    text: str | None,
    fields: tuple[str, ...] = (),
    *,
    structure: MessagePart | None = None,
) -> bytes:
    """The bytes of ``BODY[section]`` for ``message``.

    ``section_part`` is the part number as a tuple (``()`` for none, ``(1, 2)`` for
    ``1.2``); ``text`` is ``None`` or one of ``SECTION_TEXTS`` (case-insensitive);
    ``fields`` are the field names of ``HEADER.FIELDS[.NOT]``. ``BODY[]`` is
    ``extract_section(m, (), None)``.
    """
    kind = None if text is None else text.upper()
    if kind is not None and kind not in SECTION_TEXTS:
        return b""
    if not section_part:
        if kind is None:
            return message
        if kind == "MIME":
            return b""  # RFC 3501 §9: MIME needs a part number
        if structure is not None:
            return _message_section(
                message, 0, structure.body_start, len(message), kind, fields, structure.fields
            )
        return _message_section(
            message, 0, header_end(message, 0, len(message)), len(message), kind, fields, None
        )
    root = structure if structure is not None else parse_structure(message)
    part = find_part(root, section_part)
    if part is None:
        return b""
    if kind is None:
        return message[part.body_start : part.end]
    if kind == "MIME":
        return message[part.start : part.body_start]
    inner = part.encapsulated if part.kind is PartKind.MESSAGE else None
    if inner is None:
        return b""
    return _message_section(
        message, inner.start, inner.body_start, inner.end, kind, fields, inner.fields
    )
