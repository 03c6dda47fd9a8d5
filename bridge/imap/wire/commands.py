"""Parsed IMAP commands: one frozen dataclass per command (RFC 3501 §6 and extensions).

Owns the value types the parser produces and the session consumes: the commands, plus
:class:`Section`, :class:`FetchAttribute`, :class:`SearchKey`, :class:`ListReturn` and
:class:`QresyncParams`.  Standard library only; must not import anything from ``bridge``
outside ``bridge.imap.wire``.

Conventions (the session relies on them):

* Every command carries ``tag: str`` except :class:`Done` (the untagged ``DONE`` line that
  ends IDLE, RFC 2177).
* Mailbox names are DECODED from modified UTF-7 (RFC 3501 §5.1.3) to ``str``; the name
  ``INBOX`` in any case is normalised to ``"INBOX"`` (RFC 3501 §5.1: "The case-insensitive
  mailbox name INBOX is a special name reserved to mean 'the primary mailbox'").
  LIST/LSUB patterns are decoded the same way; wildcards ``*`` and ``%`` stay as they are.
* Keywords, capability names, STATUS items, ESEARCH return options and LIST options are
  upper-cased.  System flags are canonicalised (``\\seen`` → ``\\Seen``); keywords are kept
  as the client wrote them (IMAP keywords compare case-insensitively — the session decides).
* ``SearchKey`` is a small tree: ``SearchKey(op, args)``; see its docstring for every op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from .sequence import SequenceSet, format_sequence_set

__all__ = [
    "Append",
    "Authenticate",
    "Capability",
    "Check",
    "Close",
    "Command",
    "Copy",
    "Create",
    "Delete",
    "Done",
    "Enable",
    "Examine",
    "Expunge",
    "Fetch",
    "FetchAttribute",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "ListReturn",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "Noop",
    "QresyncParams",
    "Rename",
    "Search",
    "SearchKey",
    "Section",
    "Select",
    "SequenceSet",
    "StartTls",
    "Status",
    "Store",
    "Subscribe",
    "Unselect",
    "Unsubscribe",
    "format_sequence_set",
]


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Section:
    """A ``section-spec`` (RFC 3501 §6.4.5 / §9).

    ``part`` is the dotted part number (``()`` for the whole message), ``text`` one of
    ``"HEADER" "HEADER.FIELDS" "HEADER.FIELDS.NOT" "TEXT" "MIME"`` or ``None``; ``fields``
    the header-list of HEADER.FIELDS[.NOT] exactly as the client spelled the names.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        out = ".".join(str(p) for p in self.part)
        if self.text is not None:
            out = f"{out}.{self.text}" if out else self.text
            if self.fields:
                out += " (" + " ".join(_render_header_name(f) for f in self.fields) + ")"
        return out


