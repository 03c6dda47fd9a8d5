"""The IMAP session layer: the state machine and command handlers in front of a backend.

Owns ``ImapSession`` (transport-agnostic: the server feeds it bytes, it writes through an
async ``send`` callable), the state table (``state.py``), one module per command group
(``auth``, ``mailbox``, ``listing``, ``status``, ``append``, ``select``, ``fetch``,
``search``, ``store``, ``copymove``, ``expunge``, ``idle``, ``misc``), the per-session
``SelectedMailbox`` (seq↔UID view, pending updates, EXPUNGE deferral per RFC 3501 §7.4.1)
and ``LoginThrottle``.

It knows the backend only through ``bridge.backend.protocol`` (``MailBackend``,
``Authenticator``), its types, events and errors. May import: ``bridge.imap.wire``,
``bridge.backend`` (protocol/types/events/errors), ``bridge.mime``. Must not import
``bridge.graph``, ``bridge.store``, ``bridge.sync`` or ``bridge.imap.server``.

Usage::

    session = ImapSession(authenticator, send=write, peer="127.0.0.1",
                          start_tls=upgrade, allow_plaintext_auth=True, throttle=throttle)
    await send(session.greeting())
    await session.feed(data)          # for every chunk read from the client
    if session.closed: ...            # LOGOUT or a fatal protocol error
"""

from __future__ import annotations

from bridge.imap.session.core import ImapObserver, ImapSession, command_name
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import SelectedMailbox
from bridge.imap.session.state import ALLOWED_STATES, SessionState
from bridge.imap.session.throttle import LoginThrottle

__all__ = [
    "ALLOWED_STATES",
    "ImapObserver",
    "ImapSession",
    "LoginThrottle",
    "Reply",
    "SelectedMailbox",
    "SessionState",
    "command_name",
]
