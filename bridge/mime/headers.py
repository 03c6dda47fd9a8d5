"""Header blocks as byte spans, and the small RFC 2045/2183/2231 value grammars.

Owns: splitting a header block into fields (with the byte span of every field, so
``BODY[HEADER.FIELDS]`` can be served byte-exactly), unfolding, and the lenient
tokenizer for ``Content-Type``/``Content-Disposition`` parameters, ``Content-Language``
lists and the first token of ``Content-Transfer-Encoding``.

Nothing here decodes RFC 2047 words: ENVELOPE and BODYSTRUCTURE carry values as sent
(RFC 3501 §7.4.2). Decoding for SEARCH lives in ``bridge.mime.text``.

Must not import anything outside the standard library (ARCHITECTURE.md, layering test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Disposition",
    "HeaderField",
    "MediaType",
    "decode_header_bytes",
    "find_field",
    "find_fields",
    "parse_content_language",
    "parse_content_type",
    "parse_disposition",
    "parse_header_block",
    "parse_transfer_encoding",
    "unfold",
]


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field of a header block, located by byte offsets in the message.

    ``start``..``end`` covers the field name, the value, every continuation line and
    the final line ending, so ``message[start:end]`` is the field exactly as sent.
    ``value_start`` is the first byte after the colon. A line that has no colon at all
    is kept as a field whose ``name`` is the whole line and whose value is empty, so
    that ``HEADER.FIELDS.NOT`` still returns it (it is part of the header block).
    """

    name: str
    start: int
    value_start: int
    end: int

    def raw_value(self, data: bytes) -> bytes:
        """The value bytes after the colon, continuation lines included, final EOL removed."""
        value = data[self.value_start : self.end]
        if value.endswith(b"\r\n"):
            return value[:-2]
        if value.endswith(b"\n"):
            return value[:-1]
        return value

    def value(self, data: bytes) -> str:
        """The unfolded value as text (RFC 5322 §2.2.3), leading/trailing whitespace removed."""
        return unfold(decode_header_bytes(self.raw_value(data))).strip(" \t")


def decode_header_bytes(raw: bytes) -> str:
    """Header bytes to ``str`` without ever raising.

    RFC 6532 allows raw UTF-8 in headers; anything else that is 8-bit (spam writes raw
    Latin-1) becomes U+FFFD. We replace rather than smuggle surrogates so that every
    ``str`` we hand to the IMAP serialiser encodes cleanly as UTF-8.
    """
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


