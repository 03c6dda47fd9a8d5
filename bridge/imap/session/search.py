"""SEARCH and UID SEARCH with ESEARCH return options and CONDSTORE's MODSEQ key.

RFC 3501 §6.4.4 (every search key), §6.4.8 (UID SEARCH); RFC 4731 (ESEARCH: RETURN
(MIN MAX COUNT ALL)); RFC 7162 §3.1.5 (MODSEQ search key and the (MODSEQ n) result).

Theory of operation. Keys are sorted by what they read:

- Session keys (flags, KEYWORD, NEW/OLD/RECENT, ALL, UID, sequence sets, MODSEQ) are
  answered from the session's own view (``SelectedMailbox.current_state``: what the
  client was told plus the queued updates, i.e. what the backend announced), with no
  backend call. The session-only conjuncts of a top-level AND run first and narrow the
  messages the other keys look at.
- Date and size keys read INTERNALDATE and RFC822.SIZE, SENT* keys the Date header's date
  from the SUMMARY, FROM/TO/CC/BCC/SUBJECT (and HEADER naming one of those) the decoded
  header values. All of these never change for a UID, so they are kept in
  ``fetch.RENDER_CACHE`` next to the rendered ENVELOPE; a chunk of messages that has them
  all cached needs no backend call. Otherwise one backend call per chunk loads them
  (``META_CHUNK`` messages, or ``CHUNK`` when bodies are needed), and header values are
  taken from the header block alone, without a MIME scan of the body.
- HEADER (other fields), BODY and TEXT read the body, chunk by chunk, so that a text
  search over a large mailbox holds only ``CHUNK`` bodies at a time.

Matching is the case-insensitive substring test of ``mime.text.contains_ci`` with the
haystacks casefolded once. The parser already refused charsets other than UTF-8 and
US-ASCII with ``NO [BADCHARSET (UTF-8 US-ASCII)]``.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from bridge.backend.types import FetchNeed
from bridge.imap.session.fetch import DATE_ITEM, RENDER_CACHE, SIZE_ITEM, chunk_size
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import SelectedMailbox
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged
from bridge.imap.wire.sequence import format_sequence_set
from bridge.mime.headers import HeaderField
from bridge.mime.structure import parse_structure
from bridge.mime.text import TextPart, contains_ci, field_values, parts_text, text_parts, top_fields

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


_SESSION_OPS = frozenset(
    {*_FLAG_KEYS, *_UNFLAG_KEYS, "ALL", "KEYWORD", "UNKEYWORD", "NEW", "OLD", "RECENT"}
    | {"UID", "SEQ", "MODSEQ"}
)
_DATE_OPS = frozenset({"BEFORE", "ON", "SINCE"})
_SIZE_OPS = frozenset({"LARGER", "SMALLER"})
_SENT_OPS = frozenset({"SENTBEFORE", "SENTON", "SENTSINCE"})
#: Cache items of fetch.RENDER_CACHE that SEARCH adds (never change for a UID).
SENT_ITEM = "SENT"  # (date | None,): the Date header's date; a tuple so None is a value
HEADERS_ITEM = "HEADERS"  # {lower-case field name: casefolded decoded values}
#: (header end, text parts): where the header block ends and the text/* leaves lie, so
#: BODY/TEXT decode a cached message's text without a MIME scan (Dovecot's index keeps
#: the MIME structure for the same reason).
PARTS_ITEM = "TEXTPARTS"
#: The header fields whose decoded values SEARCH keeps per message (RFC 3501 §6.4.4
#: FROM/TO/CC/BCC/SUBJECT, and HEADER naming one of them).
SEARCH_FIELDS = ("from", "to", "cc", "bcc", "subject")


def _uses_modseq(key: c.SearchKey) -> bool:
    if key.op == "MODSEQ":
        return True
    return any(isinstance(a, c.SearchKey) and _uses_modseq(a) for a in key.args)


def _children(key: c.SearchKey) -> list[c.SearchKey]:
    return [a for a in key.args if isinstance(a, c.SearchKey)]


def session_only(key: c.SearchKey) -> bool:
    """True when ``key`` can be answered from the session's own view (flags, modseqs,
    \\Recent, UIDs, sequence numbers) without any data from the backend."""
    if key.op in ("AND", "OR", "NOT"):
        return all(session_only(k) for k in _children(key))
    return key.op in _SESSION_OPS


def _header_field(key: c.SearchKey) -> str | None:
    """The cached header field a FROM/TO/CC/BCC/SUBJECT/HEADER key reads, if any."""
    if key.op in _HEADER_KEYS:
        return key.op.lower()
    if key.op == "HEADER" and str(key.args[0]).lower() in SEARCH_FIELDS:
        return str(key.args[0]).lower()
    return None


class _Wants:
    """Which per-message data the data-dependent part of a SEARCH program reads."""

    __slots__ = ("body", "date", "headers", "sent", "size")

    def __init__(self, key: c.SearchKey) -> None:
        self.date = self.size = self.sent = self.headers = self.body = False
        self._walk(key)

    def _walk(self, key: c.SearchKey) -> None:
        op = key.op
        if op in ("AND", "OR", "NOT"):
            for k in _children(key):
                self._walk(k)
        elif op in _DATE_OPS:
            self.date = True
        elif op in _SIZE_OPS:
            self.size = True
        elif op in _SENT_OPS:
            self.sent = True
        elif _header_field(key) is not None:
            self.headers = True
        elif op in ("HEADER", "BODY", "TEXT"):
            self.body = True

    def max_need(self) -> FetchNeed:
        """The backend need when nothing is cached."""
        need = FetchNeed.NONE
        if self.date:
            need |= FetchNeed.INTERNALDATE
        if self.size:
            need |= FetchNeed.SIZE
        if self.sent:
            need |= FetchNeed.SUMMARY
        if self.headers or self.body:
            need |= FetchNeed.BODY
        return need


class _View:
    """The selected mailbox's state for one SEARCH, as the backend announced it."""

    def __init__(self, selected: SelectedMailbox) -> None:
        self.live, self.flags, self.modseqs = selected.current_state()
        self.recent = selected.recent_uids
        all_uids = selected.uids
        self.largest_uid = all_uids[-1] if all_uids else 0
        self.exists = len(all_uids)  # ghosts keep their numbers until EXPUNGE is sent
        self._all_uids = all_uids
        self._seq: dict[int, int] | None = None

    def _seq_map(self) -> dict[int, int]:
        if self._seq is None:
            count = len(self._all_uids)
            self._seq = dict(zip(self._all_uids, range(1, count + 1), strict=True))
        return self._seq

    def seq(self, uid: int) -> int:
        return self._seq_map()[uid]

    def seqs(self, uids: list[int]) -> list[int]:
        """Sequence numbers of ``uids`` (all in the view): a bisect each for a few, one
        map of the whole mailbox for many."""
        if len(uids) * 8 > len(self._all_uids):
            seq = self._seq_map()
            return [seq[uid] for uid in uids]
        all_uids = self._all_uids
        return [bisect_left(all_uids, uid) + 1 for uid in uids]


