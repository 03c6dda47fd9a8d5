"""SEARCH and UID SEARCH with ESEARCH return options and CONDSTORE's MODSEQ key.

RFC 3501 §6.4.4 (every search key), §6.4.8 (UID SEARCH); RFC 4731 (ESEARCH: RETURN
(MIN MAX COUNT ALL)); RFC 7162 §3.1.5 (MODSEQ search key and the (MODSEQ n) result).

Theory of operation. The key tree decides the ``FetchNeed``: flag keys need FLAGS, date
keys INTERNALDATE, size keys SIZE, SENT* keys the SUMMARY (which carries the parsed Date),
header and text keys the BODY. Keys that only name sequence numbers or UIDs need nothing
from the backend. Messages are evaluated chunk by chunk so that a text search over a large
mailbox holds only ``CHUNK`` bodies at a time. The parser already refused charsets other
than UTF-8 and US-ASCII with ``NO [BADCHARSET (UTF-8 US-ASCII)]``.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from bridge.backend.types import FetchNeed, MessageData
from bridge.imap.session.fetch import CHUNK
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import SelectedMailbox, ViewEntry
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged
from bridge.imap.wire.sequence import format_sequence_set
from bridge.mime.structure import MessagePart, parse_structure
from bridge.mime.text import contains_ci, header_values, searchable_text

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession

_FLAG_KEYS = {
    "ANSWERED": "\\Answered",
    "DELETED": "\\Deleted",
    "DRAFT": "\\Draft",
    "FLAGGED": "\\Flagged",
    "SEEN": "\\Seen",
}
_UNFLAG_KEYS = {"UN" + k: v for k, v in _FLAG_KEYS.items()}
_HEADER_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}


def search_need(key: c.SearchKey) -> FetchNeed:
    op = key.op
    if op in ("AND", "OR", "NOT"):
        need = FetchNeed.NONE
        for arg in key.args:
            if isinstance(arg, c.SearchKey):
                need |= search_need(arg)
        return need
    if (
        op in _FLAG_KEYS
        or op in _UNFLAG_KEYS
        or op in ("KEYWORD", "UNKEYWORD", "NEW", "OLD", "RECENT", "MODSEQ")
    ):
        return FetchNeed.FLAGS
    if op in ("BEFORE", "ON", "SINCE"):
        return FetchNeed.INTERNALDATE
    if op in ("LARGER", "SMALLER"):
        return FetchNeed.SIZE
    if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        return FetchNeed.SUMMARY
    if op in _HEADER_KEYS or op in ("HEADER", "BODY", "TEXT"):
        return FetchNeed.BODY
    return FetchNeed.NONE


def _uses_modseq(key: c.SearchKey) -> bool:
    if key.op == "MODSEQ":
        return True
    return any(isinstance(a, c.SearchKey) and _uses_modseq(a) for a in key.args)


class _Candidate:
    """One message under evaluation; parses the body at most once, and only if asked."""

    __slots__ = ("_root", "_text", "data", "entry", "recent")

    def __init__(self, entry: ViewEntry, data: MessageData, recent: bool) -> None:
        self.entry = entry
        self.data = data
        self.recent = recent
        self._root: MessagePart | None = None
        self._text: str | None = None

    @property
    def body(self) -> bytes:
        return self.data.body or b""

    @property
    def root(self) -> MessagePart:
        if self._root is None:
            self._root = parse_structure(self.body)
        return self._root

    def headers(self, name: str) -> list[str]:
        return header_values(self.body, name, self.root)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = searchable_text(self.body, self.root)
        return self._text


def _sent(candidate: _Candidate) -> date | None:
    summary = candidate.data.summary
    value = getattr(summary, "sent_date", None)
    if not value:
        return None
    # RFC 3501 §6.4.4: "disregarding time and timezone" — the date as written.
    return datetime.fromisoformat(value).date()


def matches(key: c.SearchKey, m: _Candidate, selected: SelectedMailbox, largest_uid: int) -> bool:
    op, args = key.op, key.args
    flags = m.data.flags or frozenset()
    if op == "AND":
        return all(matches(k, m, selected, largest_uid) for k in args if isinstance(k, c.SearchKey))
    if op == "OR":
        a, b = args
        assert isinstance(a, c.SearchKey) and isinstance(b, c.SearchKey)
        return matches(a, m, selected, largest_uid) or matches(b, m, selected, largest_uid)
    if op == "NOT":
        inner = args[0]
        assert isinstance(inner, c.SearchKey)
        return not matches(inner, m, selected, largest_uid)
    if op == "ALL":
        return True
    if op in _FLAG_KEYS:
        return _FLAG_KEYS[op] in flags
    if op in _UNFLAG_KEYS:
        return _UNFLAG_KEYS[op] not in flags
    if op == "RECENT":
        return m.recent
    if op == "OLD":
        return not m.recent
    if op == "NEW":
        return m.recent and "\\Seen" not in flags
    if op in ("KEYWORD", "UNKEYWORD"):
        # IMAP keywords compare case-insensitively (RFC 3501 §2.3.2 practice).
        word = str(args[0]).lower()
        present = any(f.lower() == word for f in flags)
        return present if op == "KEYWORD" else not present
    if op == "LARGER":
        return (m.data.size or 0) > _number(args[0])
    if op == "SMALLER":
        return (m.data.size or 0) < _number(args[0])
    if op in ("BEFORE", "ON", "SINCE"):
        if m.data.internaldate is None:
            return False
        return _compare_date(op, m.data.internaldate.date(), args[0])
    if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        sent = _sent(m)
        return sent is not None and _compare_date(op[4:], sent, args[0])
    if op in _HEADER_KEYS:
        needle = str(args[0])
        return any(contains_ci(v, needle) for v in m.headers(_HEADER_KEYS[op]))
    if op == "HEADER":
        name, needle = str(args[0]), str(args[1])
        # RFC 3501 §6.4.4: an empty string matches every message that has the field.
        return any(contains_ci(v, needle) for v in m.headers(name))
    if op == "BODY":
        return contains_ci(m.text, str(args[0]))
    if op == "TEXT":
        needle = str(args[0])
        header_end = m.root.body_start
        header_text = m.body[:header_end].decode("utf-8", "replace")
        return contains_ci(header_text, needle) or contains_ci(m.text, needle)
    if op == "UID":
        uidset = args[0]
        assert isinstance(uidset, c.SequenceSet)
        return uidset.contains(m.entry.uid, largest_uid)
    if op == "SEQ":
        seqset = args[0]
        assert isinstance(seqset, c.SequenceSet)
        return seqset.contains(m.entry.seq, selected.exists)
    if op == "MODSEQ":
        return m.data.modseq >= _number(args[0])
    raise ValueError(f"unknown search key {op}")


def _number(value: object) -> int:
    assert isinstance(value, int)
    return value


def _compare_date(op: str, value: date, wanted: Any) -> bool:
    if op == "BEFORE":
        return bool(value < wanted)
    if op == "ON":
        return bool(value == wanted)
    return bool(value >= wanted)


async def search(session: ImapSession, command: c.Search) -> Reply:
    selected = session.selected
    assert selected is not None and session.backend is not None
    modseq_key = _uses_modseq(command.criteria)
    if modseq_key:
        await session.enable_condstore()  # RFC 7162 §3.1
    need = search_need(command.criteria)
    entries = [ViewEntry(i + 1, uid) for i, uid in enumerate(selected.uids)]
    largest_uid = entries[-1].uid if entries else 0
    hits: list[ViewEntry] = []
    highest = 0
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start : start + CHUNK]
        if need == FetchNeed.NONE:
            datas = [
                MessageData(uid=e.uid, modseq=selected.modseq_of(e.uid))
                for e in chunk
                if not selected.is_expunged(e.uid)
            ]
        else:
            datas = await session.backend.fetch(selected.mailbox_id, [e.uid for e in chunk], need)
        by_uid = {e.uid: e for e in chunk}
        for data in datas:
            entry = by_uid[data.uid]
            recent = "\\Recent" in selected.flags_of(data.uid)
            if matches(command.criteria, _Candidate(entry, data, recent), selected, largest_uid):
                hits.append(entry)
                highest = max(highest, data.modseq)
    numbers = [e.uid if command.uid else e.seq for e in hits]
    if command.return_opts is None:
        line = "SEARCH" + "".join(f" {n}" for n in numbers)
        if modseq_key and numbers:
            line += f" (MODSEQ {highest})"
        await session.emit(untagged(line))
    else:
        await session.emit(_esearch(command, numbers, highest if modseq_key else None))
    return Reply(text="SEARCH completed")


def _esearch(command: c.Search, numbers: list[int], modseq: int | None) -> bytes:
    """RFC 4731 §3.1: ``* ESEARCH (TAG "a1") UID MIN 1 MAX 9 COUNT 3 ALL 1,5,9``."""
    options = command.return_opts or ("ALL",)  # RFC 4731 §3.1: RETURN () means ALL
    parts = [f'ESEARCH (TAG "{command.tag}")']
    if command.uid:
        parts.append("UID")
    if numbers and "MIN" in options:
        parts.append(f"MIN {numbers[0]}")
    if numbers and "MAX" in options:
        parts.append(f"MAX {numbers[-1]}")
    if "COUNT" in options:
        parts.append(f"COUNT {len(numbers)}")
    if numbers and "ALL" in options:
        parts.append("ALL " + format_sequence_set(numbers))
    if modseq is not None and numbers:
        parts.append(f"MODSEQ {modseq}")
    return untagged(" ".join(parts))
