"""The submission listeners: sockets, TLS, lifecycle. The logic lives in ``handler``.

Two listeners, both created with ``loop.create_server`` in the bridge's own event loop
(never aiosmtpd's ``Controller`` thread, so Graph calls, the account store and the
servers share one loop):

* the submission port (RFC 6409, 587): STARTTLS when an ``ssl_context`` is given
  (RFC 3207). Unless ``allow_plaintext_auth``, the client must STARTTLS before anything
  but EHLO/NOOP/QUIT (``require_starttls``) and AUTH is offered only under TLS
  (``auth_require_tls``). ``allow_plaintext_auth`` exists for legacy scanners on
  loopback that cannot do TLS;
* the implicit-TLS port (RFC 8314, 465): the socket is TLS from the first byte, so
  aiosmtpd's "seen STARTTLS" check does not apply and ``auth_require_tls`` is off there —
  every byte on that port is already encrypted.

AUTH is always required (RFC 6409 §4.3: ``530 5.7.0`` before it). ``SIZE`` (RFC 1870),
``8BITMIME`` (RFC 6152, because ``decode_data`` is off: the bytes are never decoded),
``SMTPUTF8`` (RFC 6531) and ``PIPELINING`` (RFC 2920) are advertised.

Must not import ``bridge.graph``, ``bridge.store`` or ``bridge.config``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import warnings
import weakref
from collections.abc import Awaitable, Callable

from bridge.smtp.accounts import SubmissionDirectory
from bridge.smtp.authlimit import AuthFailureLimiter, AuthLimits
from bridge.smtp.handler import OnSent, SubmissionHandler, SubmissionPolicy, SubmissionProtocol
from bridge.smtp.uncertain import UncertainSends

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 35 * 1024 * 1024  # Exchange Online's default send limit
# RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
COMMAND_TIMEOUT_SECONDS = 300.0


class _AiosmtpdLogFilter(logging.Filter):
    """Filters aiosmtpd's ``mail.log``:

    * at DEBUG it logs every DATA line (``DATA readline: …``) — message content, which
      our logs never contain, whatever level an operator picks;
    * it warns on every successful AUTH (it sets the deprecated ``Session.login_data``
      itself) and, per connection, that AUTH is required without TLS — wrong on the
      implicit-TLS port, and said once at start() for plaintext mode. Neither line says
      anything an operator can act on.

    The unformatted ``record.msg`` is matched, so nothing is formatted to be dropped.
    """

    _DROP = ("DATA readline", "login_data is deprecated", "auth_require_tls == False")

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        return not any(marker in template for marker in self._DROP)


_AIOSMTPD_LOG = logging.getLogger("mail.log")
if not any(isinstance(f, _AiosmtpdLogFilter) for f in _AIOSMTPD_LOG.filters):
    _AIOSMTPD_LOG.addFilter(_AiosmtpdLogFilter())


class SubmissionServer:
    """SMTP submission in front of a ``SubmissionDirectory``; see the module docstring."""

    def __init__(
        self,
        directory: SubmissionDirectory,
        *,
        host: str = "127.0.0.1",
        port: int | None = 587,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        allow_plaintext_auth: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        hostname: str | None = None,
        on_sent: OnSent | None = None,
        uncertain: UncertainSends | None = None,
        auth_limits: AuthLimits = AuthLimits(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        policy: SubmissionPolicy = SubmissionPolicy(),
        command_timeout: float = COMMAND_TIMEOUT_SECONDS,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        if tls_port is not None and ssl_context is None:
            raise ValueError("the implicit-TLS submission port needs an ssl_context")
        if port is not None and ssl_context is None and not allow_plaintext_auth:
            raise ValueError(
                "the submission port without TLS can only authenticate when "
                "allow_plaintext_auth is set; give an ssl_context or allow it"
            )
        self._host = host
        self._port = port
        self._tls_port = tls_port
        self._ssl_context = ssl_context
        self._allow_plaintext_auth = allow_plaintext_auth
        self._max_message_size = max_message_size
        self.hostname = hostname or socket.getfqdn()
        self._command_timeout = command_timeout
        limiter = (
            AuthFailureLimiter(auth_limits, clock) if clock else AuthFailureLimiter(auth_limits)
        )
        self.handler = SubmissionHandler(
            directory,
            hostname=self.hostname,
            limiter=limiter,
            failure_delay=auth_limits.failure_delay_seconds,
            sleep=sleep,
            on_sent=on_sent,
            uncertain=uncertain,
            policy=policy,
            on_outcome=on_outcome,
        )
        self._servers: list[asyncio.Server] = []
        self._connections: weakref.WeakSet[SubmissionProtocol] = weakref.WeakSet()
        self.port: int | None = None  # the bound ports, known after start()
        self.tls_port: int | None = None

    @property
    def uncertain(self) -> UncertainSends:
        return self.handler.uncertain

    def _protocol(self, *, implicit_tls: bool) -> SubmissionProtocol:
        loop = asyncio.get_running_loop()
        if implicit_tls:
            tls_context = None  # RFC 8314 §3.3: no STARTTLS on an implicit-TLS port
            require_starttls = False
            auth_require_tls = False  # the transport itself is TLS (module docstring)
        else:
            tls_context = self._ssl_context
            require_starttls = tls_context is not None and not self._allow_plaintext_auth
            auth_require_tls = not self._allow_plaintext_auth
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            protocol = self._make_protocol(loop, tls_context, require_starttls, auth_require_tls)
        self._connections.add(protocol)
        return protocol

    def _make_protocol(
        self,
        loop: asyncio.AbstractEventLoop,
        tls_context: ssl.SSLContext | None,
        require_starttls: bool,
        auth_require_tls: bool,
    ) -> SubmissionProtocol:
        return SubmissionProtocol(
            self.handler,
            hostname=self.hostname,
            data_size_limit=self._max_message_size,  # RFC 1870 SIZE
            enable_SMTPUTF8=True,  # RFC 6531
            decode_data=False,  # bytes stay bytes; advertises 8BITMIME (RFC 6152)
            tls_context=tls_context,
            require_starttls=require_starttls,  # RFC 3207 §4
            auth_required=True,  # RFC 6409 §4.3
            auth_require_tls=auth_require_tls,
            timeout=self._command_timeout,
            loop=loop,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._allow_plaintext_auth:
            log.warning(
                "smtp listener on %s accepts passwords without TLS (allow_plaintext_auth)",
                self._host,
            )
        if self._port is not None:
            server = await loop.create_server(
                lambda: self._protocol(implicit_tls=False), self._host, self._port
            )
            self._servers.append(server)
            self.port = server.sockets[0].getsockname()[1]
            log.info("smtp submission listening on %s:%d", self._host, self.port)
        if self._tls_port is not None:
            server = await loop.create_server(
                lambda: self._protocol(implicit_tls=True),
                self._host,
                self._tls_port,
                ssl=self._ssl_context,
            )
            self._servers.append(server)
            self.tls_port = server.sockets[0].getsockname()[1]
            log.info("smtp submission (implicit TLS) listening on %s:%d", self._host, self.tls_port)

    async def stop(self) -> None:
        """Stop listening, let sends in flight finish, then close the connections."""
        for server in self._servers:
            server.close()
        await self.handler.drain()
        for protocol in list(self._connections):
            transport = protocol.transport
            if transport is not None:
                transport.close()
        # A send that started between the drain and the close still runs (it is
        # shielded from its connection); wait for it so its outcome is recorded.
        await self.handler.drain()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