UidPredicate = Callable[[int], bool]


def _compile_session(key: c.SearchKey, view: _View) -> UidPredicate:
    """A predicate over UIDs for a session-only key (see ``session_only``)."""
    op, args = key.op, key.args
    flags, recent = view.flags, view.recent
    if op == "AND":
        parts = [_compile_session(k, view) for k in _children(key)]
        return lambda uid: all(p(uid) for p in parts)
    if op == "OR":
        a, b = (_compile_session(k, view) for k in _children(key))
        return lambda uid: a(uid) or b(uid)
    if op == "NOT":
        inner = _compile_session(_children(key)[0], view)
        return lambda uid: not inner(uid)
    if op == "ALL":
        return lambda uid: True
    if op in _FLAG_KEYS:
        flag = _FLAG_KEYS[op]
        return lambda uid: flag in flags[uid]
    if op in _UNFLAG_KEYS:
        flag = _UNFLAG_KEYS[op]
        return lambda uid: flag not in flags[uid]
    if op == "RECENT":
        return lambda uid: uid in recent
    if op == "OLD":
        return lambda uid: uid not in recent
    if op == "NEW":
        return lambda uid: uid in recent and "\\Seen" not in flags[uid]
    if op in ("KEYWORD", "UNKEYWORD"):
        # IMAP keywords compare case-insensitively (RFC 3501 §2.3.2 practice).
        word = str(args[0]).lower()
        wanted = op == "KEYWORD"
        return lambda uid: any(f.lower() == word for f in flags[uid]) is wanted
    if op == "UID":
        uidset = args[0]
        assert isinstance(uidset, c.SequenceSet)
        largest = view.largest_uid
        return lambda uid: uidset.contains(uid, largest)
    if op == "SEQ":
        seqset = args[0]
        assert isinstance(seqset, c.SequenceSet)
        exists = view.exists
        return lambda uid: seqset.contains(view.seq(uid), exists)
    if op == "MODSEQ":
        floor, modseqs = _number(args[0]), view.modseqs
        return lambda uid: modseqs[uid] >= floor
    raise ValueError(f"not a session key: {op}")


