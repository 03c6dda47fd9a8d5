"""CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE (RFC 3501 §6.3.3-§6.3.7).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


async def create(session: ImapSession, command: c.Create) -> Reply:
    assert session.backend is not None
    await session.backend.create_mailbox(command.mailbox)
    return Reply(text="CREATE completed")


async def delete(session: ImapSession, command: c.Delete) -> Reply:
    assert session.backend is not None
    selected = session.selected
    await session.backend.delete_mailbox(command.mailbox)
    if selected is not None and selected.reset:
        # This session deleted its own selected mailbox: leave selected state quietly
        # rather than ending the session as a foreign deletion would.
        session.select(None)
    return Reply(text="DELETE completed")


async def rename(session: ImapSession, command: c.Rename) -> Reply:
    assert session.backend is not None
    await session.backend.rename_mailbox(command.old, command.new)
    if session.selected is not None and session.selected.name == command.old:
        session.selected.name = command.new
    return Reply(text="RENAME completed")


async def subscribe(session: ImapSession, command: c.Subscribe) -> Reply:
    assert session.backend is not None
    await session.backend.set_subscribed(command.mailbox, True)
    return Reply(text="SUBSCRIBE completed")


async def unsubscribe(session: ImapSession, command: c.Unsubscribe) -> Reply:
    assert session.backend is not None
    await session.backend.set_subscribed(command.mailbox, False)
    return Reply(text="UNSUBSCRIBE completed")
