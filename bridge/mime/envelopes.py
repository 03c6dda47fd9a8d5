"""ENVELOPE (RFC 3501 §7.4.2): the ten header-derived fields, addresses split for IMAP.

Owns the lenient RFC 5322 §3.4 address-list parser that produces the IMAP address
structure ``(name adl mailbox host)`` with group syntax, and the ``Envelope`` value.

Values are exactly as sent, after unfolding only: RFC 2047 encoded words stay encoded
(RFC 3501 §7.4.2 passes header values through; clients decode them). Where RFC 3501 is
silent we follow Dovecot, which is the server most clients are tested against:

* a repeated header: the last occurrence wins;
* an address with no ``@``: ``MISSING_DOMAIN`` as host, an empty local part
  ``MISSING_MAILBOX`` — a NIL host would wrongly read as the start of a group;
* ``addr (Comment)`` with no display name uses the comment as the name.

Must not import anything outside the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.mime.headers import find_field, parse_header_block
from bridge.mime.structure import MessagePart, header_end

__all__ = [
    "MISSING_DOMAIN",
    "MISSING_MAILBOX",
    "Address",
    "Envelope",
    "ImapValue",
    "envelope",
    "parse_address_list",
]

# What the IMAP serialiser receives: string, NIL, number or parenthesised list.
ImapValue = str | int | None | tuple["ImapValue", ...]

MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"


@dataclass(frozen=True, slots=True)
class Address:
    """One IMAP address structure (RFC 3501 §7.4.2).

    A group start is ``(NIL NIL group-name NIL)`` and its end ``(NIL NIL NIL NIL)``.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    def to_imap(self) -> tuple[str | None, str | None, str | None, str | None]:
        return (self.name, self.adl, self.mailbox, self.host)

    @property
    def is_group_marker(self) -> bool:
        return self.host is None

    @property
    def addr_spec(self) -> str | None:
        """``mailbox@host`` for a real address, ``None`` for group markers."""
        if self.host is None or self.mailbox is None:
            return None
        return f"{self.mailbox}@{self.host}"


