"""IDLE (RFC 2177): push updates to the client as they arrive until ``DONE``.

Theory of operation. The IDLE handler answers ``+ idling``, puts the wire parser in its
"next line must be DONE" state and starts a writer task owned by the session. The writer
flushes pending updates whenever the selected mailbox's event handler wakes it, and pokes
the backend every ``idle_poke_interval`` seconds so that the sync layer refreshes a
mailbox someone is watching; an interval without updates ends with ``* OK Still here``
so that the connection is never silent for long (NAT timeouts, dead peers). ``DONE``
cancels the writer, flushes what is left and sends the tagged OK. While idling, EXPUNGE
responses are allowed (no command is in progress that forbids them: RFC 3501 §7.4.1 and
RFC 2177 §3).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import continuation, untagged

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IdleState:
    tag: str
    writer: asyncio.Task[None]


async def idle(session: ImapSession, command: c.Idle) -> Reply | None:
    await session.emit(continuation("idling"))
    session.conn.enter_idle()
    # Whatever queued before IDLE goes out at once (RFC 2177 §3: the server may send
    # untagged responses at any time while idling).
    await session.flush_updates(allow_expunge=True)
    await session.drain()
    if session.closed:
        return None
    session.idle = IdleState(command.tag, asyncio.create_task(_writer(session)))
    return None


async def _writer(session: ImapSession) -> None:
    try:
        while not session.closed:
            selected = session.selected
            if selected is not None and session.backend is not None:
                await session.backend.poke(selected.mailbox_id)
            woken = await session.wait_for_update(session.idle_poke_interval)
            await session.flush_updates(allow_expunge=True)
            if not woken and not session.closed:
                # A quiet interval: say something, as Dovecot does every two minutes.
                # NAT boxes and firewalls drop TCP flows silent for a few minutes, which
                # would cut an IDLE client off without either side noticing; the write
                # also lets the server find a peer that vanished. Clients ignore an
                # untagged OK (RFC 3501 §7.1.1).
                await session.emit(untagged("OK Still here"))
            await session.drain()
        session.notify_closed()
    except asyncio.CancelledError:
        raise
    except ConnectionError:
        # The peer is gone (a keepalive or an update found out): nobody to tell.
        log.info("IDLE client %s went away", session.login)
        session.idle = None
        await session.close()
    except Exception:
        # A failing backend must not leave the client idling silently forever.
        log.exception("IDLE writer failed for %s", session.login)
        session.idle = None  # this task is ending by itself: nothing to cancel
        with contextlib.suppress(Exception):
            await session.emit(untagged("BYE Internal server error"))
            await session.drain()
        await session.close()


async def stop_idle(session: ImapSession) -> None:
    state = session.idle
    session.idle = None
    if state is None:
        return
    if state.writer is asyncio.current_task():
        return  # the writer itself is closing the session (a deleted mailbox)
    state.writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await state.writer


async def finish_idle(session: ImapSession) -> None:
    """``DONE`` arrived: stop pushing, flush the rest, complete the IDLE command."""
    state = session.idle
    assert state is not None
    await stop_idle(session)
    await session.flush_updates(allow_expunge=True)
    await session.finish(state.tag, Reply(text="IDLE terminated"))
