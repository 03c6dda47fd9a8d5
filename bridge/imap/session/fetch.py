"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2), with CONDSTORE's MODSEQ and
CHANGEDSINCE (RFC 7162 §3.1.4-§3.1.5).

Theory of operation. The requested attributes decide the ``FetchNeed`` so that a
``FETCH 1:* (FLAGS)`` never loads a body. Messages are fetched from the backend in chunks
of ``CHUNK`` UIDs when bodies are needed (``META_CHUNK`` otherwise) and each message's
response is written as soon as it is rendered, so a FETCH of 10,000 messages never
builds one giant bytes object. ENVELOPE, BODY, BODYSTRUCTURE, RFC822.SIZE and
INTERNALDATE of a UID never change (ARCHITECTURE.md: the bytes served for a UID never
change; RFC 3501 §2.3.3), so they are kept, rendered, in a bounded LRU keyed by
(mailbox id, UIDVALIDITY, UID); what every message of a chunk has cached is not asked of
the backend. Flags and modseqs come from the session's view (what the backend announced,
``SelectedMailbox.current_state``) when nothing else is left to ask, so a warm
``FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE)`` makes no backend call at all.

Non-PEEK body fetches set ``\\Seen`` in a read-write mailbox and report the new FLAGS in
the same response (RFC 3501 §6.4.5).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bridge.backend.types import FetchNeed, MessageData, MessageInfo, StoreOperation
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import (
    SelectedMailbox,
    ViewEntry,
    format_flags,
    invalid_sequence,
)
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import render_fetch
from bridge.imap.wire.serialize import Raw, render
from bridge.mime.sections import extract_section, partial

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession

#: UIDs per backend call when bodies are needed: big enough to amortise the call, small
#: enough that only this many bodies are held at once.
CHUNK = 200
#: UIDs per backend call when no body is needed (flags, dates, sizes, summaries): each
#: call costs a round trip (a thread hop and an SQL query in CachedBackend), and the
#: data per message is small, so few large calls beat many small ones.
META_CHUNK = 2000
SUMMARY_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE"})
#: Cache items that are not rendered IMAP data: RFC822.SIZE (int) and INTERNALDATE
#: (datetime) — both fixed for a UID (RFC 3501 §2.3.3, §2.3.4) — and what SEARCH keeps
#: (see search.py): SENT (the Date header's date or None), HEADERS (casefolded values).
SIZE_ITEM = "RFC822.SIZE"
DATE_ITEM = "INTERNALDATE"


def chunk_size(need: FetchNeed) -> int:
    return CHUNK if FetchNeed.BODY in need else META_CHUNK


