"""The structure scanner: where every MIME part's header and body lie in the message bytes.

Theory of operation
-------------------
IMAP serves message sections byte-for-byte (RFC 3501 §6.4.5: BODY[1.2] is the body of
part 1.2 "exactly as it appears"), and RFC822.SIZE must equal the length of BODY[].
So this module never re-serialises anything: it records, for every entity (the message
itself, each body part, each encapsulated message), three offsets into the original
bytes:

    start          first byte of the header block (the MIME header, for a body part)
    body_start     first byte after the blank line that ends the header block
    end            first byte after the body

and the parsed header fields (each also a byte span, see ``headers.HeaderField``).
Everything else — ENVELOPE, BODYSTRUCTURE, sections, sizes, line counts — is computed
from those offsets by slicing, so it is O(size of the thing asked for).

The scan is top-down. For one entity spanning ``[start, end)``:

1. The header block runs to the first empty line (CRLF CRLF or LF LF; both line
   endings are accepted everywhere). No empty line means the whole entity is header
   and the body is empty — what Dovecot does with unterminated headers.
2. Content-Type decides what the body is (RFC 2045 §5.2 default text/plain, or
   message/rfc822 inside multipart/digest, RFC 2046 §5.1.5; a syntactically invalid
   Content-Type also falls back to the default).
3. multipart/* with a boundary: find the delimiter lines of *this* boundary only, with
   ``bytes.find`` (fast) plus a check that the hit starts a line and is followed by
   nothing but optional ``--`` and transport padding (RFC 2046 §5.1.1). The line
   ending *before* a delimiter belongs to the delimiter, so it is not part of the
   preceding body part — except where it ends a nested multipart's close-delimiter
   line (``--inner--CRLF--outer``): like Dovecot we leave that one in the part
   (``ends_with_close`` carries this up through message/rfc822). Text before the
   first delimiter is the preamble and text after the close delimiter the epilogue;
   both are ignored, so a boundary-like string there does no harm. Each body part is
   then scanned recursively within its own span, which means an outer boundary always
   terminates an inner multipart that lacks its close delimiter (the outer scan cut
   the span first). A missing close delimiter
   simply lets the last part run to the end of the span. A multipart with no
   boundary parameter is treated as text/plain (RFC 2045 §5.2 spirit; the content
   stays visible), and a multipart with no parts at all gets one empty text/plain part
   because IMAP's grammar needs at least one (``body-type-mpart = 1*body``), as
   Dovecot does.
4. message/rfc822 (and message/global, RFC 9051 §6.4.5): the body is itself an
   entity, scanned recursively from ``body_start`` to ``end``; whatever the
   Content-Transfer-Encoding says (Dovecot does the same).
5. Nesting deeper than ``MAX_DEPTH`` is not scanned further: the part becomes a leaf.
   This bounds recursion on hostile input; real mail nests a handful of levels.

Nothing here raises on any input: every malformed case above has a defined result.

IMAP part numbers (RFC 3501 §6.4.5) are resolved by ``find_part``: the parts of a
message are its multipart children, or, for a non-multipart message, the message body
itself as part 1; a message/rfc822 part's own parts are numbered under it.

Must not import anything outside the standard library.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from bridge.mime.headers import (
    HeaderField,
    MediaType,
    find_field,
    parse_content_type,
    parse_header_block,
)

__all__ = [
    "MAX_DEPTH",
    "MessagePart",
    "PartKind",
    "find_part",
    "header_end",
    "message_parts",
    "parse_structure",
]

MAX_DEPTH = 64

_TEXT_PLAIN = MediaType("text", "plain", (("charset", "us-ascii"),))
_MESSAGE_RFC822 = MediaType("message", "rfc822", ())
_ENCAPSULATING = frozenset({"message/rfc822", "message/global"})


class PartKind(enum.Enum):
    """What the body of an entity is."""

    LEAF = "leaf"  # anything that is not scanned further
    MULTIPART = "multipart"  # children are the body parts (RFC 2046 §5.1)
    MESSAGE = "message"  # one child: the encapsulated message (RFC 2046 §5.2.1)


@dataclass(frozen=True, slots=True)
class MessagePart:
    """One entity of a message, located by byte offsets into the original bytes.

    ``media`` is the effective Content-Type (defaults applied). ``explicit_type`` says
    whether the entity had a usable Content-Type header of its own.
    """

    start: int
    body_start: int
    end: int
    fields: tuple[HeaderField, ...]
    media: MediaType
    explicit_type: bool
    kind: PartKind
    children: tuple[MessagePart, ...] = ()
    # True when the body ends with a close delimiter line that has no line ending of
    # its own (the next byte is the enclosing delimiter's CRLF); see _split_multipart.
    ends_with_close: bool = False

    @property
    def header_size(self) -> int:
        return self.body_start - self.start

    @property
    def body_size(self) -> int:
        return self.end - self.body_start

    def header_bytes(self, data: bytes) -> bytes:
        """The header block including the blank line that ends it."""
        return data[self.start : self.body_start]

    def body_bytes(self, data: bytes) -> bytes:
        return data[self.body_start : self.end]

    def field(self, data: bytes, name: str) -> str | None:
        """The unfolded value of the last header field called ``name``, or ``None``."""
        found = find_field(self.fields, name)
        return None if found is None else found.value(data)

    @property
    def encapsulated(self) -> MessagePart | None:
        """For a message/rfc822 part, the message it contains."""
        if self.kind is PartKind.MESSAGE and self.children:
            return self.children[0]
        return None


def parse_structure(message: bytes) -> MessagePart:
    """Scan ``message`` into its tree of entities. Never raises on any bytes."""
    return _parse_entity(message, 0, len(message), _TEXT_PLAIN, 0)


def header_end(data: bytes, start: int, end: int) -> int:
    """The first byte after the blank line ending the header block at ``start``."""
    if start >= end:
        return end
    if data[start] == 0x0A:
        return start + 1  # empty header block, bare LF
    if data.startswith(b"\r\n", start, end):
        return start + 2  # empty header block
    # Find the CRLF form first and look for the bare-LF form only before it: searching
    # both to ``end`` scanned the whole rest of a CRLF message (attachments included)
    # for a "\n\n" that is never there, once per MIME part.
    crlf = data.find(b"\n\r\n", start, end)
    lf = data.find(b"\n\n", start, end if crlf < 0 else crlf + 1)
    if lf < 0 and crlf < 0:
        return end  # unterminated header: all header, no body
    if crlf < 0 or (0 <= lf < crlf):
        return lf + 2
    return crlf + 3


def _parse_entity(data: bytes, start: int, end: int, default: MediaType, depth: int) -> MessagePart:
    body_start = header_end(data, start, end)
    fields = parse_header_block(data, start, body_start)
    ct = find_field(fields, "content-type")
    parsed = parse_content_type(None if ct is None else ct.value(data))
    # RFC 2045 §5.2: an absent or syntactically invalid Content-Type means the default
    explicit = parsed is not None
    media = default if parsed is None else parsed
    lowered = media.lower
    if depth < MAX_DEPTH and media.maintype.lower() == "multipart":
        boundary = media.param("boundary")
        if not boundary:
            return MessagePart(start, body_start, end, fields, _TEXT_PLAIN, False, PartKind.LEAF)
        child_default = _MESSAGE_RFC822 if lowered == "multipart/digest" else _TEXT_PLAIN
        children, closed = _split_multipart(
            data, body_start, end, boundary.encode("utf-8", "replace"), child_default, depth
        )
        return MessagePart(
            start, body_start, end, fields, media, explicit, PartKind.MULTIPART, children, closed
        )
    if depth < MAX_DEPTH and lowered in _ENCAPSULATING:
        inner = _parse_entity(data, body_start, end, _TEXT_PLAIN, depth + 1)
        return MessagePart(
            start,
            body_start,
            end,
            fields,
            media,
            explicit,
            PartKind.MESSAGE,
            (inner,),
            inner.ends_with_close,
        )
    return MessagePart(start, body_start, end, fields, media, explicit, PartKind.LEAF)


def _delimiter_at(data: bytes, i: int, j: int, end: int) -> tuple[bool, int] | None:
    """Check the candidate ``--boundary`` at ``data[i:j]``.

    Returns ``(is_close, first byte after the delimiter line)`` or ``None`` when the
    candidate is not a delimiter line. RFC 2046 §5.1.1: the delimiter must start a
    line and may be followed only by ``--`` (close) and transport padding (LWSP).
    """
    closing = data.startswith(b"--", j, end)
    k = j + 2 if closing else j
    while k < end and data[k] in (0x20, 0x09):
        k += 1
    if k >= end:
        return closing, end
    if data[k] == 0x0A:
        return closing, k + 1
    if data[k] == 0x0D and (k + 1 >= end or data[k + 1] == 0x0A):
        return closing, min(k + 2, end)
    return None


def _extend(part: MessagePart, end: int) -> MessagePart:
    """``part`` with its body (and an encapsulated message's) running to ``end``."""
    children = part.children
    if part.kind is PartKind.MESSAGE and children:
        children = (_extend(children[0], end),)
    return replace(part, end=end, children=children, ends_with_close=False)


def _split_multipart(
    data: bytes, body_start: int, end: int, boundary: bytes, default: MediaType, depth: int
) -> tuple[tuple[MessagePart, ...], bool]:
    """The body parts between delimiter lines, and whether a close delimiter line
    reached the very end of the span without a line ending of its own."""
    needle = b"--" + boundary
    children: list[MessagePart] = []
    part_start: int | None = None
    ends_with_close = False
    pos = body_start
    while True:
        i = data.find(needle, pos, end)
        if i < 0:
            break
        pos = i + 1
        if i != body_start and data[i - 1] != 0x0A:
            continue  # not at the beginning of a line
        found = _delimiter_at(data, i, i + len(needle), end)
        if found is None:
            continue  # "--boundaryX": a longer string, not our delimiter
        closing, after = found
        if part_start is not None:
            # the CRLF before the delimiter belongs to the delimiter (RFC 2046 §5.1.1)
            part_end = i
            if part_end > part_start and data[part_end - 1] == 0x0A:
                part_end -= 1
                if part_end > part_start and data[part_end - 1] == 0x0D:
                    part_end -= 1
            child = _parse_entity(data, part_start, part_end, default, depth + 1)
            if child.ends_with_close and part_end < i:
                # "--inner--CRLF--outer": Dovecot counts that CRLF as the end of the
                # inner close-delimiter line, i.e. inside the part. RFC 2046's grammar
                # would give it to the outer delimiter; we follow Dovecot so sizes of
                # forwarded messages match what clients see elsewhere.
                child = _extend(child, i)
            children.append(child)
        if closing:
            part_start = None
            ends_with_close = after == end and not data.endswith(b"\n", 0, end)
            break
        part_start = after
        pos = after
    if part_start is not None:
        # no close delimiter: the last part runs to the end of the enclosing span
        children.append(_parse_entity(data, part_start, end, default, depth + 1))
    if not children:
        # RFC 3501 §9 body-type-mpart needs at least one part; Dovecot inserts an
        # empty text/plain part and so do we.
        children.append(
            MessagePart(end, end, end, (), _TEXT_PLAIN, False, PartKind.LEAF),
        )
    return tuple(children), ends_with_close


def message_parts(entity: MessagePart) -> tuple[MessagePart, ...]:
    """The numbered parts of a (top-level or encapsulated) message entity.

    RFC 3501 §6.4.5: "Every message has at least one part number. Non-[MIME-IMB]
    messages, and non-multipart [MIME-IMB] messages with no encapsulated message,
    only have a part 1." For a multipart message the parts are its body parts.
    """
    if entity.kind is PartKind.MULTIPART:
        return entity.children
    return (entity,)


def find_part(root: MessagePart, path: tuple[int, ...]) -> MessagePart | None:
    """Resolve an IMAP part number such as ``(1, 2)`` (for ``1.2``) to its entity.

    The empty path is the message itself. ``None`` when no such part exists.
    A message/rfc822 part's sub-parts are the parts of the message it encapsulates
    (RFC 3501 §6.4.5: "A part of type MESSAGE/RFC822 also has nested part numbers,
    referring to parts of the MESSAGE part's body"); a nested multipart's sub-parts
    are its body parts.
    """
    current = root
    scope = message_parts(root)
    for index, number in enumerate(path):
        if number < 1 or number > len(scope):
            return None
        current = scope[number - 1]
        if index == len(path) - 1:
            break
        if current.kind is PartKind.MULTIPART:
            scope = current.children
        elif current.kind is PartKind.MESSAGE and current.encapsulated is not None:
            scope = message_parts(current.encapsulated)
        else:
            return None
    return current
