"""STATUS (RFC 3501 §6.3.10), with HIGHESTMODSEQ (RFC 7162 §3.1.2.1) and SIZE (RFC 8438).

``status_items`` is shared with LIST-STATUS (RFC 5819).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bridge.backend.types import MailboxStatus
from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged
from bridge.imap.wire.serialize import Atom
from bridge.imap.wire.utf7 import encode_mailbox

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


def status_items(status: MailboxStatus, items: tuple[str, ...]) -> list[object]:
    values = {
        "MESSAGES": status.messages,
        "RECENT": status.recent,
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.highestmodseq,
        "SIZE": status.size,
    }
    out: list[object] = []
    for item in items:
        value = values.get(item)
        if value is not None:
            out += [Atom(item), value]
    return out


def status_line(name: str, status: MailboxStatus, items: tuple[str, ...]) -> bytes:
    return untagged([Atom("STATUS"), encode_mailbox(name), status_items(status, items)])


async def mailbox_status(session: ImapSession, name: str) -> MailboxStatus:
    """The backend's STATUS, seen from this session.

    RFC 3501 §6.3.10: RECENT is "the number of messages with the \\Recent flag set". The
    backend counts the messages no session has claimed yet; on the mailbox this session
    has selected, the messages it claimed carry \\Recent for it and count too (a client
    that asks STATUS of its selected mailbox must not see them vanish).
    """
    assert session.backend is not None
    result = await session.backend.status(name)
    selected = session.selected
    # Not for an EXAMINE: it claims nothing (RFC 3501 §6.3.2), so its \Recent messages
    # are the backend's unclaimed ones, already counted.
    if selected is not None and selected.name == name and not selected.read_only:
        owned = selected.live_recent_count
        if owned:
            result = dataclasses.replace(result, recent=result.recent + owned)
    return result


async def status(session: ImapSession, command: c.Status) -> Reply:
    assert session.backend is not None
    if "HIGHESTMODSEQ" in command.items:
        await session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    result = await mailbox_status(session, command.mailbox)
    await session.emit(status_line(command.mailbox, result, command.items))
    return Reply(text="STATUS completed")
