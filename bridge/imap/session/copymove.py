"""COPY, UID COPY, MOVE, UID MOVE with COPYUID (RFC 3501 §6.4.7, RFC 4315 §3,
RFC 6851 §3).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bridge.backend.errors import MailboxNotFound
from bridge.backend.types import CopyResult
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import invalid_sequence
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


def copyuid_code(result: CopyResult) -> str | None:
    """``COPYUID <uidvalidity> <source set> <dest set>`` (RFC 4315 §3).

    "The source UID set is in the order the message(s) were copied; the destination
    UID set corresponds to the source UID set and is in the same order." Clients (mbsync,
    Thunderbird) expand both sets and pair them by position, and a range is a set
    ("12:10 is exactly equivalent to 10:12"), so sorting each set on its own would pair
    the wrong messages whenever the destination UIDs are not in the source order. The
    pairs are ordered by source UID and each side is compressed only into ranges that
    run upwards in that order, so both expand to the same pairing.
    """
    if not result.source_uids:
        return None
    pairs = sorted(zip(result.source_uids, result.dest_uids, strict=True))
    sources = _ordered_set(src for src, _ in pairs)
    dests = _ordered_set(dst for _, dst in pairs)
    return f"COPYUID {result.uidvalidity} {sources} {dests}"


def _ordered_set(numbers: Iterable[int]) -> str:
    """``[12, 10, 11, 13]`` → ``"12,10:11,13"``: ranges only where the order allows."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in runs)


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
    code = copyuid_code(result)
    if move:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGE responses,
        # which the session's flush (EXPUNGE allowed for MOVE) then sends.
        if code is not None:
            await session.emit(untagged(f"OK [{code}] Moved"))
        return Reply(text="MOVE completed")
    # RFC 3501 §6.4.7: a COPY that fails must leave the destination as it was, so a
    # tagged NO after copying the live messages would invite a client to copy them
    # again. RFC 2180 §4.4.2 instead: the messages that still exist are copied, the
    # answer is OK, and the pending EXPUNGE responses (the session's flush after COPY
    # may send them) tell the client which ones were gone.
    return Reply(text=f"{verb} completed", code=code)
