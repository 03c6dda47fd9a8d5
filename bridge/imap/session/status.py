"""STATUS (RFC 3501 §6.3.10), with HIGHESTMODSEQ (RFC 7162 §3.1.2.1) and SIZE (RFC 8438).

``status_items`` is shared with LIST-STATUS (RFC 5819).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

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


async def status(session: ImapSession, command: c.Status) -> Reply:
    assert session.backend is not None
    if "HIGHESTMODSEQ" in command.items:
        session.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
    result = await session.backend.status(command.mailbox)
    await session.emit(status_line(command.mailbox, result, command.items))
    return Reply(text="STATUS completed")
