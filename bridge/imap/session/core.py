"""``ImapSession``: one client connection's IMAP state, independent of any transport.

Theory of operation. The server owns the socket and hands every received chunk to
:meth:`ImapSession.feed`. The session owns the sans-I/O ``ServerConnection`` from
``bridge.imap.wire``: it parses the chunk, and for each complete command checks the state
table (``state.py``), runs the command's handler (one module per command group), flushes
the updates other sessions caused (``SelectedMailbox.flush``, honouring RFC 3501 §7.4.1)
and writes the tagged reply through the async ``send`` callable it was given. Commands
run one at a time, in order; while one runs the server reads nothing more, which is the
backpressure a pipelining client gets.

Two commands span several client lines without blocking ``feed``: AUTHENTICATE (waits
for continuation lines) and IDLE (a background writer pushes updates until ``DONE``).
Both keep their progress in the session and finish when the next event arrives.

Errors: a ``BackendError`` becomes ``NO [code] text``; anything unexpected is logged with
its traceback and answered ``NO [SERVERBUG]``; the connection lives on. A failed write
to the client (``TransportLost``, a ``ConnectionError``) is no command's failure: it
propagates to the server, which ends the connection.

Observation. An optional ``ImapObserver`` (metrics) hears of every tagged completion
(command name, status, first atom of the response code, seconds) and of failed logins.
Without one the session does no extra work.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bridge.backend.errors import BackendError
from bridge.backend.events import MailEvent
from bridge.backend.protocol import Authenticator, MailBackend
from bridge.imap.session.dispatch import HANDLERS
from bridge.imap.session.idle import IdleState, finish_idle, stop_idle
from bridge.imap.session.reply import Reply
from bridge.imap.session.selected import SelectedMailbox
from bridge.imap.session.state import SessionState, defers_expunge, is_allowed
from bridge.imap.session.throttle import LoginThrottle
from bridge.imap.wire import commands as c
from bridge.imap.wire.connection import ServerConnection
from bridge.imap.wire.events import (
    ContinuationLine,
    ContinuationNeeded,
    NeedData,
    ProtocolError,
)
from bridge.imap.wire.responses import tagged, untagged

log = logging.getLogger(__name__)

SERVER_NAME = "graph-mail-bridge"
#: Bytes buffered before a write goes to the transport: FETCH of thousands of messages
#: streams in chunks of this size instead of one giant bytes object.
WRITE_CHUNK = 64 * 1024

Send = Callable[[bytes], Awaitable[None]]
Sleep = Callable[[float], Awaitable[Any]]

#: Tagged NO codes that mean "these credentials did not get in" (RFC 5530 §3): a wrong
#: password, or a refusal because of too many recent failures.
_AUTH_FAILURE_CODES = frozenset({"AUTHENTICATIONFAILED", "UNAVAILABLE"})
_AUTH_COMMANDS = frozenset({"LOGIN", "AUTHENTICATE"})


class TransportLost(ConnectionError):
    """Writing to the client failed (reset, or the server gave up on a client that took
    no output): the session cannot go on, and no handler should answer it."""


class ImapObserver(Protocol):
    """What metrics hear from the IMAP layer; every method must be cheap and not raise.

    ``command``: one tagged completion; ``name`` as the client wrote it, upper-case, with
    ``UID`` kept (``"UID FETCH"``), ``"INVALID"`` for a line the parser rejected; ``code``
    is the first atom of the response code (``"TRYCREATE"``) or None. The connection
    methods are called by ``ImapServer``; ``listener`` names the listening socket.
    """

    def command(self, name: str, status: str, code: str | None, seconds: float) -> None: ...

    def connection_opened(self, listener: str) -> None: ...

    def connection_closed(self, listener: str) -> None: ...

    def auth_failed(self, peer: str) -> None: ...


def command_name(command: object) -> str:
    """The command's name for metrics and logs: ``Fetch(uid=True)`` → ``"UID FETCH"``."""
    name = type(command).__name__.upper()  # class names are the verbs: StartTls → STARTTLS
    if getattr(command, "uid", False) or (name == "EXPUNGE" and getattr(command, "uids", None)):
        return "UID " + name  # RFC 3501 §6.4.8, RFC 4315 §2.1
    return name


