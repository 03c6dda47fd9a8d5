"""Byte-level reading and splicing of a submitted message's header section.

Owns: finding header fields in raw message bytes, reading address fields, and the only
two edits the submission server makes to a message — adding ``Bcc:`` addresses and
adding a ``Message-ID:`` — done by inserting bytes, so that every other byte the client
sent (8-bit bodies, raw UTF-8 headers per RFC 6532, folding, line endings) reaches Graph
exactly as submitted. ``email.generator`` is never used: re-serialising would refold
headers and re-encode bodies.

Must not import anything outside the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.policy import default as _default_policy

_FIELD_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")  # RFC 5322 §3.6.8 ftext
# RFC 5322 §3.6.4: msg-id = "<" id-left "@" id-right ">" (no whitespace inside).
_MSG_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")


class HeaderProblem(Exception):
    """The header section cannot be used as submitted; ``str()`` is safe for a client."""


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: its name as sent and its byte span, folded lines included."""

    name: str
    start: int
    end: int
    raw: bytes

    @property
    def value(self) -> str:
        """The unfolded field body (RFC 5322 §2.2.3), UTF-8 with surrogateescape so that
        raw 8-bit bytes survive (RFC 6532 §3.2 allows UTF-8 in header fields)."""
        colon = self.raw.index(b":")
        body = self.raw[colon + 1 :]
        unfolded = re.sub(rb"\r?\n(?=[ \t])", b"", body).rstrip(b"\r\n")
        return unfolded.decode("utf-8", errors="surrogateescape").strip()


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """The header section of a message: its fields in order and where it ends."""

    fields: tuple[HeaderField, ...]
    end: int  # offset of the blank line separating header and body (or len(mime))
    eol: bytes  # the line ending the message uses, reused for inserted fields

    def get_all(self, name: str) -> list[HeaderField]:
        wanted = name.lower()
        return [f for f in self.fields if f.name.lower() == wanted]

    def first(self, name: str) -> HeaderField | None:
        found = self.get_all(name)
        return found[0] if found else None


def parse_header_block(mime: bytes) -> HeaderBlock:
    """Split ``mime``'s header section into fields without decoding or copying the body."""
    eol = b"\r\n"
    first_nl = mime.find(b"\n")
    if first_nl > 0 and mime[first_nl - 1 : first_nl] != b"\r":
        eol = b"\n"
    fields: list[HeaderField] = []
    pos = 0
    current: tuple[str, int] | None = None
    end = len(mime)
    while pos < len(mime):
        nl = mime.find(b"\n", pos)
        line_end = len(mime) if nl < 0 else nl + 1
        line = mime[pos:line_end]
        if line in (b"\r\n", b"\n"):
            end = pos
            break
        if line[:1] in (b" ", b"\t") and current is not None:
            pos = line_end  # a folded continuation of the current field
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            # Not a field and not a continuation: RFC 5322 has no such line in a header
            # section, so the body starts here (what mail parsers do too).
            end = pos
            break
        if current is not None:
            fields.append(_field(mime, current, pos))
        current = (match.group(1).decode("ascii"), pos)
        pos = line_end
    if current is not None:
        fields.append(_field(mime, current, end))
    return HeaderBlock(fields=tuple(fields), end=end, eol=eol)


def _field(mime: bytes, current: tuple[str, int], end: int) -> HeaderField:
    name, start = current
    return HeaderField(name=name, start=start, end=end, raw=mime[start:end])


def addresses(fields: Iterable[HeaderField]) -> list[str]:
    """The addr-specs of address-list fields (groups included, RFC 5322 §3.4).

    Raises ``HeaderProblem`` for an address Graph could not deliver to correctly: one
    that does not parse or has no domain (RFC 6409 §4.2: domains in address header
    fields must be fully qualified when the MSA examines the message).
    """
    found: list[str] = []
    for field in fields:
        value = field.value
        if not value:
            continue  # RFC 5322 §3.6.3 allows an empty Bcc:
        try:
            parsed = _default_policy.header_factory(field.name, value)
        except Exception as error:  # the header registry raises many types on bad input
            raise HeaderProblem(f"the {field.name} header cannot be parsed") from error
        for address in getattr(parsed, "addresses", ()):
            spec = address.addr_spec
            if "@" not in spec or spec.startswith("@") or spec.endswith("@"):
                raise HeaderProblem(f"the {field.name} header holds an address without a domain")
            found.append(spec)
    return found


def normalise_address(address: str) -> str:
    """Comparison key for an address. Exchange treats local parts case-insensitively,
    so a case-insensitive match is what decides who actually receives the message."""
    return address.strip().strip("<>").casefold()


def valid_message_id(value: str) -> bool:
    return _MSG_ID.match(value.strip()) is not None


def insert_field(mime: bytes, block: HeaderBlock, name: str, value: str) -> bytes:
    """Add one field at the end of the header section, before the blank line."""
    line = f"{name}: {value}".encode("utf-8", errors="surrogateescape") + block.eol
    at = block.end
    prefix = mime[:at]
    if prefix and not prefix.endswith(b"\n"):
        prefix += block.eol  # a header-only message without a final line ending
    return prefix + line + mime[at:]


def replace_field(mime: bytes, field: HeaderField, eol: bytes, name: str, value: str) -> bytes:
    line = f"{name}: {value}".encode("utf-8", errors="surrogateescape") + eol
    return mime[: field.start] + line + mime[field.end :]


def add_bcc(mime: bytes, block: HeaderBlock, new: list[str]) -> bytes:
    """Add ``new`` addresses as Bcc: appended to the existing Bcc field when there is one
    (RFC 5322 §3.6 allows at most one Bcc field), else as a new field. One address per
    folded line keeps every line short whatever the count (RFC 5322 §2.1.1)."""
    if not new:
        return mime
    joined = ("," + block.eol.decode("ascii") + " ").join(new)
    existing = block.first("Bcc")
    if existing is None:
        return insert_field(mime, block, "Bcc", joined)
    body = existing.raw.rstrip(b"\r\n")
    separator = b"," if existing.value else b""
    spliced = (
        body
        + separator
        + block.eol
        + b" "
        + joined.encode("utf-8", errors="surrogateescape")
        + block.eol
    )
    return mime[: existing.start] + spliced + mime[existing.end :]
