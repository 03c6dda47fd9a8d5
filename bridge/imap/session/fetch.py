"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2), with CONDSTORE's MODSEQ and
CHANGEDSINCE (RFC 7162 §3.1.4-§3.1.5).

Theory of operation. The requested attributes decide the ``FetchNeed`` so that a
``FETCH 1:* (FLAGS)`` never loads a body. Messages are fetched from the backend in chunks
of ``CHUNK`` UIDs and each message's response is written as soon as it is rendered, so a
FETCH of 10,000 messages never builds one giant bytes object. ENVELOPE, BODY and
BODYSTRUCTURE of a UID never change (ARCHITECTURE.md: the bytes served for a UID never
change), so their rendered bytes are kept in a bounded LRU keyed by
(mailbox id, UIDVALIDITY, UID); a chunk whose summaries are all cached does not even ask
the backend for them.

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

#: UIDs per backend call: big enough to amortise the call, small enough to stream.
CHUNK = 200
SUMMARY_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE"})


class RenderCache:
    """Bounded LRU of rendered ENVELOPE/BODY/BODYSTRUCTURE bytes per message."""

    def __init__(self, max_messages: int = 20_000) -> None:
        self.max_messages = max_messages
        self._entries: OrderedDict[tuple[str, int, int], dict[str, Raw]] = OrderedDict()

    def get(self, key: tuple[str, int, int], item: str) -> Raw | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.get(item)

    def put(self, key: tuple[str, int, int], item: str, value: Raw) -> None:
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
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start : start + CHUNK]
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
    # Take the cached renderings now, so that an eviction while this chunk is being
    # written cannot leave a message without its ENVELOPE.
    cached: dict[tuple[int, str], Raw] = {}
    if FetchNeed.SUMMARY in need:
        for e in chunk:
            for item in summary_items:
                hit = RENDER_CACHE.get((box, validity, e.uid), item)
                if hit is not None:
                    cached[(e.uid, item)] = hit
        if len(cached) == len(chunk) * len(summary_items):
            chunk_need &= ~FetchNeed.SUMMARY
    uids = [e.uid for e in chunk]
    data = await session.backend.fetch(box, uids, chunk_need)
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
            render_fetch(
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
    cached: dict[tuple[int, str], Raw],
    *,
    condstore: bool = False,
) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    key = (selected.mailbox_id, selected.uidvalidity, message.uid)
    flags_sent = False
    for attr in attributes:
        name = attr.name
        if name == "UID":
            items.append(("UID", message.uid))
        elif name == "FLAGS":
            items.append(("FLAGS", _flags(selected, message)))
            flags_sent = True
        elif name == "INTERNALDATE":
            items.append(("INTERNALDATE", message.internaldate))
        elif name == "RFC822.SIZE":
            items.append(("RFC822.SIZE", message.size))
        elif name == "MODSEQ":
            items.append(("MODSEQ", Raw(b"(%d)" % message.modseq)))
        elif name in SUMMARY_ITEMS or (name == "BODY" and attr.section is None):
            items.append((name, cached.get((message.uid, name)) or _summary(key, name, message)))
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
    selected.note_flags(MessageInfo(uid=message.uid, flags=flags, modseq=message.modseq))
    return Raw(b"(" + format_flags(selected.flags_of(message.uid)) + b")")


def _summary(key: tuple[str, int, int], name: str, message: MessageData) -> Raw:
    cached = RENDER_CACHE.get(key, name)
    if cached is not None:
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
