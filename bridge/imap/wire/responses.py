"""Whole response lines as bytes (RFC 3501 §7): tagged, untagged, continuation, FETCH.

Owns :func:`tagged`, :func:`untagged`, :func:`continuation`, :func:`render_fetch`.
Standard library only; values inside responses are rendered by :mod:`.serialize`.

Every function returns complete lines ending in CRLF.  Free text is checked for CR/LF
because a CRLF smuggled into response text would let a peer-controlled value (a mailbox
name in an error, say) forge a second response line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .serialize import Literal, Raw, _render_into, render_flags

__all__ = ["continuation", "render_fetch", "tagged", "untagged"]

_STATUSES = frozenset({"OK", "NO", "BAD", "PREAUTH", "BYE"})


def _text(text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if b"\r" in data or b"\n" in data or b"\0" in data:
        raise ValueError("response text must not contain CR, LF or NUL")
    return data


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``a1 OK [APPENDUID 38505 3955] APPEND completed\\r\\n`` (RFC 3501 §7.1)."""
    if status not in _STATUSES:
        raise ValueError(f"bad status {status!r}")
    head = tag.encode("ascii") + b" " + status.encode("ascii") + b" "
    if code:
        head += b"[" + _text(code) + b"] "
    return head + _text(text) + b"\r\n"


def untagged(text_or_parts: str | bytes | Sequence[Any]) -> bytes:
    """An untagged response.

    A ``str``/``bytes`` is raw response text: ``untagged("OK [UIDVALIDITY 3] ok")``.
    A list/tuple is rendered part by part with :func:`~.serialize.render` and joined by
    spaces: ``untagged([3, Atom("EXISTS")])``,
    ``untagged([Atom("LIST"), [Atom("\\\\HasNoChildren")], "/", "INBOX"])``.
    """
    if isinstance(text_or_parts, str | bytes):
        return b"* " + _text(text_or_parts) + b"\r\n"
    out: list[bytes] = [b"* "]
    first = True
    for part in text_or_parts:
        if not first:
            out.append(b" ")
        first = False
        _render_into(part, out)
    out.append(b"\r\n")
    return b"".join(out)


def continuation(text: str | bytes = "") -> bytes:
    """``+ text\\r\\n`` (RFC 3501 §7.5); for SASL pass the base64 challenge as text."""
    return b"+ " + _text(text) + b"\r\n"


def render_fetch(seq: int, items: Iterable[tuple[str, Any]]) -> bytes:
    """``* 12 FETCH (UID 34 FLAGS (\\Seen) BODY[] {n}\\r\\n...)\\r\\n`` (RFC 3501 §7.4.2).

    ``items`` are ``(response-name, value)``.  Special cases so the caller cannot get them
    wrong: ``FLAGS`` takes an iterable of flag strings (rendered as atoms); a top-level
    ``bytes`` value is body data and always goes out as a literal; a ``datetime`` is a
    quoted date-time; everything else follows :func:`~.serialize.render`.
    """
    out: list[bytes] = [b"* %d FETCH (" % seq]
    first = True
    for name, value in items:
        if not first:
            out.append(b" ")
        first = False
        out.append(name.encode("ascii"))
        out.append(b" ")
        kind = type(value)
        if kind is bytes or kind is Literal:
            out.append(b"{%d}\r\n" % len(value))
            out.append(value)
        elif kind is int:
            out.append(b"%d" % value)
        elif name == "FLAGS" and kind is not Raw:
            out.append(render_flags(value))
        else:
            _render_into(value, out)
    out.append(b")\r\n")
    return b"".join(out)
