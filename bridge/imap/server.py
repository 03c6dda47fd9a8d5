"""``ImapServer``: the asyncio shell around ``ImapSession`` — sockets, TLS, limits, shutdown.

Owns: the listening socket, one handler task per connection (all tracked and cancelled
on ``stop``), implicit TLS and STARTTLS, read timeouts (shorter before login), the
connection limits (total and per client address), write backpressure and the shutdown
``* BYE``. Everything IMAP is in ``bridge.imap.session``; this module only moves bytes.

Two optional hooks, both free when absent: an ``ImapObserver`` (metrics: connections per
listener, and passed on to each session for commands and failed logins) and a ``WireTap``
(the per-account wire trace, ``bridge.trace.WireTracer``), which sees every chunk read
from and written to a connection.

Must not import: bridge.graph, bridge.store, bridge.sync (it may import session, wire,
config and backend).

Lifecycle::

    server = ImapServer(authenticator, host="127.0.0.1", port=0)
    await server.start()      # server.port is the real port (tests bind port 0)
    ...
    await server.stop(grace=5)  # "* BYE Server shutting down" to every client
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bridge.backend.protocol import Authenticator
from bridge.imap.session import ImapObserver, ImapSession, LoginThrottle, SessionState

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024


class ConnectionTap(Protocol):
    """Sees one connection's bytes in order; must be cheap and never raise."""

    def received(self, data: bytes) -> None: ...

    def sent(self, data: bytes) -> None: ...