class _Message:
    """One message's data for the data-dependent keys; parses the body at most once,
    and only as far as asked (the header block alone for header keys)."""

    __slots__ = (
        "_fields",
        "_text",
        "body",
        "date",
        "headers",
        "key",
        "layout",
        "sent",
        "size",
        "uid",
    )

    def __init__(self, key: tuple[str, int, int]) -> None:
        self.key = key
        self.uid = key[2]
        self.date: datetime | None = None
        self.size: int | None = None
        self.sent: date | None = None
        self.headers: dict[str, tuple[str, ...]] | None = None
        self.layout: tuple[int, tuple[TextPart, ...]] | None = None
        self.body = b""
        self._fields: tuple[HeaderField, ...] | None = None
        self._text: str | None = None

    def _layout(self) -> tuple[int, tuple[TextPart, ...]]:
        if self.layout is None:
            root = parse_structure(self.body)
            self.layout = (root.body_start, text_parts(self.body, root))
            RENDER_CACHE.put(self.key, PARTS_ITEM, self.layout)
        return self.layout

    @property
    def header_text(self) -> str:
        """The header block as text, casefolded (what TEXT matches besides the body)."""
        end = self._layout()[0]
        return self.body[:end].decode("utf-8", "replace").casefold()

    @property
    def fields(self) -> tuple[HeaderField, ...]:
        if self._fields is None:
            self._fields = top_fields(self.body)
        return self._fields

    def header_values(self, name: str) -> list[str]:
        return field_values(self.body, self.fields, name)

    @property
    def text(self) -> str:
        """Casefolded searchable text of the body (RFC 3501 §6.4.4 BODY)."""
        if self._text is None:
            self._text = parts_text(self.body, self._layout()[1]).casefold()
        return self._text


MessagePredicate = Callable[[_Message], bool]


def _compile(key: c.SearchKey, view: _View) -> MessagePredicate:
    """A predicate over loaded messages for any key (RFC 3501 §6.4.4)."""
    if session_only(key):
        inner = _compile_session(key, view)
        return lambda m: inner(m.uid)
    op, args = key.op, key.args
    if op == "AND":
        parts = [_compile(k, view) for k in _children(key)]
        return lambda m: all(p(m) for p in parts)
    if op == "OR":
        a, b = (_compile(k, view) for k in _children(key))
        return lambda m: a(m) or b(m)
    if op == "NOT":
        negated = _compile(_children(key)[0], view)
        return lambda m: not negated(m)
    if op in _SIZE_OPS:
        limit = _number(args[0])
        if op == "LARGER":
            return lambda m: (m.size or 0) > limit
        return lambda m: (m.size or 0) < limit
    if op in _DATE_OPS:
        wanted = args[0]
        return lambda m: m.date is not None and _compare_date(op, m.date.date(), wanted)
    if op in _SENT_OPS:
        # RFC 3501 §6.4.4: "disregarding time and timezone" — the date as written.
        wanted = args[0]
        return lambda m: m.sent is not None and _compare_date(op[4:], m.sent, wanted)
    field = _header_field(key)
    if field is not None:
        # RFC 3501 §6.4.4: HEADER with an empty string matches every message that has
        # the field; "" is in every string, so the same test covers it.
        needle = str(args[-1]).casefold()
        return lambda m: any(needle in v for v in (m.headers or {}).get(field, ()))
    if op == "HEADER":
        name, raw_needle = str(args[0]), str(args[1])
        return lambda m: any(contains_ci(v, raw_needle) for v in m.header_values(name))
    if op == "BODY":
        needle = str(args[0]).casefold()
        return lambda m: needle in m.text
    if op == "TEXT":
        needle = str(args[0]).casefold()
        return lambda m: needle in m.header_text or needle in m.text
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


def _split(key: c.SearchKey) -> tuple[list[c.SearchKey], list[c.SearchKey]]:
    """A top-level AND's session-only conjuncts and the rest (which need data)."""
    parts = _children(key) if key.op == "AND" else [key]
    cheap = [k for k in parts if session_only(k)]
    return cheap, [k for k in parts if not session_only(k)]


