"""SELECT, EXAMINE, CLOSE, UNSELECT.

RFC 3501 §6.3.1-§6.3.2 and §6.4.2; RFC 3691 (UNSELECT); RFC 7162 §3.1.2 (CONDSTORE
parameter, HIGHESTMODSEQ); RFC 4315 (UIDNEXT/UIDVALIDITY codes are RFC 3501 §7.1).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.backend.types import SYSTEM_FLAGS
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import SelectedMailbox, format_flags
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


async def select(session: ImapSession, command: c.Select | c.Examine) -> Reply:
    assert session.backend is not None
    read_only = isinstance(command, c.Examine)
    if command.qresync is not None:
        return Reply("BAD", "QRESYNC is not supported")
    # RFC 3501 §6.3.1: a SELECT first deselects, even if it then fails.
    was_selected = session.selected is not None
    session.select(None)
    if was_selected:
        # RFC 7162 §3.2.11: "A server that advertises ... CONDSTORE ... must return the
        # CLOSED response code" when SELECT/EXAMINE implicitly closes the selected
        # mailbox: the boundary between the old mailbox's responses and the new one's.
        await session.emit(untagged("OK [CLOSED] Previous mailbox closed"))
    snapshot = await session.backend.select(command.mailbox, read_only)
    if command.condstore:
        session.condstore = True  # RFC 7162 §3.1.8
    read_only = read_only or snapshot.read_only
    mailbox = SelectedMailbox(snapshot, read_only=read_only, wake=session.wake)
    keywords = {f for m in snapshot.messages for f in m.flags if not f.startswith("\\")}
    # "\*" is not a flag but the PERMANENTFLAGS marker for "new keywords allowed"; a
    # backend may list it among its permanent flags.
    permanent = set(snapshot.permanent_flags | keywords) - {"\\*"}
    new_keywords = snapshot.allows_new_keywords or "\\*" in snapshot.permanent_flags
    # RFC 3501 §7.2.6: FLAGS lists the flags defined in the mailbox, so every flag the
    # client may set permanently ($Forwarded, say) is among them.
    flags = format_flags(SYSTEM_FLAGS | permanent)
    lines = [untagged(b"FLAGS (" + flags + b")")]
    if read_only:
        # RFC 3501 §6.3.1: no flag can be changed permanently in a read-only mailbox.
        lines.append(untagged("OK [PERMANENTFLAGS ()] Read-only mailbox"))
    else:
        perm = format_flags(permanent)
        if new_keywords:
            # RFC 3501 §7.1: "\*" once, at the end, as every server writes it.
            perm = perm + b" \\*" if perm else b"\\*"
        lines.append(untagged(b"OK [PERMANENTFLAGS (" + perm + b")] Limited"))
    lines.append(untagged(b"%d EXISTS" % mailbox.exists))
    lines.append(untagged(b"%d RECENT" % mailbox.recent_count))
    first_unseen = next(
        (i + 1 for i, m in enumerate(snapshot.messages) if "\\Seen" not in m.flags), None
    )
    if first_unseen is not None:
        lines.append(untagged(f"OK [UNSEEN {first_unseen}] First unseen"))
    lines.append(untagged(f"OK [UIDVALIDITY {snapshot.uidvalidity}] UIDs valid"))
    lines.append(untagged(f"OK [UIDNEXT {snapshot.uidnext}] Predicted next UID"))
    # RFC 7162 §3.1.2.1: a CONDSTORE server reports HIGHESTMODSEQ on every SELECT.
    lines.append(untagged(f"OK [HIGHESTMODSEQ {snapshot.highestmodseq}] Highest"))
    for line in lines:
        await session.emit(line)
    session.select(mailbox)
    verb = "EXAMINE" if isinstance(command, c.Examine) else "SELECT"
    return Reply(text=f"{verb} completed", code="READ-ONLY" if read_only else "READ-WRITE")


async def close(session: ImapSession, command: c.Close) -> Reply:
    selected = session.selected
    assert selected is not None and session.backend is not None
    # RFC 3501 §6.4.2: expunge silently (no EXPUNGE responses) unless read-only.
    session.select(None)
    if not selected.read_only:
        await session.backend.expunge(selected.mailbox_id)
    return Reply(text="CLOSE completed")


async def unselect(session: ImapSession, command: c.Unselect) -> Reply:
    # RFC 3691 §2: like CLOSE without the expunge.
    session.select(None)
    return Reply(text="UNSELECT completed")