class WireTap(Protocol):
    """Gives each new connection a ``ConnectionTap``; ``login()`` is the session's login
    once known (None before authentication)."""

    def open(self, peer: str, login: Callable[[], str | None]) -> ConnectionTap | None: ...


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass(slots=True, eq=False)
class _Connection:
    peer: str
    writer: asyncio.StreamWriter
    session: ImapSession | None = None
    busy: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ImapServer:
    """An IMAP4rev1 listener (see the module docstring)."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        starttls_context: ssl.SSLContext | None = None,
        max_connections: int = 500,
        max_per_address: int = 50,
        idle_timeout_auth: float = 1860,
        idle_timeout_unauth: float = 60,
        write_timeout: float = 600,
        max_literal: int = 35 * 1024 * 1024,
        max_commands: int = 1_000_000,
        allow_plaintext_auth: bool | None = None,
        throttle: LoginThrottle | None = None,
        name: str | None = None,
        observer: ImapObserver | None = None,
        wire_tap: WireTap | None = None,
    ) -> None:
        self.authenticator = authenticator
        #: The listener's name in metrics (``imap``, ``imaps``).
        self.name = name or ("imaps" if ssl_context is not None else "imap")
        self.observer = observer
        self.wire_tap = wire_tap
        self.host = host
        self._port = port
        self.ssl_context = ssl_context
        self.starttls_context = starttls_context
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        # RFC 2177 §3: clients re-issue IDLE at least every 29 minutes; 31 minutes of
        # silence after login is therefore a dead client.
        self.idle_timeout_auth = idle_timeout_auth
        self.idle_timeout_unauth = idle_timeout_unauth
        # The read timeouts cannot fire while a command waits for the client to take
        # its output (a big FETCH to a client that stopped reading: a suspended laptop,
        # a stopped process keeping a zero window open). Ten minutes without the client
        # taking a single byte ends the connection.
        self.write_timeout = write_timeout
        self.max_commands = max_commands
        self.max_literal = max_literal
        self.allow_plaintext_auth = allow_plaintext_auth
        self.throttle = throttle or LoginThrottle()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._per_address: dict[str, int] = {}
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self._port, ssl=self.ssl_context, limit=READ_SIZE
        )
        log.info(
            "IMAP listening on %s:%d%s", self.host, self.port, " (TLS)" if self.ssl_context else ""
        )

    @property
    def sockets(self) -> tuple[object, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, say BYE to every client, wait ``grace`` seconds for commands
        in progress to finish, then cancel whatever is left."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if not connection.busy:
                await self._say_bye(connection)
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _say_bye(self, connection: _Connection) -> None:
        if connection.session is not None:
            await connection.session.close(notify=False)  # stops IDLE; we write last
        with contextlib.suppress(Exception):
            connection.writer.write(b"* BYE Server shutting down\r\n")
            connection.writer.close()

    # -- one connection -----------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "unknown"
        if (
            self._stopping
            or len(self._connections) >= self.max_connections
            or self._per_address.get(peer, 0) >= self.max_per_address
        ):
            log.warning("refusing connection from %s: connection limit", peer)
            with contextlib.suppress(Exception):
                writer.write(b"* BYE Too many connections\r\n")
                await asyncio.wait_for(writer.drain(), 5)
                writer.close()
            return
        connection = _Connection(peer=peer, writer=writer, task=asyncio.current_task())
        self._connections.add(connection)
        self._per_address[peer] = self._per_address.get(peer, 0) + 1
        if self.observer is not None:
            self.observer.connection_opened(self.name)
        try:
            await self._serve(connection, reader)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection from %s ended: %s", peer, type(exc).__name__)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection from %s failed", peer)
        finally:
            if connection.session is not None:
                await connection.session.close()
            self._connections.discard(connection)
            remaining = self._per_address.get(peer, 1) - 1
            if remaining:
                self._per_address[peer] = remaining
            else:
                self._per_address.pop(peer, None)
            with contextlib.suppress(Exception):
                writer.close()
            if self.observer is not None:
                self.observer.connection_closed(self.name)

    async def _serve(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        writer = connection.writer
        tap: ConnectionTap | None = None

        async def send(data: bytes) -> None:
            if tap is not None:
                tap.sent(data)
            writer.write(data)
            try:
                # Backpressure: a slow reader slows the command, but never forever.
                # asyncio.timeout, not wait_for: no extra task, so a drain that need not
                # wait does not yield to the loop (STARTTLS relies on that: the reader
                # must not take the ClientHello into the plaintext buffer it clears).
                async with asyncio.timeout(self.write_timeout):
                    await writer.drain()
            except TimeoutError:
                log.info(
                    "closing %s: it took no output for %.0f s", connection.peer, self.write_timeout
                )
                writer.transport.abort()
                raise ConnectionAbortedError("client stopped reading") from None

        async def start_tls() -> None:
            assert self.starttls_context is not None
            # Bytes the client pipelined after STARTTLS are plaintext that an attacker
            # could have injected (RFC 3207 §6, same for IMAP): drop them. The session
            # restarts its parser; the stream's own buffer is emptied here.
            buffered = getattr(reader, "_buffer", None)
            if isinstance(buffered, bytearray):
                buffered.clear()
            await writer.start_tls(self.starttls_context)

        allow_plaintext = self.allow_plaintext_auth
        if allow_plaintext is None:
            allow_plaintext = _is_loopback(connection.peer)
        session = ImapSession(
            self.authenticator,
            send=send,
            peer=connection.peer,
            tls_active=self.ssl_context is not None,
            start_tls=start_tls if self.starttls_context is not None else None,
            allow_plaintext_auth=allow_plaintext,
            throttle=self.throttle,
            max_literal=self.max_literal,
            max_commands=self.max_commands,
            on_close=writer.close,
            observer=self.observer,
        )
        connection.session = session
        if self.wire_tap is not None:
            tap = self.wire_tap.open(connection.peer, lambda: session.login)
        await send(session.greeting())
        while not session.closed:
            timeout = (
                self.idle_timeout_unauth
                if session.state is SessionState.NOT_AUTHENTICATED
                else self.idle_timeout_auth
            )
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
            except TimeoutError:
                if session.idle is None:
                    await send(b"* BYE Autologout; idle for too long\r\n")
                else:
                    await send(b"* BYE IDLE timed out\r\n")
                return
            if not data:
                return
            if tap is not None:
                tap.received(data)
            connection.busy = True
            try:
                await session.feed(data)
            finally:
                connection.busy = False
            if self._stopping and not session.closed:
                await self._say_bye(connection)
                return
        with contextlib.suppress(Exception):
            await writer.drain()
