"""STORE and UID STORE (RFC 3501 §6.4.6, §6.4.8) with CONDSTORE's UNCHANGEDSINCE and
the MODIFIED response code (RFC 7162 §3.1.3).

The backend's answer is the truth: the session reports each touched message's new flags
(unless ``.SILENT``) and records them as known, so the echo of this very change arriving
later as an event is dropped instead of being reported twice.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.backend.types import StoreOperation
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import format_flags, invalid_sequence
from bridge.imap.wire import commands as c
from bridge.imap.wire.sequence import format_sequence_set

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession

_OPERATIONS = {op.value: op for op in StoreOperation}


async def store(session: ImapSession, command: c.Store) -> Reply:
    selected = session.selected
    assert selected is not None and session.backend is not None
    if not command.uid and invalid_sequence(command.sequence, selected.exists):
        return Reply("BAD", "Invalid message sequence number")
    if selected.read_only:
        return Reply("NO", "Mailbox is read-only", "READ-ONLY")
    if command.unchanged_since is not None:
        await session.enable_condstore()  # RFC 7162 §3.1
    entries = (
        selected.resolve_uids(command.sequence)
        if command.uid
        else selected.resolve_seqs(command.sequence)
    )
    flags = frozenset(f for f in command.flags if f != "\\Recent")
    if not selected.allows_new_keywords:
        # RFC 3501 §7.1 PERMANENTFLAGS: flags outside it are not kept; drop them here so
        # the answer does not pretend they were stored.
        flags = frozenset(f for f in flags if f in selected.permanent_flags)
    live = [e for e in entries if not selected.is_expunged(e.uid)]
    infos = await session.backend.store_flags(
        selected.mailbox_id,
        [e.uid for e in live],
        _OPERATIONS[command.operation],
        flags,
        unchanged_since=command.unchanged_since,
    )
    touched = {info.uid: info for info in infos}
    for entry in live:
        info = touched.get(entry.uid)
        if info is None:
            continue
        selected.note_flags(info)
        # RFC 7162 §3.1.3: with CONDSTORE on, a .SILENT STORE still reports MODSEQ.
        if not command.silent or session.condstore:
            await session.emit(_store_fetch(session, entry.seq, entry.uid, command))
    modified = [e for e in live if e.uid not in touched]
    if command.unchanged_since is not None and modified:
        numbers = [e.uid if command.uid else e.seq for e in modified]
        return Reply(
            text="Conditional STORE failed", code=f"MODIFIED {format_sequence_set(numbers)}"
        )
    if len(live) < len(entries) and not command.uid and not command.silent:
        # RFC 2180 §4.2.2-§4.2.3: the live messages were stored and reported; the NO
        # tells the client to NOOP for the EXPUNGE responses. With .SILENT there is no
        # answer to reconcile, and §4.2.1 says the server SHOULD return OK.
        return Reply("NO", "Some messages were expunged", "EXPUNGEISSUED")
    return Reply(text="STORE completed")


def _store_fetch(session: ImapSession, seq: int, uid: int, command: c.Store) -> bytes:
    selected = session.selected
    assert selected is not None
    parts = []
    if command.uid:
        parts.append(b"UID %d" % uid)  # RFC 3501 §6.4.8
    if not command.silent:
        parts.append(b"FLAGS (" + format_flags(selected.flags_of(uid)) + b")")
    if session.condstore:
        parts.append(b"MODSEQ (%d)" % selected.modseq_of(uid))
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