_FOLD = re.compile(r"\r?\n")


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3 unfolding: remove each CRLF (or bare LF) that precedes whitespace.

    The whitespace itself stays, which is also what Dovecot puts in ENVELOPE.
    """
    if "\n" not in value:
        return value
    return _FOLD.sub("", value)


def parse_header_block(data: bytes, start: int, end: int) -> tuple[HeaderField, ...]:
    """Split ``data[start:end]`` (a header block, blank line optional) into fields.

    Lines are separated by LF (CRLF and bare LF both work). A line starting with a
    space or tab continues the previous field (RFC 5322 §2.2.3). The blank line that
    ends the block, if present, is not part of any field.
    """
    fields: list[HeaderField] = []
    pos = start
    name: str | None = None
    field_start = value_start = start
    while pos < end:
        nl = data.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        first = data[pos]
        if first in (0x20, 0x09) and name is not None:
            # continuation line: extend the current field
            pos = line_end
            continue
        if name is not None:
            fields.append(HeaderField(name, field_start, value_start, pos))
            name = None
        if first == 0x0A or (first == 0x0D and data[pos : pos + 2] == b"\r\n"):
            break  # the blank line that ends the header block
        colon = data.find(b":", pos, line_end)
        field_start = pos
        if colon < 0:
            name = decode_header_bytes(data[pos:line_end]).rstrip("\r\n")
            value_start = line_end
        else:
            # RFC 822 allowed whitespace before the colon ("Subject : x"); be lenient.
            name = decode_header_bytes(data[pos:colon]).rstrip(" \t")
            value_start = colon + 1
        pos = line_end
    if name is not None:
        fields.append(HeaderField(name, field_start, value_start, pos))
    return tuple(fields)


def find_fields(fields: tuple[HeaderField, ...], name: str) -> list[HeaderField]:
    """All fields called ``name`` (case-insensitive), in header order."""
    wanted = name.lower()
    return [f for f in fields if f.name.lower() == wanted]


def find_field(fields: tuple[HeaderField, ...], name: str) -> HeaderField | None:
    """The last field called ``name``.

    RFC 5322 allows most fields once; when a message repeats one anyway, Dovecot
    reports the last occurrence in ENVELOPE and BODYSTRUCTURE, and so do we.
    """
    wanted = name.lower()
    found = None
    for f in fields:
        if f.name.lower() == wanted:
            found = f
    return found


# ---------------------------------------------------------------------------
# RFC 2045 §5.1 tokens, quoted strings and RFC 822 comments.

_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')
_TOKEN_CHARS = frozenset(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in _TSPECIALS
)  # RFC 2045 §5.1 token


class _Cursor:
    """A tiny lenient scanner over an unfolded header value."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_cfws(self) -> None:
        """Skip whitespace and (nested) comments, RFC 5322 §3.2.2."""
        text = self.text
        if self.pos < len(text) and text[self.pos] not in " \t\r\n(":
            return  # the common case: nothing to skip
        while True:
            # A regex skips a run of whitespace in C rather than char by char.
            self.pos = _WSP_RUN.match(text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(text) and text[self.pos] == "(":
                self.comment()
            else:
                return

    def comment(self) -> str:
        """Consume a comment starting at ``(``; returns its text without the parens."""
        text = self.text
        depth = 0
        out: list[str] = []
        while self.pos < len(text):
            ch = text[self.pos]
            self.pos += 1
            if ch == "\\" and self.pos < len(text):
                out.append(text[self.pos])
                self.pos += 1
                continue
            if ch == "(":
                depth += 1
                if depth == 1:
                    continue
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return "".join(out)
            out.append(ch)
        return "".join(out)  # unterminated comment: take the rest

    def quoted(self) -> str:
        """Consume a quoted-string starting at ``"``; returns it unquoted."""
        text = self.text
        simple = _SIMPLE_QUOTED.match(text, self.pos)
        if simple is not None:
            # The common case, no backslash inside: one regex instead of a char loop.
            self.pos = simple.end()
            return simple.group(1)
        self.pos += 1
        out: list[str] = []
        while self.pos < len(text):
            ch = text[self.pos]
            self.pos += 1
            if ch == "\\" and self.pos < len(text):
                out.append(text[self.pos])
                self.pos += 1
            elif ch == '"':
                return "".join(out)
            else:
                out.append(ch)
        return "".join(out)  # unterminated: lenient

    def token(self, stop: str) -> str:
        """Consume characters up to whitespace, a comment, a quote or one of ``stop``."""
        begin = self.pos
        self.pos = _token_run(stop).match(self.text, begin).end()  # type: ignore[union-attr]
        return self.text[begin : self.pos]


_WSP_RUN = re.compile(r"[ \t\r\n]*")
_SIMPLE_QUOTED = re.compile(r'"([^"\\]*)"')
_TOKEN_RUNS: dict[str, re.Pattern[str]] = {}


def _token_run(stop: str) -> re.Pattern[str]:
    """The regex matching what ``_Cursor.token(stop)`` consumes (few distinct stops)."""
    pattern = _TOKEN_RUNS.get(stop)
    if pattern is None:
        pattern = re.compile("[^" + re.escape(stop + ' \t\r\n("') + "]*")
        _TOKEN_RUNS[stop] = pattern
    return pattern


@dataclass(frozen=True, slots=True)
class MediaType:
    """A parsed Content-Type: type and subtype exactly as sent, parameters in order."""

    maintype: str
    subtype: str
    params: tuple[tuple[str, str], ...]

    @property
    def lower(self) -> str:
        """``type/subtype`` lowercased, for comparisons only."""
        return f"{self.maintype}/{self.subtype}".lower()

    def param(self, name: str) -> str | None:
        """The first parameter called ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        for key, value in self.params:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Disposition:
    """A parsed Content-Disposition (RFC 2183): the type as sent and its parameters."""

    kind: str
    params: tuple[tuple[str, str], ...]


def _is_token(text: str) -> bool:
    return bool(text) and all(ch in _TOKEN_CHARS for ch in text)


def _parse_params(cur: _Cursor) -> tuple[tuple[str, str], ...]:
    """``*(";" parameter)`` of RFC 2045 §5.1, leniently, then RFC 2231 merging."""
    params: list[tuple[str, str]] = []
    while True:
        cur.skip_cfws()
        if cur.at_end():
            break
        if cur.peek() != ";":
            # junk between parameters (e.g. a missing ';'): skip one token and go on
            if not cur.token(";="):
                cur.pos += 1
            continue
        cur.pos += 1
        cur.skip_cfws()
        name = cur.token(";=").strip()
        cur.skip_cfws()
        if cur.peek() != "=":
            continue  # "; foo" without a value is not a parameter
        cur.pos += 1
        cur.skip_cfws()
        # Unquoted values may contain '=' and '/' (boundary=----=_Part_1 is common
        # although RFC 2045 wants it quoted), so only ';' and whitespace end them.
        value = cur.quoted() if cur.peek() == '"' else cur.token(";")
        if name:
            params.append((name, value))
    return _merge_rfc2231(params)


_CONTINUATION = re.compile(r"^(.+?)\*([0-9]+)(\*?)$")


def _merge_rfc2231(params: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Join RFC 2231 §3 continuations (``name*0``, ``name*1*``...) into one parameter.

    The merged parameter is called ``name*`` when any segment was extended (RFC 2231
    §4, ``charset'lang'%XX``) and ``name`` otherwise; its value is the segments
    concatenated in numeric order, still percent-encoded. Other parameters keep their
    order and come first, merged ones follow in order of first appearance. This is
    what Dovecot sends in BODYSTRUCTURE; decoding is left to the client, as RFC 3501
    passes parameter values through untouched.
    """
    if not any("*" in key for key, _ in params):
        return tuple(params)
    plain: list[tuple[str, str]] = []
    groups: dict[str, list[tuple[int, bool, str]]] = {}
    order: list[str] = []
    for key, value in params:
        m = _CONTINUATION.match(key)
        if m is None:
            plain.append((key, value))
            continue
        base = m.group(1)
        if base.lower() not in groups:
            groups[base.lower()] = []
            order.append(base)
        groups[base.lower()].append((int(m.group(2)), bool(m.group(3)), value))
    for base in order:
        segments = sorted(groups[base.lower()], key=lambda seg: seg[0])
        extended = any(seg[1] for seg in segments)
        joined = "".join(seg[2] for seg in segments)
        plain.append((base + "*" if extended else base, joined))
    return tuple(plain)


def parse_content_type(value: str | None) -> MediaType | None:
    """Parse a Content-Type value; ``None`` when absent or syntactically invalid.

    The caller applies the default (RFC 2045 §5.2: text/plain; charset=us-ascii, or
    message/rfc822 inside multipart/digest, RFC 2046 §5.1.5). Type and subtype keep
    the case they were sent in, as Dovecot does; comparisons use ``MediaType.lower``.
    """
    if value is None:
        return None
    cur = _Cursor(value)
    cur.skip_cfws()
    maintype = cur.token("/;")
    cur.skip_cfws()
    if cur.peek() != "/":
        return None
    cur.pos += 1
    cur.skip_cfws()
    subtype = cur.token(";/")
    if not (_is_token(maintype) and _is_token(subtype)):
        return None
    return MediaType(maintype, subtype, _parse_params(cur))


def parse_disposition(value: str | None) -> Disposition | None:
    """Parse Content-Disposition (RFC 2183 §2); ``None`` when absent or empty."""
    if value is None:
        return None
    cur = _Cursor(value)
    cur.skip_cfws()
    kind = cur.quoted() if cur.peek() == '"' else cur.token(";")
    if not kind:
        return None
    return Disposition(kind, _parse_params(cur))


def parse_content_language(value: str | None) -> tuple[str, ...] | None:
    """Content-Language (RFC 3282): a comma-separated list of tags, comments ignored."""
    if value is None:
        return None
    cur = _Cursor(value)
    tags: list[str] = []
    while True:
        cur.skip_cfws()
        if cur.at_end():
            break
        if cur.peek() in ',;"':
            cur.pos += 1
            continue
        tag = cur.token(",;")
        if tag:
            tags.append(tag)
    return tuple(tags) if tags else None


def parse_transfer_encoding(value: str | None) -> str | None:
    """The mechanism token of Content-Transfer-Encoding (RFC 2045 §6.1), as sent."""
    if value is None:
        return None
    cur = _Cursor(value)
    cur.skip_cfws()
    token = cur.quoted() if cur.peek() == '"' else cur.token(";")
    return token or None
