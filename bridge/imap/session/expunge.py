"""EXPUNGE and UID EXPUNGE (RFC 3501 §6.4.3, RFC 4315 §2.1).

The backend removes the messages and announces them; the session's flush after this
handler (EXPUNGE is a command during which EXPUNGE responses are allowed) sends one
``* n EXPUNGE`` per message, with sequence numbers that account for each earlier one.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


async def expunge(session: ImapSession, command: c.Expunge) -> Reply:
    selected = session.selected
    assert selected is not None and session.backend is not None
    if selected.read_only:
        return Reply("NO", "Mailbox is read-only", "READ-ONLY")
    uids = None
    if command.uids is not None:
        uids = [e.uid for e in selected.resolve_uids(command.uids)]
        if not uids:
            return Reply(text="EXPUNGE completed")
    await session.backend.expunge(selected.mailbox_id, uids)
    return Reply(text="EXPUNGE completed")
