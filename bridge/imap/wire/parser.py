"""Command grammar: one framed command (lines + literals) → a command object.

Owns :func:`parse_command` and :class:`ParseError`.  Standard library only.

Theory of operation
-------------------
The framer in :mod:`.connection` has already split the byte stream into one command:
``lines`` (without their CRLF) and ``literals`` such that ``lines[i]`` ends with the
``{n}``/``{n+}`` marker announcing ``literals[i]``, and ``lines[-1]`` has no marker.  It
has also enforced the size limits and refused NUL outside literals.  This module is a
plain recursive-descent parser over that structure, one function per RFC 3501 §9
production, and it never sees the network.  Every failure raises :class:`ParseError`
with a human-readable reason; the framer turns it into the tagged BAD (or, for an unknown
CHARSET, ``NO [BADCHARSET ...]``).

Leniencies (documented so nobody "fixes" them by accident):

* 8-bit octets are accepted inside quoted strings and decoded as UTF-8 where text is
  expected (RFC 9051 clients do this); mailbox names must still be 7-bit modified UTF-7.
* ``date-day-fixed`` in APPEND may be one digit without the leading space.
* Command names, keywords and options are case-insensitive (RFC 3501 §9: "keywords ...
  are not case-sensitive").
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

from .commands import (
    Append,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Enable,
    Examine,
    Expunge,
    Fetch,
    FetchAttribute,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    ListReturn,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    QresyncParams,
    Rename,
    Search,
    SearchKey,
    Section,
    Select,
    SequenceSet,
    StartTls,
    Status,
    Store,
    Subscribe,
    Unselect,
    Unsubscribe,
)
from .utf7 import Utf7Error, decode_mailbox

__all__ = ["ParseError", "parse_command"]


class ParseError(Exception):
    """Malformed command.  ``status``/``code`` shape the suggested tagged response."""

    def __init__(
        self, reason: str, *, tag: str | None = None, status: str = "BAD", code: str | None = None
    ) -> None:
        if len(reason) > 120:  # reasons may quote client words; keep replies short
            reason = reason[:117] + "..."
        super().__init__(reason)
        self.reason = reason
        self.tag = tag
        self.status = status
        self.code = code


def _chars(spec: bytes) -> bytes:
    return re.escape(spec)


# RFC 3501 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials
_ATOM_EXCLUDE = b'(){ %*"\\]'
_ATOM_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in _ATOM_EXCLUDE)
_ATOM = re.compile(b"[" + _chars(_ATOM_CHARS) + b"]+")
_ASTRING = re.compile(b"[" + _chars(_ATOM_CHARS + b"]") + b"]+")
# tag = 1*<any ASTRING-CHAR except "+">
TAG_RE = re.compile(b"[" + _chars(bytes(c for c in _ATOM_CHARS + b"]" if c != 0x2B)) + b"]+")
_LIST_MAILBOX = re.compile(b"[" + _chars(_ATOM_CHARS + b"]%*") + b"]+")
_SEQSET = re.compile(rb"[0-9:,*]+")
_DIGITS = re.compile(rb"[0-9]+")
_WORD = re.compile(rb"[A-Za-z0-9.\-]+")
_FLAG = re.compile(b"\\\\?[" + _chars(_ATOM_CHARS) + b"]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")
_LITERAL_MARK = re.compile(rb"\{([0-9]+)(\+?)\}\Z")
_QUOTED_BODY = re.compile(rb'[^"\\\r\n\x00]*')
_DATE_TIME = re.compile(
    rb"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{4})\Z"
)
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})\Z")

MONTHS = {
    b"JAN": 1,
    b"FEB": 2,
    b"MAR": 3,
    b"APR": 4,
    b"MAY": 5,
    b"JUN": 6,
    b"JUL": 7,
    b"AUG": 8,
    b"SEP": 9,
    b"OCT": 10,
    b"NOV": 11,
    b"DEC": 12,
}

MAX_NUMBER = 4294967295  # RFC 3501 §9 number: 32-bit
MAX_MODSEQ = 9223372036854775807  # RFC 7162 §7 mod-sequence-value: 63-bit

SYSTEM_FLAGS = {
    "\\ANSWERED": "\\Answered",
    "\\FLAGGED": "\\Flagged",
    "\\DELETED": "\\Deleted",
    "\\SEEN": "\\Seen",
    "\\DRAFT": "\\Draft",
    "\\RECENT": "\\Recent",
}
STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "HIGHESTMODSEQ",  # RFC 7162 §3.1.6
        "SIZE",  # RFC 8438
        "APPENDLIMIT",  # RFC 7889 §3
        "DELETED",  # RFC 9051
    }
)
LIST_SELECT = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
ESEARCH_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT"})
CHARSETS = frozenset({"UTF-8", "US-ASCII"})


class _Reader:
    """Cursor over one framed command; literals are reached through their markers."""

    __slots__ = ("idx", "line", "lines", "literals", "max_nesting", "pos", "tag")

    def __init__(self, lines: list[bytes], literals: list[bytes], max_nesting: int) -> None:
        self.lines = lines
        self.literals = literals
        self.idx = 0
        self.line = lines[0]
        self.pos = 0
        self.tag: str | None = None
        self.max_nesting = max_nesting

    # -- low level ------------------------------------------------------------------
    def fail(self, reason: str) -> ParseError:
        return ParseError(reason, tag=self.tag)

    def peek(self) -> int:
        """Next octet, or -1 at the end of the current line."""
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.idx == len(self.lines) - 1

    def end(self) -> None:
        if not self.at_end():
            raise self.fail("Unexpected extra arguments")

    def sp(self) -> None:
        if self.peek() != 0x20:
            if self.pos >= len(self.line):
                raise self.fail("Missing argument")
            raise self.fail("Expected a space")
        self.pos += 1

    def char(self, ch: int, what: str) -> None:
        if self.peek() != ch:
            raise self.fail(f"Expected {what}")
        self.pos += 1

    def maybe(self, ch: int) -> bool:
        if self.peek() == ch:
            self.pos += 1
            return True
        return False

    def close_paren(self) -> bool:
        """In a parenthesised list: True after ``)``, else consume the separating SP."""
        if self.maybe(0x29):
            return True
        if self.pos >= len(self.line):
            raise self.fail("Unbalanced parentheses: missing ')'")
        self.sp()
        return False

    def match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        m = pattern.match(self.line, self.pos)
        if m is None:
            if self.pos >= len(self.line):
                raise self.fail(f"Missing {what}")
            raise self.fail(f"Invalid {what}")
        self.pos = m.end()
        return m.group()

    def word(self, what: str = "keyword") -> str:
        return self.match(_WORD, what).decode("ascii").upper()

    def peek_word(self) -> str:
        m = _WORD.match(self.line, self.pos)
        return m.group().decode("ascii").upper() if m else ""

    def nesting(self, depth: int) -> None:
        if depth > self.max_nesting:
            raise self.fail("Too deeply nested")

    # -- RFC 3501 §9 strings ---------------------------------------------------------
    def quoted(self) -> bytes:
        self.char(0x22, "quoted string")
        parts: list[bytes] = []
        while True:
            m = _QUOTED_BODY.match(self.line, self.pos)
            assert m is not None  # the pattern matches the empty string
            parts.append(m.group())
            self.pos = m.end()
            ch = self.peek()
            if ch == 0x22:
                self.pos += 1
                return b"".join(parts)
            if ch == 0x5C:
                # quoted-specials = DQUOTE / "\" ; only they may follow a backslash
                nxt = self.line[self.pos + 1 : self.pos + 2]
                if nxt not in (b'"', b"\\"):
                    raise self.fail("Invalid escape in quoted string")
                parts.append(nxt)
                self.pos += 2
                continue
            raise self.fail("Unterminated quoted string")

    def literal(self) -> bytes:
        if self.peek() == 0x7E:
            raise self.fail("literal8 (BINARY) is not supported")
        m = _LITERAL_MARK.match(self.line, self.pos)
        if self.peek() != 0x7B or m is None or self.idx >= len(self.literals):
            raise self.fail("Invalid literal")
        data = self.literals[self.idx]
        self.idx += 1
        self.line = self.lines[self.idx]
        self.pos = 0
        return data

    def at_literal(self) -> bool:
        """A literal starts here: ``{`` or, for literal8 (RFC 3516), ``~{``. A lone ``~``
        is an ordinary ATOM-CHAR (RFC 3501 §9)."""
        ch = self.peek()
        return ch == 0x7B or (ch == 0x7E and self.line[self.pos + 1 : self.pos + 2] == b"{")

    def string(self) -> bytes:
        if self.peek() == 0x22:
            return self.quoted()
        if self.at_literal():
            return self.literal()
        raise self.fail("Expected a string")

    def astring(self, what: str = "string") -> bytes:
        if self.peek() == 0x22:
            return self.quoted()
        if self.at_literal():
            return self.literal()
        return self.match(_ASTRING, what)

    def nstring(self) -> bytes | None:
        if self.line[self.pos : self.pos + 3].upper() == b"NIL" and (
            self.pos + 3 == len(self.line) or self.line[self.pos + 3] in b" )"
        ):
            self.pos += 3
            return None
        return self.string()

    def text(self, data: bytes, what: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8") from None

    def number(self, limit: int = MAX_NUMBER, *, nonzero: bool = False) -> int:
        digits = self.match(_DIGITS, "number")
        if len(digits) > 20:  # also keeps int() clear of Python's 4300-digit guard
            raise self.fail("Number out of range")
        value = int(digits)
        if value > limit or (nonzero and value == 0):
            raise self.fail("Number out of range")
        return value

    # -- IMAP values -----------------------------------------------------------------
    def mailbox(self) -> str:
        raw = self.astring("mailbox name")
        return self._mailbox_name(raw)

    def _mailbox_name(self, raw: bytes) -> str:
        # RFC 3501 §5.1: "The case-insensitive mailbox name INBOX is a special name"
        if raw.upper() == b"INBOX":
            return "INBOX"
        try:
            return decode_mailbox(raw)
        except Utf7Error as exc:
            raise self.fail(f"Invalid mailbox name: {exc}") from None

    def list_mailbox(self) -> str:
        ch = self.peek()
        raw = self.string() if ch in (0x22, 0x7B) else self.match(_LIST_MAILBOX, "pattern")
        return self._mailbox_name(raw)

    def sequence_set(self) -> SequenceSet:
        raw = self.match(_SEQSET, "sequence set")
        try:
            return SequenceSet.parse(raw.decode("ascii"))
        except ValueError:
            raise self.fail("Invalid sequence set") from None

    def flag(self) -> str:
        raw = self.match(_FLAG, "flag").decode("ascii")
        if raw.startswith("\\"):
            return SYSTEM_FLAGS.get(raw.upper(), raw)
        return raw

    def flag_list(self) -> frozenset[str]:
        self.char(0x28, "'(' starting a flag list")
        flags: list[str] = []
        if not self.maybe(0x29):
            flags.append(self.flag())
            while not self.close_paren():
                flags.append(self.flag())
        return frozenset(flags)

    def paren_words(self, what: str) -> list[str]:
        """``"(" [word *(SP word)] ")"`` → upper-cased words."""
        self.char(0x28, f"'(' starting {what}")
        words: list[str] = []
        if not self.maybe(0x29):
            words.append(self.word(what))
            while not self.close_paren():
                words.append(self.word(what))
        return words

    def search_date(self) -> date:
        raw = self.quoted() if self.peek() == 0x22 else self.match(_ATOM, "date")
        m = _DATE.match(raw)
        if m is None:
            raise self.fail("Invalid date")
        month = MONTHS.get(m.group(2).upper())
        try:
            if month is None:
                raise ValueError
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise self.fail("Invalid date") from None

    def date_time(self) -> datetime:
        raw = self.quoted()
        m = _DATE_TIME.match(raw)
        month = MONTHS.get(m.group(2).upper()) if m else None
        if m is None or month is None:
            raise self.fail("Invalid date-time")
        try:
            zone = int(m.group(8))
            if zone % 100 >= 60:
                raise ValueError("zone minutes")
            offset = timedelta(hours=zone // 100, minutes=zone % 100)
            if m.group(7) == b"-":
                offset = -offset
            return datetime(
                int(m.group(3)),
                month,
                int(m.group(1)),
                int(m.group(4)),
                int(m.group(5)),
                int(m.group(6)),
                tzinfo=timezone(offset),
            )
        except ValueError:
            raise self.fail("Invalid date-time") from None


# ------------------------------------------------------------------------- commands


def _no_args(cls: Callable[[str], Command]) -> Callable[[_Reader, str], Command]:
    def parse(r: _Reader, tag: str) -> Command:
        r.end()
        return cls(tag)

    return parse


def _authenticate(r: _Reader, tag: str) -> Command:
    r.sp()
    mechanism = r.match(_ATOM, "mechanism").decode("ascii").upper()
    initial: bytes | None = None
    if not r.at_end():
        r.sp()
        raw = r.match(_BASE64, "initial response")
        # RFC 4959 §3: "the client uses '=' to indicate a zero-length initial response"
        if raw == b"=":
            initial = b""
        else:
            # RFC 4959 §3: "decoding errors MUST be treated as IMAP [RFC3501] would handle
            # them in any normal SASL client response" — i.e. a tagged BAD (§6.2.2).
            try:
                initial = base64.b64decode(raw, validate=True)
            except binascii.Error:
                raise r.fail("Invalid base64 initial response") from None
    r.end()
    return Authenticate(tag, mechanism, initial)


def _login(r: _Reader, tag: str) -> Command:
    r.sp()
    user = r.text(r.astring("user name"), "User name")
    r.sp()
    password = r.text(r.astring("password"), "Password")
    r.end()
    return Login(tag, user, password)


def _qresync(r: _Reader) -> QresyncParams:
    # RFC 7162 §3.2.5: "(" uidvalidity SP mod-sequence-value [SP known-uids]
    #                   [SP seq-match-data] ")"
    r.char(0x28, "'(' after QRESYNC")
    uidvalidity = r.number(nonzero=True)
    r.sp()
    modseq = r.number(MAX_MODSEQ, nonzero=True)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if r.maybe(0x20):
        if r.peek() != 0x28:
            known = r.sequence_set()
            if r.maybe(0x20):
                match = _seq_match(r)
        else:
            match = _seq_match(r)
    r.char(0x29, "')' closing QRESYNC parameters")
    return QresyncParams(uidvalidity, modseq, known, match)


def _seq_match(r: _Reader) -> tuple[SequenceSet, SequenceSet]:
    r.char(0x28, "'(' starting seq-match-data")
    seqs = r.sequence_set()
    r.sp()
    uids = r.sequence_set()
    r.char(0x29, "')' closing seq-match-data")
    return seqs, uids


def _select_like(examine: bool) -> Callable[[_Reader, str], Command]:
    def parse(r: _Reader, tag: str) -> Command:
        r.sp()
        mailbox = r.mailbox()
        condstore = False
        qresync: QresyncParams | None = None
        if not r.at_end():
            r.sp()
            r.char(0x28, "'(' starting SELECT parameters")
            while True:
                param = r.word("SELECT parameter")
                if param == "CONDSTORE":  # RFC 7162 §3.1.8
                    condstore = True
                elif param == "QRESYNC" and qresync is None:
                    r.sp()
                    qresync = _qresync(r)
                else:
                    raise r.fail(f"Unknown SELECT parameter {param}")
                if r.close_paren():
                    break
        r.end()
        cls = Examine if examine else Select
        return cls(tag, mailbox, condstore, qresync)

    return parse


def _one_mailbox(cls: Callable[[str, str], Command]) -> Callable[[_Reader, str], Command]:
    def parse(r: _Reader, tag: str) -> Command:
        r.sp()
        mailbox = r.mailbox()
        r.end()
        return cls(tag, mailbox)

    return parse


def _rename(r: _Reader, tag: str) -> Command:
    r.sp()
    old = r.mailbox()
    r.sp()
    new = r.mailbox()
    r.end()
    return Rename(tag, old, new)


def _list(r: _Reader, tag: str) -> Command:
    r.sp()
    selection: set[str] = set()
    if r.peek() == 0x28:
        # RFC 5258 §3: "A server MUST respond to options it does not recognize with a BAD"
        for opt in r.paren_words("LIST selection option"):
            if opt not in LIST_SELECT:
                raise r.fail(f"Unknown LIST selection option {opt}")
            selection.add(opt)
        # RFC 5258 §3.1: "The RECURSIVEMATCH option MUST NOT occur as the only selection
        # option (or only with REMOTE) ... The server MUST return BAD tagged response"
        if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
            raise r.fail("RECURSIVEMATCH needs another selection option")
        r.sp()
    reference = r.mailbox()
    r.sp()
    patterns: list[str] = []
    if r.peek() == 0x28:
        r.pos += 1
        patterns.append(r.list_mailbox())
        while not r.close_paren():
            patterns.append(r.list_mailbox())
    else:
        patterns.append(r.list_mailbox())
    options: set[str] = set()
    status: tuple[str, ...] | None = None
    if not r.at_end():
        r.sp()
        if r.word("RETURN") != "RETURN":
            raise r.fail("Expected RETURN")
        r.sp()
        r.char(0x28, "'(' starting LIST return options")
        while not r.maybe(0x29):
            if options or status is not None:
                r.sp()
            opt = r.word("LIST return option")
            if opt == "STATUS":  # RFC 5819 §2
                r.sp()
                status = _status_items(r)
            elif opt in LIST_RETURN:
                options.add(opt)
            else:
                raise r.fail(f"Unknown LIST return option {opt}")
        if status is not None:
            options.add("STATUS")
    r.end()
    return List(
        tag,
        reference,
        tuple(patterns),
        frozenset(selection),
        ListReturn(frozenset(options), status),
    )


def _lsub(r: _Reader, tag: str) -> Command:
    r.sp()
    reference = r.mailbox()
    r.sp()
    pattern = r.list_mailbox()
    r.end()
    return Lsub(tag, reference, pattern)


def _status_items(r: _Reader) -> tuple[str, ...]:
    items = r.paren_words("STATUS item")
    if not items:
        raise r.fail("Empty STATUS item list")
    for item in items:
        if item not in STATUS_ITEMS:
            raise r.fail(f"Unknown STATUS item {item}")
    return tuple(dict.fromkeys(items))


def _status(r: _Reader, tag: str) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    items = _status_items(r)
    r.end()
    return Status(tag, mailbox, items)


def _append(r: _Reader, tag: str) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    flags: frozenset[str] = frozenset()
    when: datetime | None = None
    if r.peek() == 0x28:
        flags = r.flag_list()
        r.sp()
    if r.peek() == 0x22:
        when = r.date_time()
        r.sp()
    if not r.at_literal():
        raise r.fail("APPEND message must be a literal")
    message = r.literal()
    if not r.at_end():
        raise r.fail("MULTIAPPEND and CATENATE are not supported")
    return Append(tag, mailbox, flags, when, message)


def _search(uid: bool) -> Callable[[_Reader, str], Command]:
    def parse(r: _Reader, tag: str) -> Command:
        r.sp()
        return_opts: tuple[str, ...] | None = None
        charset: str | None = None
        if r.peek_word() == "RETURN":
            r.word()
            r.sp()
            opts = r.paren_words("SEARCH return option")
            for opt in opts:
                if opt not in ESEARCH_RETURN:
                    raise r.fail(f"Unknown SEARCH return option {opt}")
            return_opts = tuple(dict.fromkeys(opts))
            r.sp()
        if r.peek_word() == "CHARSET":
            r.word()
            r.sp()
            charset = r.text(r.astring("charset"), "Charset").upper()
            if charset not in CHARSETS:
                # RFC 3501 §6.4.4: "If the server does not support the specified
                # [CHARSET], it MUST return a tagged NO response (not a BAD)."
                raise ParseError(
                    "Unsupported charset",
                    tag=tag,
                    status="NO",
                    code="BADCHARSET (UTF-8 US-ASCII)",
                )
            r.sp()
        keys = [_search_key(r, 1)]
        while not r.at_end():
            r.sp()
            keys.append(_search_key(r, 1))
        criteria = keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
        return Search(tag, charset, criteria, uid, return_opts)

    return parse


_SEARCH_FLAGS = frozenset(
    {
        "ALL",
        "ANSWERED",
        "DELETED",
        "DRAFT",
        "FLAGGED",
        "NEW",
        "OLD",
        "RECENT",
        "SEEN",
        "UNANSWERED",
        "UNDELETED",
        "UNDRAFT",
        "UNFLAGGED",
        "UNSEEN",
    }
)
_SEARCH_STRINGS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_SEARCH_DATES = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})
_SEARCH_WITH_ARGS = (
    _SEARCH_STRINGS
    | _SEARCH_DATES
    | {
        "KEYWORD",
        "UNKEYWORD",
        "HEADER",
        "LARGER",
        "SMALLER",
        "UID",
        "NOT",
        "OR",
        "MODSEQ",
    }
)
_MODSEQ_ENTRY = re.compile(rb"/flags/\\?[" + _chars(_ATOM_CHARS) + rb"]+\Z")


def _search_key(r: _Reader, depth: int) -> SearchKey:
    r.nesting(depth)
    ch = r.peek()
    if ch == 0x28:
        r.pos += 1
        keys = [_search_key(r, depth + 1)]
        while not r.close_paren():
            keys.append(_search_key(r, depth + 1))
        return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
    if 0x30 <= ch <= 0x39 or ch == 0x2A:
        return SearchKey("SEQ", (r.sequence_set(),))
    op = r.word("search key")
    if op in _SEARCH_FLAGS:
        return SearchKey(op)
    if op not in _SEARCH_WITH_ARGS:
        raise r.fail(f"Unknown search key {op}")
    r.sp()
    if op in _SEARCH_STRINGS:
        return SearchKey(op, (r.text(r.astring(), "Search string"),))
    if op in _SEARCH_DATES:
        return SearchKey(op, (r.search_date(),))
    if op in ("KEYWORD", "UNKEYWORD"):
        return SearchKey(op, (r.match(_ATOM, "keyword").decode("ascii"),))
    if op == "HEADER":
        name = r.text(r.astring("header name"), "Header name")
        r.sp()
        return SearchKey(op, (name, r.text(r.astring(), "Search string")))
    if op in ("LARGER", "SMALLER"):
        return SearchKey(op, (r.number(MAX_MODSEQ),))
    if op == "UID":
        return SearchKey(op, (r.sequence_set(),))
    if op == "NOT":
        return SearchKey(op, (_search_key(r, depth + 1),))
    if op == "OR":
        first = _search_key(r, depth + 1)
        r.sp()
        return SearchKey(op, (first, _search_key(r, depth + 1)))
    if op == "MODSEQ":
        # RFC 7162 §3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer
        entry: str | None = None
        entry_type: str | None = None
        if r.peek() == 0x22:
            raw = r.quoted()
            if _MODSEQ_ENTRY.match(raw) is None:
                raise r.fail("Invalid MODSEQ entry name")
            entry = raw.decode("ascii")
            r.sp()
            entry_type = r.word("entry type").lower()
            if entry_type not in ("priv", "shared", "all"):
                raise r.fail("Invalid MODSEQ entry type")
            r.sp()
        return SearchKey(op, (r.number(MAX_MODSEQ), entry, entry_type))
    raise AssertionError(op)  # unreachable: _SEARCH_WITH_ARGS lists every branch above


# RFC 3501 §6.4.5 macros
_FAST = (FetchAttribute("FLAGS"), FetchAttribute("INTERNALDATE"), FetchAttribute("RFC822.SIZE"))
_ALL = (*_FAST, FetchAttribute("ENVELOPE"))
_FULL = (*_ALL, FetchAttribute("BODY"))
_MACROS = {"ALL": _ALL, "FAST": _FAST, "FULL": _FULL}
_SIMPLE_ATTS = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",  # RFC 7162 §3.1.4.1
    }
)
_SECTION_WORD = re.compile(rb"[A-Za-z.]+")
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")


def _section(r: _Reader) -> Section:
    r.char(0x5B, "'['")
    if r.maybe(0x5D):
        return Section()
    part: list[int] = []
    text: str | None = None
    fields: tuple[str, ...] = ()
    while 0x30 <= r.peek() <= 0x39:
        part.append(r.number(nonzero=True))
        if not r.maybe(0x2E):
            break
    if part and r.peek() == 0x5D:
        r.pos += 1
        return Section(tuple(part))
    if part and r.line[r.pos - 1] != 0x2E:
        raise r.fail("Invalid section")
    text = r.match(_SECTION_WORD, "section").decode("ascii").upper()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        r.sp()
        r.char(0x28, "'(' starting header list")
        names = [r.text(r.astring("header name"), "Header name")]
        while not r.close_paren():
            names.append(r.text(r.astring("header name"), "Header name"))
        fields = tuple(names)
    elif text == "MIME":
        # RFC 3501 §9: section-text includes "MIME" only after a section-part
        if not part:
            raise r.fail("MIME needs a part number")
    elif text not in ("HEADER", "TEXT"):
        raise r.fail(f"Invalid section {text}")
    r.char(0x5D, "']' closing the section")
    return Section(tuple(part), text, fields)


def _fetch_att(r: _Reader) -> FetchAttribute:
    name = r.match(_FETCH_NAME, "fetch attribute").decode("ascii").upper()
    if name in _SIMPLE_ATTS:
        return FetchAttribute(name)
    if name not in ("BODY", "BODY.PEEK"):
        raise r.fail(f"Unknown fetch attribute {name}")
    if r.peek() != 0x5B:
        if name == "BODY.PEEK":
            raise r.fail("BODY.PEEK needs a section")
        return FetchAttribute("BODY")
    section = _section(r)
    partial: tuple[int, int] | None = None
    if r.maybe(0x3C):
        origin = r.number()
        r.char(0x2E, "'.' in partial")
        count = r.number(nonzero=True)
        r.char(0x3E, "'>' closing partial")
        partial = (origin, count)
    return FetchAttribute("BODY", section, name == "BODY.PEEK", partial)


def _fetch(uid: bool) -> Callable[[_Reader, str], Command]:
    def parse(r: _Reader, tag: str) -> Command:
        r.sp()
        sequence = r.sequence_set()
        r.sp()
        attributes: tuple[FetchAttribute, ...]
        macro = _MACROS.get(r.peek_word())
        if macro is not None:
            r.word()
            attributes = macro
        elif r.maybe(0x28):
            atts = [_fetch_att(r)]
            while not r.close_paren():
                atts.append(_fetch_att(r))
            attributes = tuple(dict.fromkeys(atts))
        else:
            attributes = (_fetch_att(r),)
        changed_since: int | None = None
        vanished = False
        if not r.at_end():
            r.sp()
            r.char(0x28, "'(' starting FETCH modifiers")
            while True:
                mod = r.word("FETCH modifier")
                if mod == "CHANGEDSINCE" and changed_since is None:
                    r.sp()
                    # RFC 7162 says 1*DIGIT ≥ 1; 0 is accepted (some clients send it
                    # to mean "everything") — it selects every message anyway.
                    changed_since = r.number(MAX_MODSEQ)
                elif mod == "VANISHED" and not vanished:
                    vanished = True
                else:
                    raise r.fail(f"Unknown FETCH modifier {mod}")
                if r.close_paren():
                    break
        r.end()
        if vanished:
            # RFC 7162 §3.2.6: "the VANISHED UID FETCH modifier is NOT allowed with a
            # FETCH command.  The server MUST return a tagged BAD response"; and "If the
            # VANISHED UID FETCH modifier is used without the CHANGEDSINCE UID FETCH
            # modifier, the server MUST respond with a tagged BAD response."
            if not uid:
                raise r.fail("VANISHED is only allowed with UID FETCH")
            if changed_since is None:
                raise r.fail("VANISHED requires CHANGEDSINCE")
        return Fetch(tag, sequence, attributes, uid, changed_since, vanished)

    return parse


def _store(uid: bool) -> Callable[[_Reader, str], Command]:
    def parse(r: _Reader, tag: str) -> Command:
        r.sp()
        sequence = r.sequence_set()
        r.sp()
        unchanged_since: int | None = None
        if r.maybe(0x28):
            # RFC 7162 §3.1.3: store-modifier "UNCHANGEDSINCE" SP mod-sequence-valzer
            if r.word("STORE modifier") != "UNCHANGEDSINCE":
                raise r.fail("Unknown STORE modifier")
            r.sp()
            unchanged_since = r.number(MAX_MODSEQ)
            r.char(0x29, "')' closing STORE modifiers")
            r.sp()
        sign = ""
        if r.peek() in (0x2B, 0x2D):
            sign = chr(r.peek())
            r.pos += 1
        item = r.word("FLAGS")
        if item not in ("FLAGS", "FLAGS.SILENT"):
            raise r.fail("Expected FLAGS, +FLAGS or -FLAGS")
        r.sp()
        if r.peek() == 0x28:
            flags = r.flag_list()
        else:
            found = [r.flag()]
            while not r.at_end():
                r.sp()
                found.append(r.flag())
            flags = frozenset(found)
        r.end()
        return Store(
            tag, sequence, sign + "FLAGS", item.endswith(".SILENT"), flags, uid, unchanged_since
        )

    return parse


def _copy_like(uid: bool, move: bool) -> Callable[[_Reader, str], Command]:
    def parse(r: _Reader, tag: str) -> Command:
        r.sp()
        sequence = r.sequence_set()
        r.sp()
        mailbox = r.mailbox()
        r.end()
        return (Move if move else Copy)(tag, sequence, mailbox, uid)

    return parse


def _uid_expunge(r: _Reader, tag: str) -> Command:
    # RFC 4315 §2.1: uid-expunge = "UID" SP "EXPUNGE" SP sequence-set
    r.sp()
    uids = r.sequence_set()
    r.end()
    return Expunge(tag, uids)


def _id(r: _Reader, tag: str) -> Command:
    # RFC 2971 §4: id_params_list ::= "(" #(string SPACE nstring) ")" / nil
    r.sp()
    if r.peek() != 0x28:
        if r.nstring() is not None:
            raise r.fail("ID expects a parameter list or NIL")
        r.end()
        return Id(tag, None)
    r.pos += 1
    params: dict[str, str | None] = {}
    while not r.maybe(0x29):
        if params:
            r.sp()
        key = r.string().decode("utf-8", "replace")
        r.sp()
        value = r.nstring()
        params[key] = None if value is None else value.decode("utf-8", "replace")
    r.end()
    return Id(tag, params)


def _enable(r: _Reader, tag: str) -> Command:
    caps: list[str] = []
    while not r.at_end():
        r.sp()
        caps.append(r.match(_ATOM, "capability").decode("ascii").upper())
    if not caps:
        raise r.fail("ENABLE needs at least one capability")
    return Enable(tag, tuple(caps))


def _getquota(r: _Reader, tag: str) -> Command:
    r.sp()
    root = r.text(r.astring("quota root"), "Quota root")
    r.end()
    return GetQuota(tag, root)


_Parser = Callable[[_Reader, str], Command]

COMMANDS: dict[str, _Parser] = {
    "CAPABILITY": _no_args(Capability),
    "NOOP": _no_args(Noop),
    "LOGOUT": _no_args(Logout),
    "STARTTLS": _no_args(StartTls),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _select_like(False),
    "EXAMINE": _select_like(True),
    "CREATE": _one_mailbox(Create),
    "DELETE": _one_mailbox(Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(Subscribe),
    "UNSUBSCRIBE": _one_mailbox(Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "CHECK": _no_args(Check),
    "CLOSE": _no_args(Close),
    "UNSELECT": _no_args(Unselect),
    "EXPUNGE": _no_args(Expunge),
    "SEARCH": _search(False),
    "FETCH": _fetch(False),
    "STORE": _store(False),
    "COPY": _copy_like(False, False),
    "MOVE": _copy_like(False, True),
    "IDLE": _no_args(Idle),
    "NAMESPACE": _no_args(Namespace),
    "ID": _id,
    "ENABLE": _enable,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _one_mailbox(GetQuotaRoot),
}

UID_COMMANDS: dict[str, _Parser] = {
    "COPY": _copy_like(True, False),
    "MOVE": _copy_like(True, True),
    "FETCH": _fetch(True),
    "SEARCH": _search(True),
    "STORE": _store(True),
    "EXPUNGE": _uid_expunge,
}


def parse_command(lines: list[bytes], literals: list[bytes], max_nesting: int = 32) -> Command:
    """Parse one framed command; raises :class:`ParseError`."""
    r = _Reader(lines, literals, max_nesting)
    m = TAG_RE.match(r.line)
    if m is None:
        raise ParseError("Missing or invalid tag")
    tag = m.group().decode("ascii")
    r.pos = m.end()
    if r.peek() != 0x20:
        raise ParseError("Missing or invalid tag")
    r.tag = tag
    r.pos += 1
    name = r.match(_ATOM, "command").decode("ascii").upper()
    if name == "UID":
        r.sp()
        sub = r.match(_ATOM, "command").decode("ascii").upper()
        parser = UID_COMMANDS.get(sub)
        if parser is None:
            raise r.fail(f"Unknown UID command {sub}")
    else:
        parser = COMMANDS.get(name)
        if parser is None:
            raise r.fail(f"Unknown command {name}")
    return parser(r, tag)