def _sent_of(summary: Any) -> date | None:
    value = getattr(summary, "sent_date", None)
    return datetime.fromisoformat(value).date() if value else None


def _searched_headers(message: _Message) -> dict[str, tuple[str, ...]]:
    return {
        name: tuple(v.casefold() for v in message.header_values(name)) for name in SEARCH_FIELDS
    }


async def _load(
    session: ImapSession, view_box: tuple[str, int], uids: list[int], wants: _Wants
) -> list[_Message]:
    """The data ``wants`` for ``uids``: from RENDER_CACHE where every message has it,
    otherwise from one backend call for the chunk (and remembered for next time)."""
    assert session.backend is not None
    box, validity = view_box
    messages = [_Message((box, validity, uid)) for uid in uids]
    need = FetchNeed.NONE
    for m in messages:
        entry = RENDER_CACHE.entry(m.key)
        if entry is None:
            need = wants.max_need()
            continue
        if wants.body:
            m.layout = entry.get(PARTS_ITEM)
        if wants.date:
            m.date = entry.get(DATE_ITEM)
            if m.date is None:
                need |= FetchNeed.INTERNALDATE
        if wants.size:
            m.size = entry.get(SIZE_ITEM)
            if m.size is None:
                need |= FetchNeed.SIZE
        if wants.sent:
            sent = entry.get(SENT_ITEM)
            if sent is None:
                need |= FetchNeed.SUMMARY
            else:
                m.sent = sent[0]
        if wants.headers:
            m.headers = entry.get(HEADERS_ITEM)
            if m.headers is None:
                need |= FetchNeed.BODY
    if wants.body:
        need |= FetchNeed.BODY
    if need == FetchNeed.NONE:
        return messages
    datas = await session.backend.fetch(box, uids, need)
    by_uid = {m.uid: m for m in messages}
    loaded = []
    for data in datas:
        found = by_uid.get(data.uid)
        if found is None:
            continue
        m, key = found, found.key
        if data.internaldate is not None:
            m.date = data.internaldate
            RENDER_CACHE.put(key, DATE_ITEM, m.date)
        if data.size is not None:
            m.size = data.size
            RENDER_CACHE.put(key, SIZE_ITEM, m.size)
        if FetchNeed.SUMMARY in need and data.summary is not None:
            m.sent = _sent_of(data.summary)
            RENDER_CACHE.put(key, SENT_ITEM, (m.sent,))
        if data.body is not None:
            m.body = data.body
            if wants.headers and m.headers is None:
                m.headers = _searched_headers(m)
                RENDER_CACHE.put(key, HEADERS_ITEM, m.headers)
        loaded.append(m)
    # A message the backend no longer has (expunged, the event not yet here) is no hit.
    return loaded


async def search(session: ImapSession, command: c.Search) -> Reply:
    selected = session.selected
    assert selected is not None and session.backend is not None
    modseq_key = _uses_modseq(command.criteria)
    if modseq_key:
        await session.enable_condstore()  # RFC 7162 §3.1
    view = _View(selected)
    cheap, costly = _split(command.criteria)
    # Session-only conjuncts first: they need no data and narrow what must be loaded.
    candidates = view.live
    for key in cheap:
        flag = _FLAG_KEYS.get(key.op) or _UNFLAG_KEYS.get(key.op)
        if flag is not None:
            # The commonest SEARCH of all (UNSEEN, FLAGGED...): no call per message.
            flags, wanted = view.flags, key.op in _FLAG_KEYS
            candidates = [uid for uid in candidates if (flag in flags[uid]) is wanted]
        else:
            predicate = _compile_session(key, view)
            candidates = [uid for uid in candidates if predicate(uid)]
    if costly:
        rest = costly[0] if len(costly) == 1 else c.SearchKey("AND", tuple(costly))
        wants = _Wants(rest)
        matcher = _compile(rest, view)
        size = chunk_size(wants.max_need())
        hits: list[int] = []
        for start in range(0, len(candidates), size):
            chunk = candidates[start : start + size]
            loaded = await _load(session, (selected.mailbox_id, selected.uidvalidity), chunk, wants)
            hits.extend(m.uid for m in loaded if matcher(m))
    else:
        hits = candidates
    highest = max((view.modseqs.get(uid, 0) for uid in hits), default=0) if modseq_key else 0
    numbers = hits if command.uid else view.seqs(hits)
    if command.return_opts is None:
        line = " ".join(["SEARCH", *map(str, numbers)])
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
