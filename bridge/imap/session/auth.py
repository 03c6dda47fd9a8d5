"""STARTTLS, LOGIN and AUTHENTICATE (PLAIN, LOGIN) with SASL-IR.

RFC 3501 §6.2.1-§6.2.3; RFC 4959 (SASL-IR); RFC 4616 (PLAIN); RFC 5530 response codes
(AUTHENTICATIONFAILED, PRIVACYREQUIRED, UNAVAILABLE).

A failed login is answered only after a delay that grows with the peer's recent failures,
and a peer or login with too many recent failures is refused without asking the
authenticator (``LoginThrottle``). A login reaches exactly the backend its authenticator
returns.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c
from bridge.imap.wire.events import ContinuationLine
from bridge.imap.wire.responses import continuation

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession

log = logging.getLogger(__name__)

FAILED = Reply("NO", "Authentication failed", "AUTHENTICATIONFAILED")
PRIVACY = Reply("NO", "Authentication requires TLS", "PRIVACYREQUIRED")


async def starttls(session: ImapSession, command: c.StartTls) -> Reply | None:
    if not session.starttls_available:
        return Reply("BAD", "STARTTLS not available")
    # RFC 3501 §6.2.1: the negotiation begins right after the tagged OK.
    await session.finish(command.tag, Reply(text="Begin TLS negotiation now"))
    await session.upgrade_tls()
    return None


async def login(session: ImapSession, command: c.Login) -> Reply:
    if not session.plaintext_auth_allowed:
        return PRIVACY  # RFC 3501 §6.2.3: LOGINDISABLED
    return await check_credentials(session, command.userid, command.password)


async def check_credentials(session: ImapSession, login: str, password: str) -> Reply:
    throttle = session.throttle
    if throttle.is_blocked(session.peer, login):
        log.warning("login refused for %r from %s: too many failures", login, session.peer)
        await session.sleep(throttle.record_failure(session.peer, login))
        return Reply("NO", "Too many failed logins, try again later", "UNAVAILABLE")
    backend = await session.authenticator.authenticate(login, password, session.peer)
    if backend is None:
        delay = throttle.record_failure(session.peer, login)
        log.info("failed login for %r from %s", login, session.peer)
        await session.sleep(delay)
        return FAILED
    throttle.record_success(session.peer, login)
    quota = await backend.quota()
    session.quota_supported = quota is not None
    session.authenticated(backend, login)
    log.info("login %r from %s", login, session.peer)
    # RFC 3501 §7.2.1: the capabilities change at login; say so in the tagged OK.
    return Reply(text="Logged in", code="CAPABILITY " + " ".join(session.capabilities()))


def _decode(line: ContinuationLine) -> bytes | None:
    try:
        return line.decode_base64()
    except ValueError:
        return None


async def authenticate(session: ImapSession, command: c.Authenticate) -> Reply | None:
    tag = command.tag
    if command.mechanism not in ("PLAIN", "LOGIN"):
        return Reply("NO", "Unsupported authentication mechanism", "CANNOT")
    if not session.plaintext_auth_allowed:
        return PRIVACY

    async def done(reply: Reply) -> None:
        await session.finish(tag, reply)

    async def cancelled_or_bad(line: ContinuationLine) -> bytes | None:
        if line.cancelled:
            # RFC 3501 §6.2.2: a "*" line cancels; the server answers BAD.
            await done(Reply("BAD", "Authentication cancelled"))
            return None
        data = _decode(line)
        if data is None:
            await done(Reply("BAD", "Invalid base64"))
        return data

    async def ask(prompt: bytes, then: Callable[[ContinuationLine], Awaitable[None]]) -> None:
        session.conn.expect_continuation_line()
        session.continuation = (tag, then)
        await session.emit(continuation(base64.b64encode(prompt).decode()))
        await session.drain()

    if command.mechanism == "PLAIN":

        async def plain(payload: bytes) -> None:
            # RFC 4616 §2: [authzid] NUL authcid NUL passwd
            parts = payload.split(b"\0")
            if len(parts) != 3:
                await done(Reply("BAD", "Malformed PLAIN response"))
                return
            authzid, authcid, passwd = (p.decode("utf-8", "replace") for p in parts)
            if authzid and authzid != authcid:
                # A login reaches only its own mailbox: no proxy authorisation.
                await done(FAILED)
                return
            await done(await check_credentials(session, authcid, passwd))

        async def plain_line(line: ContinuationLine) -> None:
            data = await cancelled_or_bad(line)
            if data is not None:
                await plain(data)

        if command.initial_response is not None:  # RFC 4959 SASL-IR
            await plain(command.initial_response)
        else:
            await ask(b"", plain_line)
        return None

    # The LOGIN mechanism (draft-murchison-sasl-login): username, then password.
    username: list[str] = []

    async def password_line(line: ContinuationLine) -> None:
        data = await cancelled_or_bad(line)
        if data is not None:
            await done(
                await check_credentials(session, username[0], data.decode("utf-8", "replace"))
            )

    async def username_line(line: ContinuationLine) -> None:
        data = await cancelled_or_bad(line)
        if data is not None:
            username.append(data.decode("utf-8", "replace"))
            await ask(b"Password:", password_line)

    if command.initial_response:
        username.append(command.initial_response.decode("utf-8", "replace"))
        await ask(b"Password:", password_line)
    else:
        await ask(b"Username:", username_line)
    return None
