"""Render Python values as IMAP data (RFC 3501 §4): the encoder for response payloads.

Owns :func:`render` and the wrappers :class:`Atom`, :class:`Literal`, :class:`Raw`.
Standard library only.

Mapping (RFC 3501 §4 data formats):

=====================  =========================================================
``None``               ``NIL``
``int``                number (``bool`` is refused: it is almost always a bug)
``Atom("x")``          the atom, verbatim — flags, keywords, ``EXISTS``...
``str`` / ``bytes``    a quoted string when every octet is a 7-bit TEXT-CHAR other
                       than NUL and the value is short; otherwise a literal
                       ``{n}\\r\\n...``.  A ``str`` is never sent as an atom, so the
                       string ``"NIL"`` goes out as ``"NIL"``, not as NIL.
``Literal(b)``         always a literal (message bodies)
``Raw(b)``             pre-rendered bytes, verbatim (cached ENVELOPE/BODYSTRUCTURE)
``datetime``           quoted ``date-time`` ("dd-Mon-yyyy hh:mm:ss +zzzz")
``list`` / ``tuple``   parenthesised list
=====================  =========================================================

NUL: RFC 3501 §9 forbids it on the wire, but :func:`render` passes ``bytes`` through
unchanged inside literals, because rewriting message data would break the byte-exact
``RFC822.SIZE`` promise.  A message body containing NUL is the caller's decision.

The hot path (a FETCH of 10,000 messages) is a handful of type checks, ``bytes.translate``
for the quoted-safety test and one ``b"".join`` per response.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .utf7 import encode_mailbox

__all__ = [
    "Atom",
    "Literal",
    "Raw",
    "format_internaldate",
    "render",
    "render_flags",
    "render_mailbox",
]


class Atom(str):
    """A ``str`` that must go out as an atom (or any bare token: flags, ``\\Seen``)."""

    __slots__ = ()


class Literal(bytes):
    """``bytes`` that must go out as a literal even if short and 7-bit."""

    __slots__ = ()


class Raw(bytes):
    """Already-rendered IMAP data, copied verbatim."""

    __slots__ = ()


#: Longest value sent as a quoted string; longer ones become literals so that lines stay
#: short for clients with small line buffers.
MAX_QUOTED = 1024

# Octets that may appear inside a quoted string (escaped or not): 7-bit, not NUL/CR/LF.
_QUOTABLE = bytes(b for b in range(1, 128) if b not in (10, 13))
_MONTHS = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct"]
_MONTHS += [b"Nov", b"Dec"]


def _string(data: bytes) -> bytes:
    if len(data) <= MAX_QUOTED and not data.translate(None, _QUOTABLE):
        if b"\\" in data or b'"' in data:
            data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + data + b'"'
    return b"{%d}\r\n" % len(data) + data


def format_internaldate(value: datetime) -> bytes:
    """RFC 3501 §9 ``date-time`` without quotes; naive datetimes are taken as UTC."""
    offset = value.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = b"+" if minutes >= 0 else b"-"
    minutes = abs(minutes)
    return b"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        value.day,
        _MONTHS[value.month - 1],
        value.year,
        value.hour,
        value.minute,
        value.second,
        sign,
        minutes // 60,
        minutes % 60,
    )


def _render_into(value: object, out: list[bytes]) -> None:
    # Subclasses first (Atom before str, Raw/Literal before bytes, bool before int).
    if isinstance(value, str):
        if isinstance(value, Atom):
            out.append(value.encode("utf-8"))
        else:
            out.append(_string(value.encode("utf-8")))
    elif isinstance(value, int):
        if isinstance(value, bool):
            raise TypeError("bool has no IMAP representation")
        out.append(b"%d" % value)
    elif value is None:
        out.append(b"NIL")
    elif isinstance(value, list | tuple):
        out.append(b"(")
        first = True
        for item in value:
            if not first:
                out.append(b" ")
            first = False
            _render_into(item, out)
        out.append(b")")
    elif isinstance(value, bytes):
        if isinstance(value, Raw):
            out.append(value)
        elif isinstance(value, Literal):
            out.append(b"{%d}\r\n" % len(value))
            out.append(value)
        else:
            out.append(_string(value))
    elif isinstance(value, bytearray | memoryview):
        out.append(_string(bytes(value)))
    elif isinstance(value, datetime):
        out.append(b'"' + format_internaldate(value) + b'"')
    else:
        raise TypeError(f"cannot render {type(value).__name__} as IMAP data")


def render(value: object) -> bytes:
    """One IMAP value as bytes (see the module docstring for the mapping)."""
    out: list[bytes] = []
    _render_into(value, out)
    return b"".join(out)


def render_flags(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Forwarded)`` — flags are atoms, never quoted."""
    return b"(" + " ".join(flags).encode("utf-8") + b")"


def render_mailbox(name: str) -> Raw:
    """A Unicode mailbox name as it goes out in LIST/LSUB/STATUS: modified UTF-7, quoted.

    RFC 3501 §5.1.3: names are sent in modified UTF-7; quoting always (rather than the
    atom form) keeps names like ``NIL`` or ``a b`` safe.  Returns :class:`Raw` so it can
    be placed directly in :func:`~.responses.untagged` parts.
    """
    return Raw(_string(encode_mailbox(name).encode("ascii")))