class ImapSession:
    """One client's IMAP session (see the module docstring)."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        send: Send,
        peer: str = "127.0.0.1",
        tls_active: bool = False,
        start_tls: Callable[[], Awaitable[None]] | None = None,
        allow_plaintext_auth: bool = True,
        throttle: LoginThrottle | None = None,
        sleep: Sleep = asyncio.sleep,
        max_literal: int = 35 * 1024 * 1024,
        idle_poke_interval: float = 120.0,
        max_commands: int = 1_000_000,
        on_close: Callable[[], None] | None = None,
        observer: ImapObserver | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.observer = observer
        #: (tag, name, start) of the command awaiting its tagged reply; only with an observer.
        self._running: tuple[str, str, float] | None = None
        self.peer = peer
        self.tls_active = tls_active
        self.allow_plaintext_auth = allow_plaintext_auth
        self.throttle = throttle or LoginThrottle()
        self.sleep = sleep
        self.max_literal = max_literal
        self.idle_poke_interval = idle_poke_interval
        #: Commands one connection may run before it is told to reconnect (``* BYE``):
        #: a bound on what one runaway client loop can cost, far above real use.
        self.max_commands = max_commands
        self.commands_run = 0
        self.state = SessionState.NOT_AUTHENTICATED
        self.backend: MailBackend | None = None
        self.selected: SelectedMailbox | None = None
        self.login: str | None = None
        #: RFC 7162 §3.1: CONDSTORE is on once a client used or enabled it.
        self.condstore = False
        self.enabled: set[str] = set()
        self.quota_supported = False
        #: Set by handlers that span several events (AUTHENTICATE, IDLE).
        self.continuation: tuple[str, Callable[[ContinuationLine], Awaitable[None]]] | None = None
        self.idle: IdleState | None = None
        self._on_close = on_close
        self._send = send
        self._start_tls = start_tls
        self._conn = ServerConnection(max_literal=max_literal)
        self._out: list[bytes] = []
        self._out_size = 0
        self._unsubscribe: Callable[[], None] | None = None
        self._wake = asyncio.Event()

    # -- capabilities (RFC 3501 §6.1.1) -------------------------------------------------
    @property
    def plaintext_auth_allowed(self) -> bool:
        return self.tls_active or self.allow_plaintext_auth

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state is SessionState.NOT_AUTHENTICATED:
            if self._start_tls is not None and not self.tls_active:
                caps.append("STARTTLS")  # RFC 3501 §6.2.1
            if self.plaintext_auth_allowed:
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                caps.append("LOGINDISABLED")  # RFC 3501 §6.2.3
            return caps
        caps += [
            "NAMESPACE",
            "UIDPLUS",
            "MOVE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "ESEARCH",
            "CONDSTORE",
            f"APPENDLIMIT={self.max_literal}",
        ]
        if self.quota_supported:
            caps += ["QUOTA", "QUOTA=RES-STORAGE"]
        return caps

    def greeting(self) -> bytes:
        return untagged(f"OK [CAPABILITY {' '.join(self.capabilities())}] {SERVER_NAME} ready")

    # -- output -----------------------------------------------------------------------
    async def emit(self, data: bytes) -> None:
        """Queue response bytes; written in chunks of ``WRITE_CHUNK``."""
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= WRITE_CHUNK:
            await self.drain()

    async def drain(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            self._out_size = 0
            try:
                await self._send(data)
            except ConnectionError as exc:
                raise TransportLost(str(exc)) from exc

    async def finish(self, tag: str, reply: Reply) -> None:
        await self.emit(tagged(tag, reply.status, reply.text, reply.code))
        await self.drain()
        if self.observer is not None:
            self._observe(tag, reply)

    def _observe(self, tag: str, reply: Reply) -> None:
        running = self._running
        if running is None or running[0] != tag:
            return
        self._running = None
        _, name, started = running
        code = reply.code.split(" ", 1)[0].upper() if reply.code else None
        observer = self.observer
        assert observer is not None
        try:
            observer.command(name, reply.status, code, time.monotonic() - started)
            if name in _AUTH_COMMANDS and reply.status == "NO" and code in _AUTH_FAILURE_CODES:
                observer.auth_failed(self.peer)
        except Exception:
            # Metrics must never break a session.
            log.exception("IMAP observer failed")

    @property
    def closed(self) -> bool:
        return self.state is SessionState.LOGOUT

    # -- input ------------------------------------------------------------------------
    async def feed(self, data: bytes) -> None:
        """Process bytes from the client; returns when every complete command ran."""
        self._conn.receive_data(data)
        while not self.closed:
            conn = self._conn
            event = conn.next_event()
            if isinstance(event, NeedData):
                break
            await self.handle_event(event)
            if self._conn is not conn:
                # STARTTLS replaced the parser: whatever followed the command in the
                # plaintext buffer is discarded (RFC 3207 §6-style injection defence).
                break
        await self.drain()

    async def handle_event(self, event: object) -> None:
        if isinstance(event, ContinuationNeeded):
            if event.size > self.max_literal:
                await self.emit(
                    self._conn.reject_literal(
                        tagged(event.tag, "NO", "Literal too large", "TOOBIG")
                    )
                )
            else:
                await self.emit(self._conn.accept_literal())
            return
        if isinstance(event, ProtocolError):
            # A bad line instead of DONE or a SASL response ends that command: the
            # suggested reply carries its tag.
            self.continuation = None
            if self.idle is not None:
                await stop_idle(self)
            await self.emit(event.response)
            if self.observer is not None and event.tag is not None:
                if self._running is None or self._running[0] != event.tag:
                    # Not a bad SASL line or IDLE end of a command in progress: a line
                    # that never became a command.
                    self._running = (event.tag, "INVALID", time.monotonic())
                self._observe(event.tag, Reply(_reply_status(event.response)))
            if event.fatal:
                await self.close()
            return
        if isinstance(event, ContinuationLine):
            pending = self.continuation
            self.continuation = None
            if pending is not None:
                tag, handler = pending
                reply = await self._guard(tag, _completed(handler(event)))
                if reply is not None:
                    await self.finish(tag, reply)
            return
        if isinstance(event, c.Done):
            if self.idle is not None:
                await finish_idle(self)
            return
        await self.run_command(event)

    async def run_command(self, command: Any) -> None:
        tag: str = command.tag
        self.commands_run += 1
        if self.commands_run > self.max_commands:
            # RFC 3501 §7.1.5: BYE, then close; the client reconnects and carries on.
            await self.emit(untagged("BYE Too many commands on this connection; reconnect"))
            await self.close()
            return
        if self.observer is not None:
            self._running = (tag, command_name(command), time.monotonic())
        if not is_allowed(command, self.state):
            await self.finish(
                tag,
                Reply(
                    "BAD",
                    f"{type(command).__name__.upper()} not allowed in the {self.state.value} state",
                ),
            )
            return
        handler = HANDLERS[type(command)]
        reply = await self._guard(tag, handler(self, command))
        if reply is None or self.closed:
            await self.drain()
            return
        if self.state is not SessionState.LOGOUT:
            try:
                await self.flush_updates(allow_expunge=not defers_expunge(command))
            except Exception:
                # Updates stay queued for the next chance; the command itself is done.
                log.exception("update flush failed for %s", self.login or self.peer)
        await self.finish(tag, reply)

    async def _guard(self, tag: str, work: Awaitable[Reply | None]) -> Reply | None:
        """Run a handler; map failures to a reply."""
        try:
            return await work
        except BackendError as exc:
            return Reply("NO", str(exc) or "Operation failed", exc.response_code)
        except TransportLost:
            # The client went away while the command wrote its answer: not the command's
            # fault, and nobody to tell. The server ends the connection.
            raise
        except Exception:
            log.exception("%s failed for %s", tag, self.login or self.peer)
            return Reply("NO", "Internal server error", "SERVERBUG")

    # -- updates ----------------------------------------------------------------------
    def on_event(self, event: MailEvent) -> None:
        """EventBus subscriber. Hierarchy changes need no untagged response (LIST
        answers from the backend each time), so only the selected mailbox listens."""
        if self.selected is not None:
            self.selected.on_event(event)

    def wake(self) -> None:
        self._wake.set()

    async def wait_for_update(self, timeout: float) -> bool:
        """Wait until an update is queued (True) or ``timeout`` seconds pass (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
            woken = True
        except TimeoutError:
            woken = False
        self._wake.clear()
        return woken

    async def flush_updates(self, *, allow_expunge: bool) -> None:
        selected = self.selected
        if selected is None or self.backend is None:
            return
        if selected.reset:
            # The mailbox was deleted (or lost its UIDVALIDITY) under us; RFC 3501 has
            # no way to tell a client that in selected state but to end the session.
            await self.emit(untagged("BYE Selected mailbox was deleted or reset"))
            await self.close()
            return
        for line in await selected.flush(
            self.backend, allow_expunge=allow_expunge, condstore=self.condstore
        ):
            await self.emit(line)

    async def enable_condstore(self) -> None:
        """A CONDSTORE enabling command ran (RFC 7162 §3.1 lists them).

        "A first CONDSTORE enabling command executed in the session with a mailbox
        selected MUST cause the server to return HIGHESTMODSEQ ... for the mailbox":
        the value the client was last told about is a safe lower bound (updates still
        queued carry their own MODSEQ when they are flushed)."""
        if self.condstore:
            return
        self.condstore = True
        if self.selected is not None:
            await self.emit(untagged(f"OK [HIGHESTMODSEQ {self.selected.highestmodseq}] Highest"))

    def authenticated(self, backend: MailBackend, login: str) -> None:
        self.backend = backend
        self.login = login
        self.state = SessionState.AUTHENTICATED
        self._unsubscribe = backend.events.subscribe(self.on_event)

    def select(self, mailbox: SelectedMailbox | None) -> None:
        self.selected = mailbox
        self.state = SessionState.SELECTED if mailbox is not None else SessionState.AUTHENTICATED

    async def upgrade_tls(self) -> None:
        """STARTTLS: the server wraps the transport; the parser restarts empty."""
        assert self._start_tls is not None
        await self.drain()
        await self._start_tls()
        self.tls_active = True
        self._conn = ServerConnection(max_literal=self.max_literal)

    @property
    def conn(self) -> ServerConnection:
        return self._conn

    @property
    def starttls_available(self) -> bool:
        return self._start_tls is not None and not self.tls_active

    async def close(self, *, notify: bool = True) -> None:
        """End the session (LOGOUT, fatal protocol error, or the server closing).

        ``notify=False`` when the transport itself is closing the session and still
        wants to write its own last words (the server's shutdown BYE)."""
        if self.idle is not None:
            await stop_idle(self)
        self.state = SessionState.LOGOUT
        self.selected = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if notify:
            self.notify_closed()
        else:
            self._on_close = None

    def notify_closed(self) -> None:
        """Tell the transport the session is over (it may be blocked reading)."""
        if self.closed and self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()


def _reply_status(response: bytes) -> str:
    """``b"a1 BAD ..."`` → ``"BAD"`` (the parser's suggested reply)."""
    parts = response.split(b" ", 2)
    return parts[1].decode("ascii", "replace") if len(parts) > 1 else "BAD"


async def _completed(work: Awaitable[None]) -> Reply | None:
    """Continuation handlers send their own tagged reply; only failures come back."""
    await work
    return None
