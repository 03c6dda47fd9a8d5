"""APPEND with APPENDUID (RFC 3501 §6.3.11, RFC 4315 §3), APPENDLIMIT (RFC 7889).

The literal arrives whole (LITERAL+ or synchronising) through the wire parser, which
refuses literals above the session's limit with ``NO [TOOBIG]``.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.backend.errors import MailboxNotFound
from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


async def append(session: ImapSession, command: c.Append) -> Reply:
    assert session.backend is not None
    if len(command.message) > session.max_literal:
        return Reply("NO", "Message too large", "TOOBIG")
    flags = frozenset(f for f in command.flags if f != "\\Recent")
    try:
        result = await session.backend.append(
            command.mailbox, command.message, flags, command.internaldate
        )
    except MailboxNotFound:
        # RFC 3501 §6.3.11: TRYCREATE tells the client CREATE would make it work.
        return Reply("NO", "Mailbox does not exist", "TRYCREATE")
    return Reply(text="APPEND completed", code=f"APPENDUID {result.uidvalidity} {result.uid}")
