"""The per-account IMAP wire trace: what one login's client and the bridge said, redacted.

Owns ``WireTracer`` (which logins are traced; switched at run time by the admin API and
seeded from ``logging.trace_accounts``) and ``ConnectionTrace`` (one connection's two
byte streams, framed into IMAP lines). Records go to the ``bridge.trace`` logger at level
``TRACE`` as ``C: a1 SELECT INBOX`` / ``S: * 3 EXISTS``, with ``account``, ``peer`` and
``conn`` as structured fields.

Theory of operation. ``ImapServer`` hands every chunk it reads to ``received`` and every
chunk it writes to ``sent``. Each direction has a ``_Framer`` that splits the stream into
lines and literals (RFC 3501 §4.3: ``{n}`` or ``{n+}`` at the end of a line announces n
octets). While any login is traced, framing runs for every connection opened meanwhile,
traced or not, because a trace switched on in the middle of a session must know where a
literal ends: otherwise message bytes would be read as lines and logged. Connections
opened while nothing is traced are not framed at all (and so are never traced).
Rendering and logging happen only for a traced login; before
login a connection's lines are kept (bounded) while any login is traced, and written out
once the session turns out to belong to a traced login, so the LOGIN exchange is seen.

What is never written:

* credentials: the password of ``LOGIN`` (quoted, atom or literal: every argument after
  the user name), the initial response of ``AUTHENTICATE`` and every client line of a
  SASL exchange until its tagged reply (RFC 3501 §6.2.2), all shown as ``***``;
  ``bridge.logsetup.redact`` is applied on top of that to every line;
* message bodies: ``APPEND`` literals and every literal in a ``FETCH`` response are shown
  only as their size, and quoted strings that follow ``BODY[...]``, ``BINARY[...]``,
  ``RFC822``, ``RFC822.TEXT`` or ``RFC822.HEADER`` in a FETCH response (the bridge quotes
  short single-line values) are replaced by their size;
* any other literal longer than ``literal_limit`` (200) bytes; and lines are cut at
  ``line_limit`` characters.

Must import nothing from the IMAP packages (the server sees this class only through its
``WireTap`` protocol); may import ``bridge.logsetup``.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from bridge.logsetup import TRACE, redact

__all__ = ["ConnectionTrace", "WireTracer"]

LOGGER_NAME: Final = "bridge.trace"
MASK: Final = "***"

_LITERAL_MARK = re.compile(rb"\{(\d{1,20})(\+?)\}$")
# RFC 3501 §7.4.2: fetch items whose value is message content.
_FETCH_CONTENT = re.compile(
    r"(?i)((?:BODY|BINARY)(?:\.PEEK)?\[[^\]]*\](?:<\d+>)?|RFC822(?:\.TEXT|\.HEADER)?) "
    r'"((?:[^"\\]|\\.)*)"'
)
_FETCH_LINE = re.compile(r"^\* \d+ FETCH ", re.IGNORECASE)
_FIRST_ARG = re.compile(r'^("(?:[^"\\]|\\.)*"|[^\s{]\S*)(?=\s)')
# Longest part of a line kept while waiting for its end; the literal marker is looked for
# in the last bytes, which are always kept.
_TAIL: Final = 32


@dataclass(frozen=True, slots=True)
class _Literal:
    size: int
    head: bytes | None  # the content when at most literal_limit bytes, else None


class _Framer:
    """Splits one direction's byte stream into line segments and literals.

    ``feed`` returns pieces in stream order: ``(segment, ended)`` for each physical line
    (its bytes without CRLF; ``ended`` is False when the line announces a literal, so the
    logical line goes on after it) and a ``_Literal`` when a literal is complete.
    """

    __slots__ = ("_dropped", "_head", "_left", "_limit", "_line", "_line_cap", "_size", "_sync")

    def __init__(self, literal_limit: int, line_cap: int) -> None:
        self._limit = literal_limit
        self._line_cap = line_cap
        self._line = bytearray()
        self._dropped = 0
        self._left = 0  # octets of the current literal still to come
        self._size = 0
        self._sync = False
        self._head: bytearray | None = None

    @property
    def awaiting_synchronizing_literal(self) -> bool:
        """True between ``{n}`` (not ``{n+}``) and the literal's first octet: the peer
        waits for a ``+`` and sends nothing if it gets a tagged reply instead."""
        return self._sync and self._left == self._size > 0

    def cancel_literal(self) -> None:
        """The peer refused a synchronizing literal (RFC 3501 §7.5): none will come."""
        self._left = 0
        self._head = None

    def feed(self, data: bytes) -> list[tuple[bytes, bool] | _Literal]:
        pieces: list[tuple[bytes, bool] | _Literal] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._left:
                take = min(self._left, end - pos)
                if self._head is not None:
                    self._head += data[pos : pos + take]
                self._left -= take
                pos += take
                if not self._left:
                    head = bytes(self._head) if self._head is not None else None
                    pieces.append(_Literal(self._size, head))
                    self._head = None
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._keep(data[pos:])
                break
            self._keep(data[pos:newline])
            pos = newline + 1
            line = bytes(self._line)
            self._line.clear()
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._dropped:
                line = line[: self._line_cap] + b"..." + line[self._line_cap :]
                self._dropped = 0
            mark = _LITERAL_MARK.search(line)
            size = int(mark.group(1)) if mark else 0
            if mark and size:
                pieces.append((line, False))
                self._size = self._left = size
                self._sync = not mark.group(2)  # RFC 7888: "{n+}" is sent without waiting
                self._head = bytearray() if size <= self._limit else None
            else:
                if mark:  # "{0}": an empty literal, complete at once
                    pieces.append((line, False))
                    pieces.append(_Literal(0, b""))
                    continue
                pieces.append((line, True))
        return pieces

    def _keep(self, chunk: bytes) -> None:
        self._line += chunk
        excess = len(self._line) - self._line_cap - _TAIL
        if excess > 0:
            # Keep the head for the log and the tail for the literal marker.
            del self._line[self._line_cap : self._line_cap + excess]
            self._dropped += excess


class _Logical:
    """The parts of one logical line (segments and literals) until it ends."""

    __slots__ = ("command", "parts", "tag")

    def __init__(self) -> None:
        self.parts: list[bytes | _Literal] = []
        self.tag: str | None = None
        self.command: str | None = None

    def add(self, piece: bytes | _Literal) -> None:
        if not self.parts and isinstance(piece, bytes):
            words = piece[:80].decode("utf-8", "replace").split(" ", 3)
            self.tag = words[0]
            if len(words) > 1:
                command = words[1].upper()
                if command == "UID" and len(words) > 2:
                    command += " " + words[2].upper()
                self.command = command
        self.parts.append(piece)

    def clear(self) -> None:
        self.parts = []
        self.tag = self.command = None


_connection_ids = itertools.count(1)


class WireTracer:
    """Which logins are traced, and the factory of per-connection traces.

    ``enable``/``disable`` take effect at once, also for sessions already open (their
    framing never stopped). Logins compare case-insensitively.
    """

    def __init__(
        self,
        logins: Iterable[str] = (),
        *,
        logger: logging.Logger | None = None,
        literal_limit: int = 200,
        line_limit: int = 2000,
        preauth_lines: int = 50,
    ) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        # The root logger usually stands at INFO; the trace must pass whatever it says,
        # and stays silent anyway unless a login is traced.
        self.logger.setLevel(TRACE)
        self.literal_limit = literal_limit
        self.line_limit = line_limit
        self.preauth_lines = preauth_lines
        self._logins: frozenset[str] = frozenset(login.casefold() for login in logins)

    @classmethod
    def from_config(cls, logging_config: Any, **kwargs: Any) -> WireTracer:
        """From ``config.logging`` (``LoggingConfig``): traces ``trace_accounts``."""
        return cls(logging_config.trace_accounts, **kwargs)

    def enable(self, login: str) -> None:
        self._logins = self._logins | {login.casefold()}

    def disable(self, login: str) -> None:
        self._logins = self._logins - {login.casefold()}

    def enabled(self, login: str) -> bool:
        return login.casefold() in self._logins

    @property
    def logins(self) -> frozenset[str]:
        """The traced logins (case-folded)."""
        return self._logins

    @property
    def active(self) -> bool:
        return bool(self._logins)

    def open(self, peer: str, login: Callable[[], str | None]) -> ConnectionTrace | _Untraced:
        """A trace for a new connection (``ImapServer`` calls this: ``WireTap``).

        While no login at all is traced, connections get a no-op trace: framing every
        byte of every session costs about a fifth of a large FETCH. A trace switched on
        later therefore covers the connections opened after it (the client's next
        login), never a half-framed stream — which could read message bytes as lines."""
        if not self.active:
            return _UNTRACED
        return ConnectionTrace(self, peer, login)


class _Untraced:
    """The trace of a connection opened while nothing was traced: does nothing."""

    __slots__ = ()

    def received(self, data: bytes) -> None:
        pass

    def sent(self, data: bytes) -> None:
        pass


_UNTRACED = _Untraced()


class ConnectionTrace:
    """One connection's trace (see the module docstring)."""

    __slots__ = (
        "_auth_tag",
        "_client",
        "_client_line",
        "_conn",
        "_login",
        "_peer",
        "_pending",
        "_server",
        "_server_line",
        "_tracer",
    )

    def __init__(self, tracer: WireTracer, peer: str, login: Callable[[], str | None]) -> None:
        self._tracer = tracer
        self._peer = peer
        self._login = login
        self._conn = next(_connection_ids)
        cap = tracer.line_limit
        self._client = _Framer(tracer.literal_limit, cap)
        self._server = _Framer(tracer.literal_limit, cap)
        self._client_line = _Logical()
        self._server_line = _Logical()
        #: Tag of an AUTHENTICATE whose SASL exchange is running (client lines are secret).
        self._auth_tag: str | None = None
        self._pending: deque[str] = deque(maxlen=tracer.preauth_lines)

    # -- the WireTap side ---------------------------------------------------------------
    def received(self, data: bytes) -> None:
        try:
            for piece in self._client.feed(data):
                self._client_piece(piece)
        except Exception:  # a trace must never break the connection it watches
            self._tracer.logger.exception("wire trace failed (client side)")

    def sent(self, data: bytes) -> None:
        try:
            for piece in self._server.feed(data):
                self._server_piece(piece)
        except Exception:
            self._tracer.logger.exception("wire trace failed (server side)")

    # -- framing into logical lines -----------------------------------------------------
    def _client_piece(self, piece: tuple[bytes, bool] | _Literal) -> None:
        line = self._client_line
        if isinstance(piece, _Literal):
            line.add(piece)
            return
        segment, ended = piece
        if self._auth_tag is not None and not line.parts:
            # RFC 3501 §6.2.2: a line during the exchange is a SASL response, "*" cancels.
            line.add(b"*" if segment == b"*" else MASK.encode())
            line.command = "SASL"
        else:
            line.add(segment)
        if line.command == "AUTHENTICATE" and len(line.parts) == 1:
            self._auth_tag = line.tag
        if ended:
            self._emit("C", line)
            line.clear()

    def _server_piece(self, piece: tuple[bytes, bool] | _Literal) -> None:
        line = self._server_line
        if isinstance(piece, _Literal):
            line.add(piece)
            return
        segment, ended = piece
        line.add(segment)
        if len(line.parts) == 1:
            self._tagged_reply(line.tag)
        if ended:
            self._emit("S", line)
            line.clear()

    def _tagged_reply(self, tag: str | None) -> None:
        if tag is None or tag in ("*", "+"):
            return
        if tag == self._auth_tag:
            self._auth_tag = None
        client = self._client_line
        if client.parts and client.tag == tag and self._client.awaiting_synchronizing_literal:
            # The server refused the synchronizing literal it was asked for (TOOBIG, a
            # BAD line; RFC 3501 §7.5): the client will not send it, the next bytes are a
            # line. A non-synchronizing literal is on its way regardless: never cancelled.
            self._client.cancel_literal()
            self._emit("C", client)
            client.clear()

    # -- rendering ----------------------------------------------------------------------
    def _active_login(self) -> str | bool | None:
        """The login to trace under; None = not yet known (buffer); False = not traced."""
        tracer = self._tracer
        if not tracer.active:
            self._pending.clear()
            return False
        login = self._login()
        if login is None:
            return None
        return login if tracer.enabled(login) else False

    def _render_client(self, line: _Logical) -> str:
        parts = line.parts
        command = line.command
        if command == "SASL":
            return _text(parts[0])
        first = _text(parts[0]) if parts and isinstance(parts[0], bytes) else ""
        if command == "LOGIN":
            return _login_line(first)
        if command == "AUTHENTICATE":
            words = first.split(" ")
            return " ".join(words[:3]) + (" " + MASK if len(words) > 3 else "")
        # RFC 3501 §6.3.11: an APPEND literal is the message.
        return _join(parts, hide_literals=command == "APPEND", limit=self._tracer.literal_limit)

    def _render_server(self, line: _Logical) -> str:
        parts = line.parts
        first = _text(parts[0]) if parts and isinstance(parts[0], bytes) else ""
        if _FETCH_LINE.match(first):
            text = _join(parts, hide_literals=True, limit=self._tracer.literal_limit)
            return _FETCH_CONTENT.sub(_hide_quoted, text)
        return _join(parts, hide_literals=False, limit=self._tracer.literal_limit)

    def _emit(self, direction: str, line: _Logical) -> None:
        """Write (or, before login, keep) one logical line; free when not traced."""
        login = self._active_login()
        if login is False:
            self._pending.clear()
            return
        text = self._render_client(line) if direction == "C" else self._render_server(line)
        limit = self._tracer.line_limit
        if len(text) > limit:
            text = text[:limit] + f"... ({len(text) - limit} more characters)"
        record = f"{direction}: {redact(text)}"
        if login is None:
            self._pending.append(record)
            return
        assert isinstance(login, str)
        while self._pending:
            self._log(login, self._pending.popleft())
        self._log(login, record)

    def _log(self, login: str, record: str) -> None:
        self._tracer.logger.log(
            TRACE, "%s", record, extra={"account": login, "peer": self._peer, "conn": self._conn}
        )


def _text(segment: bytes | _Literal) -> str:
    if isinstance(segment, _Literal):
        return f"<{segment.size} bytes>"
    return segment.decode("utf-8", "replace")


def _join(parts: list[bytes | _Literal], *, hide_literals: bool, limit: int) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, bytes):
            out.append(part.decode("utf-8", "replace"))
        elif hide_literals or part.head is None or part.size > limit:
            out.append(f"<{part.size} bytes>")
        else:
            shown = part.head.decode("utf-8", "replace")
            out.append("<" + shown.replace("\r", "\\r").replace("\n", "\\n") + ">")
    return "".join(out)


def _login_line(first: str) -> str:
    """``a1 LOGIN user secret`` → ``a1 LOGIN user ***`` (RFC 3501 §6.2.3); a user name
    sent as a literal is not shown, and nothing after the user name ever is."""
    words = first.split(" ", 2)
    head = " ".join(words[:2])
    rest = words[2] if len(words) > 2 else ""
    match = _FIRST_ARG.match(rest)
    user = match.group(1) if match else "{literal}"
    return f"{head} {user} {MASK}"


def _hide_quoted(match: re.Match[str]) -> str:
    return f"{match.group(1)} <{len(match.group(2))} bytes>"
