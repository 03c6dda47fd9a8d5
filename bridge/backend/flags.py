"""IMAP flags ↔ Graph message state, including the keyword ↔ category encoding.

Owns the pure mapping between the flags a client sees (RFC 3501 §2.3.2) and the remote
state of a message (ARCHITECTURE.md mapping table; GRAPH-MAIL-FACTS.md §9):

=================  ==========================================================
IMAP               Graph
=================  ==========================================================
``\\Seen``          ``isRead``
``\\Flagged``       ``flag.flagStatus == "flagged"``
``\\Draft``         ``isDraft`` (read-only: a STORE of ``\\Draft`` is ignored)
``\\Answered``      PidTagLastVerbExecuted 102 (reply) or 103 (reply all)
``$Forwarded``      PidTagLastVerbExecuted 104
``\\Deleted``       local only (kept in the store until EXPUNGE)
other keywords     ``categories``, through :func:`keyword_to_category`
=================  ==========================================================

Only one "last verb" exists remotely. When a client sets both ``\\Answered`` and
``$Forwarded`` the verb becomes 102 and ``$Forwarded`` is additionally kept as the
category ``$Forwarded``, so both flags read back.

Keyword ↔ category encoding. A category may hold any Unicode text; an IMAP keyword is
an atom (RFC 3501 §9: ``flag-keyword = atom``; no SP, CTL, ``(){%*"\\]``, no 8-bit).
Escape character is ``~``. A category is shown as itself when every character is an
atom character and it contains no ``~XX`` sequence (two upper-case hex digits);
otherwise every character that is not an atom character, and every ``~``, becomes
``~XX`` per UTF-8 byte (``Red category`` → ``Red~20category``, ``a/b`` stays ``a/b``,
``Büro`` → ``B~C3~BCro``). A keyword decodes to a category by undoing canonical
escapes; a keyword whose ``~XX`` sequences are not the canonical escape of anything
(e.g. ``~41`` for ``A``) is stored verbatim and therefore reads back with its ``~``
escaped — the one case that does not round-trip, and one no client produces.

Must not import outside the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEEN = "\\Seen"
FLAGGED = "\\Flagged"
DRAFT = "\\Draft"
ANSWERED = "\\Answered"
DELETED = "\\Deleted"
FORWARDED = "$Forwarded"

VERB_REPLY = 102
VERB_REPLY_ALL = 103
VERB_FORWARD = 104

#: Flags a client may set permanently (RFC 3501 §7.1 PERMANENTFLAGS), plus ``\*``.
#: Not ``\Draft``: Graph's isDraft is fixed at creation (facts §12), so a STORE of it
#: cannot stick; APPEND with ``\Draft`` still creates a draft.
PERMANENT_FLAGS = frozenset({SEEN, FLAGGED, ANSWERED, DELETED, FORWARDED, "\\*"})

_ESCAPE = "~"
# RFC 3501 §9: ATOM-CHAR is any CHAR except atom-specials.
_ATOM_SPECIALS = set('(){ %*"\\]')
_ESCAPE_RE = re.compile(r"~[0-9A-F]{2}")


def _is_atom_char(ch: str) -> bool:
    code = ord(ch)
    return 0x20 < code < 0x7F and ch not in _ATOM_SPECIALS


def _full_escape(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if _is_atom_char(ch) and ch != _ESCAPE:
            out.append(ch)
        else:
            out.extend(f"~{byte:02X}" for byte in ch.encode("utf-8"))
    return "".join(out)


def category_to_keyword(category: str) -> str:
    """The IMAP keyword that stands for ``category``."""
    if category and all(_is_atom_char(ch) for ch in category) and not _ESCAPE_RE.search(category):
        return category
    return _full_escape(category)


def keyword_to_category(keyword: str) -> str:
    """The category that stands for ``keyword`` (inverse of :func:`category_to_keyword`)."""
    if not _ESCAPE_RE.search(keyword):
        return keyword
    raw = bytearray()
    index = 0
    while index < len(keyword):
        if _ESCAPE_RE.match(keyword, index):
            raw.append(int(keyword[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.extend(keyword[index].encode("utf-8"))
            index += 1
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return keyword
    if category_to_keyword(decoded) == keyword:
        return decoded
    return keyword


@dataclass(frozen=True, slots=True)
class RemoteFlagState:
    """The flag-bearing part of a remote message."""

    is_read: bool
    flagged: bool
    is_draft: bool
    categories: tuple[str, ...]
    last_verb: int | None


def imap_flags(state: RemoteFlagState, *, deleted: bool = False) -> frozenset[str]:
    """The flags a client sees for a message in ``state``."""
    flags: set[str] = set()
    if state.is_read:
        flags.add(SEEN)
    if state.flagged:
        flags.add(FLAGGED)
    if state.is_draft:
        flags.add(DRAFT)
    if state.last_verb in (VERB_REPLY, VERB_REPLY_ALL):
        flags.add(ANSWERED)
    elif state.last_verb == VERB_FORWARD:
        flags.add(FORWARDED)
    if deleted:
        flags.add(DELETED)
    for category in state.categories:
        keyword = category_to_keyword(category)
        if keyword.lower() == FORWARDED.lower():
            flags.add(FORWARDED)
        else:
            flags.add(keyword)
    return frozenset(flags)


@dataclass(frozen=True, slots=True)
class RemoteFlagTarget:
    """What to send to the remote so that a message shows ``flags`` (None = unchanged)."""

    is_read: bool | None
    flagged: bool | None
    categories: tuple[str, ...] | None
    last_verb: int | None
    deleted: bool

    @property
    def changes_remote(self) -> bool:
        return (
            self.is_read is not None
            or self.flagged is not None
            or self.categories is not None
            or self.last_verb is not None
        )


def _is_flag(flags: frozenset[str], name: str) -> bool:
    lowered = name.lower()
    return any(flag.lower() == lowered for flag in flags)


def remote_target(current: RemoteFlagState, wanted: frozenset[str]) -> RemoteFlagTarget:
    """The remote change that makes a message in ``current`` show ``wanted``.

    ``\\Draft`` in ``wanted`` is ignored (read-only; GRAPH-MAIL-FACTS §12.1) and
    ``\\Recent`` never reaches a backend. Fields already right are left ``None`` so that
    a STORE that changes nothing costs no request.
    """
    is_read = _is_flag(wanted, SEEN)
    flagged = _is_flag(wanted, FLAGGED)
    answered = _is_flag(wanted, ANSWERED)
    forwarded = _is_flag(wanted, FORWARDED)
    deleted = _is_flag(wanted, DELETED)

    if answered:
        verb = (
            current.last_verb if current.last_verb in (VERB_REPLY, VERB_REPLY_ALL) else VERB_REPLY
        )
    elif forwarded:
        verb = VERB_FORWARD
    else:
        verb = 0
    # Verbs other than reply/forward (e.g. meeting responses) are not ours to clear.
    known = (VERB_REPLY, VERB_REPLY_ALL, VERB_FORWARD)
    current_verb = current.last_verb if current.last_verb in known else 0

    keywords: list[str] = []
    system = {SEEN.lower(), FLAGGED.lower(), ANSWERED.lower(), DRAFT.lower(), DELETED.lower()}
    system.add("\\recent")
    for flag in sorted(wanted):
        lowered = flag.lower()
        if lowered in system:
            continue
        if lowered == FORWARDED.lower():
            # Representable by the verb unless \Answered holds it (see module docstring).
            if answered:
                keywords.append(FORWARDED)
            continue
        keywords.append(flag)
    categories = tuple(keyword_to_category(keyword) for keyword in keywords)

    def same_categories(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
        return sorted(c.lower() for c in a) == sorted(c.lower() for c in b)

    return RemoteFlagTarget(
        is_read=None if is_read == current.is_read else is_read,
        flagged=None if flagged == current.flagged else flagged,
        categories=None if same_categories(categories, current.categories) else categories,
        last_verb=None if verb == current_verb else verb,
        deleted=deleted,
    )