def _render_header_name(name: str) -> str:
    # header-fld-name = astring: an atom when it can be, else a quoted string.
    if name and all(33 <= ord(c) < 127 and c not in '(){%*"\\]' for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: Names a FetchAttribute can carry.  ``BODY`` with ``section=None`` is the non-extensible
#: BODYSTRUCTURE (RFC 3501 §6.4.5 "BODY"); ``BODY`` with a section is ``BODY[...]``.
FETCH_NAMES = frozenset(
    {
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "MODSEQ",
    }
)


@dataclass(frozen=True, slots=True)
class FetchAttribute:
    """One ``fetch-att``.  ``partial`` is ``(origin, count)`` from ``<origin.count>``.

    ``BODY.PEEK[...]`` is ``name="BODY", peek=True``.  :meth:`response_name` gives what the
    FETCH response must use (RFC 3501 §7.4.2: ``BODY[section]<origin>``, never ``.PEEK``,
    and only the origin of a partial).
    """

    name: str
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None

    @property
    def sets_seen(self) -> bool:
        """RFC 3501 §6.4.5: BODY[...] (not .PEEK), RFC822 and RFC822.TEXT set \\Seen."""
        if self.name == "BODY":
            return self.section is not None and not self.peek
        return self.name in ("RFC822", "RFC822.TEXT")

    def response_name(self) -> str:
        # RFC 3501 §7.4.2 (BODY[<section>]<<origin octet>>): the response names the
        # section without .PEEK, and "If the origin octet is specified, this string is a
        # substring of the entire body contents, starting at that origin octet" — only
        # the origin is echoed, never the count.
        if self.name == "BODY" and self.section is not None:
            out = f"BODY[{self.section}]"
            if self.partial is not None:
                out += f"<{self.partial[0]}>"
            return out
        return self.name

    def __str__(self) -> str:
        if self.name == "BODY" and self.section is not None:
            out = ("BODY.PEEK[" if self.peek else "BODY[") + f"{self.section}]"
            if self.partial is not None:
                out += f"<{self.partial[0]}.{self.partial[1]}>"
            return out
        return self.name


@dataclass(frozen=True, slots=True)
class SearchKey:
    """A node of a SEARCH program (RFC 3501 §6.4.4, RFC 7162 §3.1.5).

    ``op`` is the upper-case key name; ``args`` depend on it:

    * no args: ``ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED
      UNDELETED UNDRAFT UNFLAGGED UNSEEN``
    * ``(str,)``: ``BCC BODY CC FROM SUBJECT TEXT TO`` (decoded per CHARSET),
      ``KEYWORD UNKEYWORD`` (the flag keyword atom)
    * ``(str, str)``: ``HEADER`` (field-name, value)
    * ``(date,)``: ``BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE`` (``datetime.date``)
    * ``(int,)``: ``LARGER SMALLER``
    * ``(SequenceSet,)``: ``UID`` and ``SEQ`` (a bare sequence set names message numbers)
    * ``(SearchKey,)``: ``NOT``; ``(SearchKey, SearchKey)``: ``OR``
    * ``(SearchKey, ...)``: ``AND`` — a parenthesised list, and the top level of a SEARCH
      with more than one key (a single top-level key is returned as itself)
    * ``(int, str | None, str | None)``: ``MODSEQ`` (mod-sequence, entry-name, entry-type)
    """

    op: str
    args: tuple[object, ...] = ()

    def __str__(self) -> str:
        """Serialise back to IMAP search syntax (used by tests and logs)."""
        return _render_search(self, top=True)


def _render_search_str(value: str) -> str:
    if value and all(33 <= ord(c) < 127 and c not in '(){%*"\\' for c in value):
        return value
    if all(0 < ord(c) < 128 and c not in "\r\n" for c in value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raw = value.encode("utf-8")
    return "{" + str(len(raw)) + "+}\r\n" + value


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _render_search(key: SearchKey, *, top: bool = False) -> str:
    op, args = key.op, key.args
    if op == "AND":
        inner = " ".join(_render_search(k) for k in args if isinstance(k, SearchKey))
        return inner if top else f"({inner})"
    if op == "SEQ":
        return str(args[0])
    if op in ("NOT", "OR"):
        return op + " " + " ".join(_render_search(k) for k in args if isinstance(k, SearchKey))
    if op == "MODSEQ":
        modseq, entry, entry_type = args
        if isinstance(entry, str):
            quoted = entry.replace("\\", "\\\\")
            return f'MODSEQ "{quoted}" {entry_type} {modseq}'
        return f"MODSEQ {modseq}"
    parts = [op]
    for arg in args:
        if isinstance(arg, date):
            parts.append(f"{arg.day}-{_MONTHS[arg.month - 1]}-{arg.year}")
        elif isinstance(arg, str):
            parts.append(arg if op in ("KEYWORD", "UNKEYWORD") else _render_search_str(arg))
        else:
            parts.append(str(arg))
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ListReturn:
    """LIST return options (RFC 5258 §3 / RFC 6154 / RFC 5819).

    ``options`` holds ``SUBSCRIBED CHILDREN SPECIAL-USE`` (and ``STATUS`` when present);
    ``status`` the STATUS items of ``RETURN (STATUS (...))`` or ``None``.
    """

    options: frozenset[str] = frozenset()
    status: tuple[str, ...] | None = None

    @property
    def subscribed(self) -> bool:
        return "SUBSCRIBED" in self.options

    @property
    def children(self) -> bool:
        return "CHILDREN" in self.options

    @property
    def special_use(self) -> bool:
        return "SPECIAL-USE" in self.options


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """``QRESYNC (uidvalidity modseq [known-uids] [(seq-set uid-set)])`` (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


# ---------------------------------------------------------------------------- commands
# Any state (RFC 3501 §6.1)


@dataclass(frozen=True, slots=True)
class Capability:
    tag: str


@dataclass(frozen=True, slots=True)
class Noop:
    tag: str


@dataclass(frozen=True, slots=True)
class Logout:
    tag: str


@dataclass(frozen=True, slots=True)
class Id:
    """RFC 2971: ``params`` is ``None`` for ``ID NIL``."""

    tag: str
    params: dict[str, str | None] | None


@dataclass(frozen=True, slots=True)
class Enable:
    """RFC 5161; capability names upper-cased."""

    tag: str
    capabilities: tuple[str, ...]


# Not authenticated (RFC 3501 §6.2)


@dataclass(frozen=True, slots=True)
class StartTls:
    tag: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """RFC 3501 §6.2.2 + RFC 4959 SASL-IR.

    ``mechanism`` is upper-cased.  ``initial_response`` is the DECODED initial response:
    ``None`` when absent, ``b""`` for ``=`` (RFC 4959 §3: "the client uses '=' to indicate
    a zero-length initial response").
    """

    tag: str
    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)  # credentials


@dataclass(frozen=True, slots=True)
class Login:
    tag: str
    userid: str
    password: str = field(repr=False)  # never in logs


# Authenticated (RFC 3501 §6.3)


@dataclass(frozen=True, slots=True)
class Select:
    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Examine:
    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Delete:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    tag: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST / LIST-EXTENDED (RFC 3501 §6.3.8, RFC 5258).

    ``selection`` holds ``SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE``; an old-style
    ``LIST ref pat`` has an empty selection and default ``ListReturn()``.
    """

    tag: str
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    return_opts: ListReturn = ListReturn()


@dataclass(frozen=True, slots=True)
class Lsub:
    tag: str
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Status:
    tag: str
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Append:
    """RFC 3501 §6.3.11.  ``internaldate`` is timezone-aware when given."""

    tag: str
    mailbox: str
    flags: frozenset[str]
    internaldate: datetime | None
    message: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Namespace:
    tag: str


@dataclass(frozen=True, slots=True)
class GetQuota:
    tag: str
    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    tag: str
    mailbox: str


# Selected (RFC 3501 §6.4)


@dataclass(frozen=True, slots=True)
class Check:
    tag: str


@dataclass(frozen=True, slots=True)
class Close:
    tag: str


@dataclass(frozen=True, slots=True)
class Unselect:
    tag: str


@dataclass(frozen=True, slots=True)
class Expunge:
    """EXPUNGE, or UID EXPUNGE (RFC 4315 §2.1) when ``uids`` is given."""

    tag: str
    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search:
    """SEARCH / UID SEARCH.

    ``charset`` is upper-cased (only ``UTF-8``/``US-ASCII`` reach the session; others are
    refused by the parser with ``NO [BADCHARSET (UTF-8 US-ASCII)]``).  ``return_opts`` is
    ``None`` without ``RETURN``; ``()`` for ``RETURN ()`` which RFC 4731 §3.1 says means
    ``ALL``; otherwise a tuple of ``MIN MAX ALL COUNT``.
    """

    tag: str
    charset: str | None
    criteria: SearchKey
    uid: bool = False
    return_opts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """FETCH / UID FETCH; macros ALL/FAST/FULL already expanded (RFC 3501 §6.4.5).

    For UID FETCH the parser does NOT add ``UID`` to ``attributes``; RFC 3501 §6.4.8 makes
    the server include it in every response, which is the session's job.
    """

    tag: str
    sequence: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    uid: bool = False
    changed_since: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class Store:
    """STORE / UID STORE; ``operation`` is ``"FLAGS"``, ``"+FLAGS"`` or ``"-FLAGS"``."""

    tag: str
    sequence: SequenceSet
    operation: str
    silent: bool
    flags: frozenset[str]
    uid: bool = False
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    tag: str
    sequence: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    """RFC 6851."""

    tag: str
    sequence: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Idle:
    """RFC 2177."""

    tag: str


@dataclass(frozen=True, slots=True)
class Done:
    """The ``DONE`` line ending IDLE (RFC 2177); it has no tag."""


Command = (
    Capability
    | Noop
    | Logout
    | StartTls
    | Authenticate
    | Login
    | Select
    | Examine
    | Create
    | Delete
    | Rename
    | Subscribe
    | Unsubscribe
    | List
    | Lsub
    | Status
    | Append
    | Check
    | Close
    | Unselect
    | Expunge
    | Search
    | Fetch
    | Store
    | Copy
    | Move
    | Idle
    | Namespace
    | Id
    | Enable
    | GetQuota
    | GetQuotaRoot
)
