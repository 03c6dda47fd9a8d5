"""COPY, UID COPY, MOVE, UID MOVE with COPYUID (RFC 3501 §6.4.7, RFC 4315 §3,
RFC 6851 §3).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.backend.errors import MailboxNotFound
from bridge.backend.types import CopyResult
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import invalid_sequence
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged
from bridge.imap.wire.sequence import format_sequence_set

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


def _copyuid(result: CopyResult) -> str | None:
    if not result.source_uids:
        return None
    # RFC 4315 §3: the two sets pair up in order.
    return (
        f"COPYUID {result.uidvalidity} {format_sequence_set(result.source_uids)} "
        f"{format_sequence_set(result.dest_uids)}"
    )


async def copy_or_move(session: ImapSession, command: c.Copy | c.Move) -> Reply:
    selected = session.selected
    assert selected is not None and session.backend is not None
    move = isinstance(command, c.Move)
    if not command.uid and invalid_sequence(command.sequence, selected.exists):
        return Reply("BAD", "Invalid message sequence number")
    if move and selected.read_only:
        return Reply("NO", "Mailbox is read-only", "READ-ONLY")
    entries = (
        selected.resolve_uids(command.sequence)
        if command.uid
        else selected.resolve_seqs(command.sequence)
    )
    uids = [e.uid for e in entries if not selected.is_expunged(e.uid)]
    verb = "MOVE" if move else "COPY"
    try:
        if move:
            result = await session.backend.move(selected.mailbox_id, uids, command.mailbox)
        else:
            result = await session.backend.copy(selected.mailbox_id, uids, command.mailbox)
    except MailboxNotFound:
        # RFC 3501 §6.4.7: TRYCREATE when the destination does not exist.
        return Reply("NO", "Mailbox does not exist", "TRYCREATE")
    code = _copyuid(result)
    if move:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGE responses,
        # which the session's flush (EXPUNGE allowed for MOVE) then sends.
        if code is not None:
            await session.emit(untagged(f"OK [{code}] Moved"))
        return Reply(text="MOVE completed")
    if len(uids) < len(entries) and not command.uid:
        return Reply("NO", "Some messages were expunged", "EXPUNGEISSUED")
    return Reply(text=f"{verb} completed", code=code)