class RenderCache:
    """Bounded LRU of what never changes for a UID (ARCHITECTURE.md: the bytes served for
    a UID never change): rendered ENVELOPE/BODY/BODYSTRUCTURE, RFC822.SIZE, INTERNALDATE
    and SEARCH's derived header values, per (mailbox id, UIDVALIDITY, UID)."""

    def __init__(self, max_messages: int = 20_000) -> None:
        self.max_messages = max_messages
        self._entries: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()

    def get(self, key: tuple[str, int, int], item: str) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.get(item)

    def entry(self, key: tuple[str, int, int]) -> dict[str, Any] | None:
        """Every cached item of one message (the cache's own dict: read, do not modify)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, int, int], item: str, value: Any) -> None:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = {}
            if len(self._entries) > self.max_messages:
                self._entries.popitem(last=False)
        entry[item] = value

    def __len__(self) -> int:
        return len(self._entries)


#: Module-level: a message's rendering is the same for every session that fetches it.
RENDER_CACHE = RenderCache()


def fetch_need(attributes: Sequence[c.FetchAttribute], *, read_only: bool) -> FetchNeed:
    need = FetchNeed.NONE
    for attr in attributes:
        name = attr.name
        if name == "FLAGS":
            need |= FetchNeed.FLAGS
        elif name == "INTERNALDATE":
            need |= FetchNeed.INTERNALDATE
        elif name == "RFC822.SIZE":
            need |= FetchNeed.SIZE
        elif name in SUMMARY_ITEMS or (name == "BODY" and attr.section is None):
            need |= FetchNeed.SUMMARY
        elif name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT") or name == "BODY":
            need |= FetchNeed.BODY
        if attr.sets_seen and not read_only:
            need |= FetchNeed.FLAGS  # to know whether \Seen must be set
    return need


def _summary_item(name: str) -> str:
    return "BODY" if name == "BODY" else name


async def fetch(session: ImapSession, command: c.Fetch) -> Reply:
    selected = session.selected
    assert selected is not None and session.backend is not None
    if command.vanished:
        # RFC 7162 §3.2.3: "A server MUST respond with a tagged BAD response if ... the
        # VANISHED UID FETCH modifier is specified and the client hasn't issued 'ENABLE
        # QRESYNC'" — and QRESYNC is never enabled here.
        return Reply("BAD", "VANISHED requires QRESYNC, which is not supported")
    if not command.uid and invalid_sequence(command.sequence, selected.exists):
        return Reply("BAD", "Invalid message sequence number")
    entries = (
        selected.resolve_uids(command.sequence)
        if command.uid
        else selected.resolve_seqs(command.sequence)
    )
    attributes = list(command.attributes)
    if command.uid and not any(a.name == "UID" for a in attributes):
        # RFC 3501 §6.4.8: UID FETCH responses always carry the UID.
        attributes.insert(0, c.FetchAttribute("UID"))
    if command.changed_since is not None or any(a.name == "MODSEQ" for a in attributes):
        await session.enable_condstore()  # RFC 7162 §3.1
    reports_flags = command.changed_since is not None or any(a.name == "FLAGS" for a in attributes)
    if session.condstore and reports_flags and not any(a.name == "MODSEQ" for a in attributes):
        # RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ; RFC 7162 §3.1: once CONDSTORE
        # is on, "mod-sequence data in all subsequent untagged FETCH responses" that
        # report flags.
        attributes.append(c.FetchAttribute("MODSEQ"))
    need = fetch_need(attributes, read_only=selected.read_only)
    missing = 0
    size = chunk_size(need)
    for start in range(0, len(entries), size):
        chunk = entries[start : start + size]
        got = await _fetch_chunk(session, selected, chunk, attributes, need, command)
        missing += len(chunk) - got
    if missing and not command.uid:
        # RFC 2180 §4.1.2: some requested messages were expunged by another session and
        # the client has not been told yet.
        return Reply("NO", "Some messages were expunged", "EXPUNGEISSUED")
    return Reply(text="FETCH completed")


async def _fetch_chunk(
    session: ImapSession,
    selected: SelectedMailbox,
    chunk: list[ViewEntry],
    attributes: list[c.FetchAttribute],
    need: FetchNeed,
    command: c.Fetch,
) -> int:
    assert session.backend is not None
    box, validity = selected.mailbox_id, selected.uidvalidity
    wanted = [a.name if a.section is None else "" for a in attributes]
    summary_items = {_summary_item(n) for n in wanted if n in SUMMARY_ITEMS or n == "BODY"}
    chunk_need = need
    # Take the cached items now, so that an eviction while this chunk is being written
    # cannot leave a message without its ENVELOPE; what every message of the chunk has
    # cached is not asked of the backend at all.
    cached: dict[tuple[int, str], Any] = {}
    items: dict[str, FetchNeed] = {}
    if FetchNeed.SUMMARY in need:
        items.update((item, FetchNeed.SUMMARY) for item in summary_items)
    if FetchNeed.SIZE in need:
        items[SIZE_ITEM] = FetchNeed.SIZE
    if FetchNeed.INTERNALDATE in need:
        items[DATE_ITEM] = FetchNeed.INTERNALDATE
    if items:
        complete = dict.fromkeys(items, 0)
        for e in chunk:
            entry = RENDER_CACHE.entry((box, validity, e.uid))
            if entry is None:
                continue
            for item in items:
                hit = entry.get(item)
                if hit is not None:
                    cached[(e.uid, item)] = hit
                    complete[item] += 1
        for item_need in set(items.values()):
            if all(complete[i] == len(chunk) for i, n in items.items() if n == item_need):
                chunk_need &= ~item_need
    if chunk_need & ~FetchNeed.FLAGS or any(a.sets_seen for a in attributes):
        uids = [e.uid for e in chunk]
        data = await session.backend.fetch(box, uids, chunk_need)
    else:
        data = _from_view(selected, chunk, chunk_need)
    if chunk_need & (FetchNeed.SIZE | FetchNeed.INTERNALDATE):
        for d in data:
            if d.size is not None:
                RENDER_CACHE.put((box, validity, d.uid), SIZE_ITEM, d.size)
            if d.internaldate is not None:
                RENDER_CACHE.put((box, validity, d.uid), DATE_ITEM, d.internaldate)
    if command.changed_since is not None:
        data = [d for d in data if d.modseq > command.changed_since]
    seen_now = await _implicit_seen(session, selected, data, attributes)
    seq_of = {e.uid: e.seq for e in chunk}
    for message in data:
        seq = seq_of.get(message.uid)
        if seq is None:
            continue
        flags_changed = seen_now.get(message.uid)
        if flags_changed is not None:
            message = _with(message, flags_changed)
        await session.emit(
            _render(
                seq,
                _items(
                    selected,
                    message,
                    attributes,
                    flags_changed is not None,
                    cached,
                    condstore=session.condstore,
                ),
            )
        )
    return len({d.uid for d in data}) if command.changed_since is None else len(chunk)


def _from_view(
    selected: SelectedMailbox, chunk: list[ViewEntry], need: FetchNeed
) -> list[MessageData]:
    """What the backend would answer when only flags (or nothing) are left to ask.

    Everything else requested is cached, and the flags and modseqs the backend announced
    are in the session's view (``SelectedMailbox.current_state``), so the backend is not
    asked; a message it expunged (a ghost until EXPUNGE is sent) is left out, as the
    backend would.
    """
    live, flags, modseqs = selected.current_state()
    gone = len(live) < selected.exists
    with_flags = FetchNeed.FLAGS in need
    return [
        MessageData(
            uid=e.uid, flags=flags[e.uid] if with_flags else None, modseq=modseqs.get(e.uid, 0)
        )
        for e in chunk
        if not (gone and selected.is_expunged(e.uid))
    ]


_ITEM_PREFIX: dict[str, bytes] = {}


def _render(seq: int, items: list[tuple[str, Any]]) -> bytes:
    """``render_fetch`` with the common values (pre-rendered ``Raw`` such as cached
    ENVELOPEs and FLAGS, and numbers) joined directly: one bytes join per message
    instead of a type dispatch per item; anything else goes through ``render_fetch``."""
    parts = []
    for name, value in items:
        prefix = _ITEM_PREFIX.get(name)
        if prefix is None:
            prefix = name.encode("ascii") + b" "
            if len(_ITEM_PREFIX) < 64:  # section names are the client's: keep a few
                _ITEM_PREFIX[name] = prefix
        kind = type(value)
        if kind is Raw:
            parts.append(prefix + value)
        elif kind is int:
            parts.append(prefix + b"%d" % value)
        else:
            return render_fetch(seq, items)
    return b"* %d FETCH (%b)\r\n" % (seq, b" ".join(parts))


def _with(message: MessageData, info: MessageInfo) -> MessageData:
    return MessageData(
        uid=message.uid,
        flags=info.flags,
        internaldate=message.internaldate,
        size=message.size,
        summary=message.summary,
        body=message.body,
        modseq=max(message.modseq, info.modseq),
    )


async def _implicit_seen(
    session: ImapSession,
    selected: SelectedMailbox,
    data: list[MessageData],
    attributes: list[c.FetchAttribute],
) -> dict[int, MessageInfo]:
    """RFC 3501 §6.4.5: BODY[...] (not PEEK), RFC822 and RFC822.TEXT set \\Seen."""
    if selected.read_only or not any(a.sets_seen for a in attributes):
        return {}
    unseen = [d.uid for d in data if d.flags is not None and "\\Seen" not in d.flags]
    if not unseen:
        return {}
    assert session.backend is not None
    infos = await session.backend.store_flags(
        selected.mailbox_id, unseen, StoreOperation.ADD, frozenset({"\\Seen"})
    )
    return {info.uid: info for info in infos}


def _items(
    selected: SelectedMailbox,
    message: MessageData,
    attributes: list[c.FetchAttribute],
    include_flags: bool,
    cached: dict[tuple[int, str], Any],
    *,
    condstore: bool = False,
) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    uid = message.uid
    key = (selected.mailbox_id, selected.uidvalidity, uid)
    flags_sent = False
    for attr in attributes:
        name = attr.name
        if name == "UID":
            items.append(("UID", message.uid))
        elif name == "FLAGS":
            items.append(("FLAGS", _flags(selected, message)))
            flags_sent = True
        elif name == "INTERNALDATE":
            date = message.internaldate
            items.append(("INTERNALDATE", cached[(uid, DATE_ITEM)] if date is None else date))
        elif name == "RFC822.SIZE":
            size = message.size
            items.append(("RFC822.SIZE", cached[(uid, SIZE_ITEM)] if size is None else size))
        elif name == "MODSEQ":
            items.append(("MODSEQ", Raw(b"(%d)" % message.modseq)))
        elif name in SUMMARY_ITEMS or (name == "BODY" and attr.section is None):
            items.append((name, cached.get((uid, name)) or _summary(key, name, message)))
        elif name == "RFC822":
            items.append(("RFC822", message.body or b""))
        elif name == "RFC822.HEADER":
            items.append(("RFC822.HEADER", extract_section(message.body or b"", (), "HEADER")))
        elif name == "RFC822.TEXT":
            items.append(("RFC822.TEXT", extract_section(message.body or b"", (), "TEXT")))
        elif name == "BODY" and attr.section is not None:
            section = attr.section
            data = extract_section(message.body or b"", section.part, section.text, section.fields)
            if attr.partial is not None:
                data = partial(data, attr.partial[0], attr.partial[1])
            items.append((attr.response_name(), data))
    if include_flags and not flags_sent:
        # RFC 3501 §6.4.5: the implicit \Seen is reported in the same response; RFC 7162
        # §3.2.4 (and §3.1): with CONDSTORE on, such a change carries its MODSEQ too.
        items.append(("FLAGS", _flags(selected, message)))
        if condstore and not any(a.name == "MODSEQ" for a in attributes):
            items.append(("MODSEQ", Raw(b"(%d)" % message.modseq)))
    return items


def _flags(selected: SelectedMailbox, message: MessageData) -> Raw:
    flags = message.flags or frozenset()
    # Sending FLAGS tells the client the current state: remember it so a queued event
    # carrying the same flags is not reported again.
    selected.note_told(message.uid, flags, message.modseq)
    return Raw(b"(" + format_flags(selected.flags_of(message.uid)) + b")")


def _summary(key: tuple[str, int, int], name: str, message: MessageData) -> Raw:
    cached = RENDER_CACHE.get(key, name)
    if isinstance(cached, Raw):
        return cached
    summary = message.summary
    if summary is None:
        # The backend ignored FetchNeed.SUMMARY: a backend bug, answered SERVERBUG.
        raise RuntimeError(f"backend returned no summary for UID {message.uid}")
    value = {
        "ENVELOPE": summary.envelope,
        "BODY": summary.body,
        "BODYSTRUCTURE": summary.bodystructure,
    }[name]
    rendered = Raw(render(value))
    RENDER_CACHE.put(key, name, rendered)
    return rendered