AddressList = tuple[Address, ...] | None
ImapAddressList = tuple[tuple[str | None, str | None, str | None, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """RFC 3501 §7.4.2 envelope; ``None`` is NIL."""

    date: str | None
    subject: str | None
    from_: AddressList
    sender: AddressList
    reply_to: AddressList
    to: AddressList
    cc: AddressList
    bcc: AddressList
    in_reply_to: str | None
    message_id: str | None

    def to_imap(self) -> tuple[ImapValue, ...]:
        """The envelope as nested tuples in IMAP order, ready for a serialiser."""

        def addrs(value: AddressList) -> ImapAddressList:
            return None if value is None else tuple(a.to_imap() for a in value)

        return (
            self.date,
            self.subject,
            addrs(self.from_),
            addrs(self.sender),
            addrs(self.reply_to),
            addrs(self.to),
            addrs(self.cc),
            addrs(self.bcc),
            self.in_reply_to,
            self.message_id,
        )


def envelope(message: bytes, entity: MessagePart | None = None) -> Envelope:
    """The ENVELOPE of ``message``, or of an encapsulated message ``entity`` within it.

    RFC 3501 §7.4.2: absent Date/Subject/In-Reply-To/Message-ID are NIL, present but
    empty ones the empty string; absent or empty Sender and Reply-To default to From.
    """
    if entity is None:
        fields = parse_header_block(message, 0, header_end(message, 0, len(message)))
    else:
        fields = entity.fields

    def text(name: str) -> str | None:
        found = find_field(fields, name)
        return None if found is None else found.value(message)

    def addresses(name: str) -> AddressList:
        value = text(name)
        if value is None:
            return None
        parsed = parse_address_list(value)
        return parsed or None

    from_ = addresses("From")
    sender = addresses("Sender") or from_
    reply_to = addresses("Reply-To") or from_
    return Envelope(
        date=text("Date"),
        subject=text("Subject"),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=addresses("To"),
        cc=addresses("Cc"),
        bcc=addresses("Bcc"),
        in_reply_to=text("In-Reply-To"),
        message_id=text("Message-ID"),
    )


# ---------------------------------------------------------------------------
# RFC 5322 §3.4 address lists, leniently.

_SPECIALS = "<>@,;:"
_ATOM_STOP = frozenset(_SPECIALS + ' \t\r\n"([')

# token kinds
_ATOM, _QUOTED, _COMMENT, _SPECIAL, _LITERAL = range(5)


def _tokenize(value: str) -> list[tuple[int, str]]:
    tokens: list[tuple[int, str]] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in _SPECIALS:
            tokens.append((_SPECIAL, ch))
            i += 1
        elif ch == '"':
            i += 1
            out: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(value[i])
                i += 1
            i += 1
            tokens.append((_QUOTED, "".join(out)))
        elif ch == "(":
            depth = 0
            out = []
            while i < n:
                c = value[i]
                if c == "\\" and i + 1 < n:
                    out.append(value[i + 1])
                    i += 2
                    continue
                i += 1
                if c == "(":
                    depth += 1
                    if depth == 1:
                        continue
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                out.append(c)
            tokens.append((_COMMENT, "".join(out)))
        elif ch == "[":
            close = value.find("]", i)
            stop = n if close < 0 else close + 1
            tokens.append((_LITERAL, value[i:stop]))
            i = stop
        else:
            begin = i
            while i < n and value[i] not in _ATOM_STOP:
                i += 1
            if i == begin:  # a stray ')' or ']'
                i += 1
                continue
            tokens.append((_ATOM, value[begin:i]))
    return tokens


class _AddressParser:
    __slots__ = ("out", "pos", "tokens")

    def __init__(self, value: str) -> None:
        self.tokens = _tokenize(value)
        self.pos = 0
        self.out: list[Address] = []

    def peek(self) -> tuple[int, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def at_special(self, chars: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == _SPECIAL and tok[1] in chars

    def parse(self) -> tuple[Address, ...]:
        while self.pos < len(self.tokens):
            self.address(in_group=False)
        return tuple(self.out)

    def address(self, in_group: bool) -> None:
        words: list[tuple[int, str]] = []
        while (tok := self.peek()) is not None and tok[0] != _SPECIAL:
            if tok[0] != _COMMENT:  # comments before an address are not its name
                words.append(tok)
            self.pos += 1
        tok = self.peek()
        special = tok[1] if tok is not None else ""
        if special == ":" and not in_group:
            self.pos += 1
            self.out.append(Address(None, None, " ".join(w for _, w in words), None))
            while self.pos < len(self.tokens) and not self.at_special(";"):
                self.address(in_group=True)
            if self.at_special(";"):
                self.pos += 1
            self.out.append(Address(None, None, None, None))
            return
        if special == "<":
            self.pos += 1
            self.angle_addr(words)
            return
        if special == "@":
            self.pos += 1
            local = "".join(w for _, w in words)
            host, trailing = self.domain()
            # Dovecot names "a@b (Name)" after the trailing comment, never a leading one
            name = trailing[0].strip() if trailing else None
            self.out.append(Address(name or None, None, local or MISSING_MAILBOX, host))
            return
        # ',' ';' ':' '>' or the end: a lone word is a local part, otherwise a phrase
        if special:
            self.pos += 1
        if len(words) == 1 and words[0][0] == _ATOM:
            self.out.append(Address(None, None, words[0][1], MISSING_DOMAIN))
        elif words:
            name = " ".join(w for _, w in words)
            self.out.append(Address(name, None, MISSING_MAILBOX, MISSING_DOMAIN))

    def domain(self) -> tuple[str, list[str]]:
        """Domain tokens up to the end of this address; comments are returned apart."""
        parts: list[str] = []
        comments: list[str] = []
        while (tok := self.peek()) is not None and not (tok[0] == _SPECIAL and tok[1] in ",;>"):
            if tok[0] == _COMMENT:
                comments.append(tok[1])
            elif tok[0] != _SPECIAL:
                parts.append(tok[1])
            self.pos += 1
        if self.at_special(",>"):
            self.pos += 1
        return ("".join(parts) or MISSING_DOMAIN), comments

    def angle_addr(self, words: list[tuple[int, str]]) -> None:
        """``[phrase] "<" [route ":"] addr-spec ">"`` with the ``<`` consumed."""
        inner: list[tuple[int, str]] = []
        while (tok := self.peek()) is not None and not (tok[0] == _SPECIAL and tok[1] == ">"):
            if tok[0] != _COMMENT:
                inner.append(tok)
            self.pos += 1
        if self.peek() is not None:
            self.pos += 1  # '>'
        # anything up to the next ',' (comments, junk) belongs to this address
        while (tok := self.peek()) is not None and not (tok[0] == _SPECIAL and tok[1] in ",;"):
            self.pos += 1
        if self.at_special(","):
            self.pos += 1
        adl: str | None = None
        colon = next((k for k, t in enumerate(inner) if t[0] == _SPECIAL and t[1] == ":"), None)
        if colon is not None:
            adl = "".join(t[1] for t in inner[:colon]) or None
            inner = inner[colon + 1 :]
        at = next((k for k, t in enumerate(inner) if t[0] == _SPECIAL and t[1] == "@"), None)
        if at is None:
            local_tokens, domain_tokens = inner, []
        else:
            local_tokens, domain_tokens = inner[:at], inner[at + 1 :]
        local = "".join(t[1] for t in local_tokens)
        host = "".join(t[1] for t in domain_tokens)
        name = " ".join(w for _, w in words) if words else None
        self.out.append(
            Address(name, adl, local or MISSING_MAILBOX, host or MISSING_DOMAIN),
        )


def parse_address_list(value: str) -> tuple[Address, ...]:
    """Parse an unfolded address-list header value into IMAP address structures."""
    return _AddressParser(value).parse()
