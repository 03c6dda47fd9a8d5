"""The server side of one IMAP connection, sans I/O: bytes in, events out.

Owns :class:`ServerConnection`.  Standard library only; never touches a socket, a clock or
the event loop.

Theory of operation
-------------------
IMAP commands are lines, except that a line may end in a literal marker ``{n}`` or
``{n+}`` after which exactly ``n`` octets of data follow and the command continues on the
next line (RFC 3501 §4.3, RFC 7888).  The connection therefore FRAMES first and PARSES
second: it collects ``lines`` (without CRLF) and ``literals`` until a line without a
marker ends the command, then hands both to :func:`.parser.parse_command`.  Parsing is
lazy — only :meth:`ServerConnection.next_event` consumes input, one event per call — so
pipelined bytes stay buffered until the session has acted on the previous command.  That
is what makes IDLE and AUTHENTICATE work: after the session sees :class:`Idle` it calls
:meth:`enter_idle`, and the NEXT line is read as ``DONE`` rather than as a command.

States (everything that changes how the next octets are read is in :class:`_State`):

=================  ===================================================================
COMMAND            reading a command line (the first or one after a literal)
LITERAL_DECISION   a ``{n}`` was announced; waiting for accept_literal/reject_literal
LITERAL            reading (or, when the command is doomed, swallowing) literal octets
DISCARD_LINE       skipping the rest of an over-long line up to its LF
CONTINUATION_LINE  the next line is an AUTHENTICATE response (RFC 3501 §6.2.2)
IDLE               the next line must be ``DONE`` (RFC 2177)
CLOSED             a fatal error was reported; input is ignored
=================  ===================================================================

Errors never desynchronise the stream.  A command found bad while it is still arriving
is "doomed": the rest of it — including the octets of any ``{n+}`` literal, which the
client sends without waiting — is consumed and dropped, then ONE :class:`ProtocolError`
with the suggested reply is returned.  RFC 7888 §4 allows exactly this: "Read the number
of bytes specified in the non-synchronizing literal and reject the command that included
the literal anyway."  A synchronising literal on a doomed command ends it at once: the
client is waiting for ``+`` and gets the error instead, so it will send nothing more.

Limits: ``max_line`` per line excluding literals; literal octets per command budgeted at
``max_literal`` for APPEND and ``max_command_literal`` for every other command; SEARCH
and other nesting at ``max_nesting``.  A line still without LF after
``max_line * FATAL_LINE_FACTOR`` octets is not IMAP: that is the one fatal case (``* BYE``).

NUL: RFC 3501 §9 note (3): "The ASCII NUL character, %x00, MUST NOT be used at any
time." (and ``CHAR8 = %x01-ff`` for literal content; §4.3.1 calls a string with NUL a
"binary string", which "are not permitted").  So NUL is refused with a tagged BAD both in
command lines and in literals — also in APPEND; literal8/BINARY is not offered.
Bare LF is accepted as a line end (a trailing CR is stripped), as most servers do.
Empty lines between commands are ignored.
"""

from __future__ import annotations

import enum
import re

from .commands import Command, Done
from .events import (
    NEED_DATA,
    ContinuationLine,
    ContinuationNeeded,
    LocalProtocolError,
    NeedData,
    ProtocolError,
)
from .parser import TAG_RE, ParseError, parse_command
from .responses import tagged

__all__ = ["Event", "ServerConnection"]

Event = Command | Done | NeedData | ContinuationNeeded | ContinuationLine | ProtocolError

#: A line this many times ``max_line`` long without an LF ends the connection.
FATAL_LINE_FACTOR = 16
_MARKER = re.compile(rb"\{([0-9]{1,20})(\+?)\}\Z")
_HEAD = re.compile(rb"[^ ]+ (?:[Uu][Ii][Dd] )?([A-Za-z]+)")
_COMPACT_AT = 1 << 16


class _State(enum.Enum):
    COMMAND = "command"
    LITERAL_DECISION = "literal-decision"
    LITERAL = "literal"
    DISCARD_LINE = "discard-line"
    CONTINUATION_LINE = "continuation-line"
    IDLE = "idle"
    CLOSED = "closed"


class ServerConnection:
    """Protocol state for the server end of one IMAP connection.

    Feed bytes with :meth:`receive_data`; call :meth:`next_event` until it returns
    :data:`NEED_DATA`.  See the package docstring for the full contract.
    """

    def __init__(
        self,
        *,
        max_line: int = 64 * 1024,
        max_literal: int = 35 * 1024 * 1024,
        max_command_literal: int = 64 * 1024,
        max_nesting: int = 32,
        literal_plus: bool = True,
    ) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_command_literal = max_command_literal
        self.max_nesting = max_nesting
        self.literal_plus = literal_plus
        self._buf = bytearray()
        self._pos = 0
        self._scan = 0  # where the LF search resumes (keeps byte-by-byte input linear)
        self._state = _State.COMMAND
        self._line_state = _State.COMMAND  # which state an over-long line belongs to
        self._last_tag: str | None = None
        self._reset_command()

    # ------------------------------------------------------------------ public API
    @property
    def state(self) -> str:
        """The framer state's name (for logs and tests)."""
        return self._state.value

    @property
    def literal_remaining(self) -> int:
        """Octets of a literal still expected (0 outside a literal): a ``{n+}`` literal
        over the limit is read to its end and thrown away (RFC 7888 §4), however long."""
        return self._remaining if self._state is _State.LITERAL else 0

    def receive_data(self, data: bytes) -> None:
        """Append received octets.  ``b""`` (EOF) is accepted and changes nothing."""
        if self._state is not _State.CLOSED and data:
            self._buf += data

    def next_event(self) -> Event:
        """The next command or event, or :data:`NEED_DATA`."""
        while True:
            state = self._state
            if state is _State.LITERAL_DECISION:
                raise LocalProtocolError("call accept_literal() or reject_literal() first")
            if state is _State.CLOSED:
                return NEED_DATA
            if state is _State.LITERAL:
                if not self._read_literal():
                    return self._need_data()
                continue
            if state is _State.DISCARD_LINE:
                event = self._discard_line()
                if event is None:
                    return self._need_data()
                if isinstance(event, _Continue):
                    continue
                return event
            line = self._read_line()
            if line is None:
                # +1: a pending CR is not part of the line length
                if len(self._buf) - self._pos > self.max_line + 1:
                    self._start_discard()
                    continue
                return self._need_data()
            if len(line) > self.max_line:
                self._line_state = state
                if state is _State.COMMAND and not self._lines:
                    self._discard_head = line[:256]
                self._doom(self._too_long())
                event = self._after_overlong(line[-32:])
                if isinstance(event, _Continue):
                    continue
                return event
            if state is _State.IDLE:
                self._state = _State.COMMAND
                if line.strip().upper() == b"DONE":
                    return Done()
                return self._error(self._last_tag, "Expected DONE to end IDLE")
            if state is _State.CONTINUATION_LINE:
                self._state = _State.COMMAND
                return ContinuationLine(line)
            result = self._command_line(line)
            if result is not None:
                return result

    def accept_literal(self) -> bytes:
        """Agree to receive the announced ``{n}`` literal; returns the ``+`` line to send."""
        if self._state is not _State.LITERAL_DECISION:
            raise LocalProtocolError("no synchronising literal is waiting")
        self._state = _State.LITERAL
        return b"+ Ready for literal data\r\n"

    def reject_literal(self, response: bytes) -> bytes:
        """Refuse the announced ``{n}`` literal; the command is over.

        Returns ``response`` (e.g. ``a1 NO [TOOBIG] ...``) for the caller to send.  The
        client has not sent the literal — RFC 3501 §7.5: the client waits for the
        continuation — so there is nothing to skip.
        """
        if self._state is not _State.LITERAL_DECISION:
            raise LocalProtocolError("no synchronising literal is waiting")
        self._reset_command()
        self._state = _State.COMMAND
        return response

    def expect_continuation_line(self) -> None:
        """The next line is a client response to our ``+`` (AUTHENTICATE)."""
        self._require_idle_framer("expect_continuation_line")
        self._state = _State.CONTINUATION_LINE

    def enter_idle(self) -> None:
        """After sending ``+ idling``: the next line must be ``DONE`` (RFC 2177)."""
        self._require_idle_framer("enter_idle")
        self._state = _State.IDLE

    # ------------------------------------------------------------------ framing
    def _require_idle_framer(self, what: str) -> None:
        if self._state is not _State.COMMAND or self._lines:
            raise LocalProtocolError(f"{what}() is only valid between commands")

    def _reset_command(self) -> None:
        self._lines: list[bytes] = []
        self._literals: list[bytes] = []
        self._literal = bytearray()
        self._remaining = 0
        self._budget = 0
        self._doomed: ProtocolError | None = None
        self._cmd_tag: str | None = None
        self._discard_head = b""
        self._discard_tail = b""
        self._discarded = 0

    def _need_data(self) -> NeedData:
        if self._pos:
            if self._pos >= len(self._buf):
                self._buf.clear()
                self._scan = 0
                self._pos = 0
            elif self._pos > _COMPACT_AT:
                del self._buf[: self._pos]
                self._scan -= self._pos
                self._pos = 0
        return NEED_DATA

    def _read_line(self) -> bytes | None:
        buf = self._buf
        lf = buf.find(b"\n", max(self._scan, self._pos))
        if lf < 0:
            self._scan = len(buf)
            return None
        end = lf - 1 if lf > self._pos and buf[lf - 1] == 0x0D else lf
        line = bytes(buf[self._pos : end])
        self._pos = lf + 1
        self._scan = self._pos
        return line

    def _read_literal(self) -> bool:
        """Consume literal octets; True when the literal is complete."""
        take = min(len(self._buf) - self._pos, self._remaining)
        whole: bytes | None = None
        if take > 0:
            if self._doomed is None and take == self._remaining and not self._literal:
                # Fast path: the whole literal is already buffered — one copy, not two.
                whole = bytes(self._buf[self._pos : self._pos + take])
            elif self._doomed is None:
                # One growing bytearray, not a list of chunks: a client trickling a
                # 35 MiB literal one octet per read must not cost a Python object per octet.
                self._literal += self._buf[self._pos : self._pos + take]
            self._pos += take
            self._scan = self._pos
            self._remaining -= take
        if self._remaining:
            return False
        if self._doomed is None:
            data = whole if whole is not None else bytes(self._literal)
            if b"\0" in data:
                # RFC 3501 §9: literal = "{" number "}" CRLF *CHAR8 ; CHAR8 = %x01-ff
                # and note (3): "The ASCII NUL character, %x00, MUST NOT be used"
                self._doom(self._bad("NUL octet in literal"))
            self._literals.append(data)
        self._literal = bytearray()
        self._state = _State.COMMAND
        return True

    def _start_discard(self) -> None:
        """The line in the buffer is already too long and has no LF yet."""
        self._line_state = self._state
        start = self._pos
        if self._state is _State.COMMAND and not self._lines:
            self._discard_head = bytes(self._buf[start : start + 256])
        self._doom(self._too_long())
        self._discarded = len(self._buf) - start
        self._discard_tail = bytes(self._buf[max(start, len(self._buf) - 32) :])
        self._pos = self._scan = len(self._buf)
        self._state = _State.DISCARD_LINE

    def _discard_line(self) -> Event | _Continue | None:
        buf = self._buf
        lf = buf.find(b"\n", self._pos)
        if lf < 0:
            self._discarded += len(buf) - self._pos
            self._discard_tail = (self._discard_tail + bytes(buf[self._pos :]))[-32:]
            self._pos = self._scan = len(buf)
            if self._discarded > self.max_line * FATAL_LINE_FACTOR:
                self._state = _State.CLOSED
                self._buf.clear()
                self._pos = self._scan = 0
                return ProtocolError(None, b"* BYE Command line far too long\r\n", True)
            return None
        tail = (self._discard_tail + bytes(buf[self._pos : lf]))[-32:]
        self._pos = self._scan = lf + 1
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        return self._after_overlong(tail)

    def _after_overlong(self, tail: bytes) -> Event | _Continue:
        """An over-long line ended; honour a trailing literal marker, then report."""
        if self._line_state is not _State.COMMAND:
            self._state = _State.COMMAND
            error = self._doomed
            self._reset_command()
            assert error is not None
            return error
        if not self._lines and self._cmd_tag is None:
            m = TAG_RE.match(self._discard_head)
            if m and self._discard_head[m.end() : m.end() + 1] == b" ":
                self._cmd_tag = m.group().decode("ascii")
                self._doomed = self._bad("Command line too long")
        self._lines.append(b"")  # placeholder: the command is doomed, content irrelevant
        return self._after_line(tail)

    def _command_line(self, line: bytes) -> Event | None:
        if not self._lines:
            if not line:
                return None  # empty line between commands: ignore
            m = _HEAD.match(line)
            tm = TAG_RE.match(line)
            if tm and line[tm.end() : tm.end() + 1] == b" ":
                self._cmd_tag = tm.group().decode("ascii")
            if m and m.group(1).upper() == b"APPEND":
                self._budget = self.max_literal
            else:
                self._budget = self.max_command_literal
        if b"\0" in line:
            # RFC 3501 §9 note (3): "The ASCII NUL character, %x00, MUST NOT be used at
            # any time."
            self._doom(self._bad("NUL octet in command"))
        self._lines.append(line)
        result = self._after_line(line)
        return None if isinstance(result, _Continue) else result

    def _after_line(self, line: bytes) -> Event | _Continue:
        """A line of the current command ended: a literal follows, or the command ends."""
        # RFC 7888 §3: "The protocol receiver of an IMAP server MUST check the end of
        # every received line ... for an open brace ('{') followed by an octet count, a
        # plus ('+'), and a close brace ('}') immediately preceding the CRLF" and "MUST
        # treat the specified number of following octets and the following line ... as
        # part of the same command."
        m = _MARKER.search(line)
        if m is None:
            return self._finish()
        size = int(m.group(1))
        non_sync = m.group(2) == b"+"
        tag = self._cmd_tag
        if self._doomed is not None:
            if not non_sync:
                return self._finish()
            return self._swallow(size)
        if non_sync and not self.literal_plus:
            self._doom(self._bad("Non-synchronising literal without LITERAL+"))
            return self._swallow(size)
        if size > self._budget:
            # RFC 7888 §5 / RFC 7889 §4: reject an over-sized APPEND with TOOBIG.
            if non_sync:
                self._doom(self._response("BAD", "Literal too large", "TOOBIG"))
                return self._swallow(size)
            self._doom(self._response("NO", "Literal too large", "TOOBIG"))
            return self._finish()
        self._budget -= size
        self._remaining = size
        if non_sync:
            self._state = _State.LITERAL
            return _CONTINUE
        if tag is None:
            # No usable tag: we cannot answer this literal, so refuse it.
            self._doom(self._bad("Missing or invalid tag"))
            return self._finish()
        self._state = _State.LITERAL_DECISION
        return ContinuationNeeded(tag, size)

    def _swallow(self, size: int) -> _Continue:
        self._remaining = size
        if size:
            self._state = _State.LITERAL
        else:
            self._state = _State.COMMAND
        return _CONTINUE

    def _finish(self) -> Event:
        lines, literals, doomed = self._lines, self._literals, self._doomed
        self._reset_command()
        self._state = _State.COMMAND
        if doomed is not None:
            return doomed
        try:
            command = parse_command(lines, literals, self.max_nesting)
        except ParseError as exc:
            tag = exc.tag
            if tag is None:
                return ProtocolError(None, b"* BAD " + exc.reason.encode() + b"\r\n")
            return ProtocolError(tag, tagged(tag, exc.status, exc.reason, exc.code))
        self._last_tag = command.tag  # IDLE / AUTHENTICATE errors answer this tag
        return command

    # ------------------------------------------------------------------ errors
    def _doom(self, error: ProtocolError) -> None:
        if self._doomed is None:
            self._doomed = error

    def _response(self, status: str, reason: str, code: str | None = None) -> ProtocolError:
        tag = self._cmd_tag
        if tag is None:
            return ProtocolError(None, b"* " + status.encode() + b" " + reason.encode() + b"\r\n")
        return ProtocolError(tag, tagged(tag, status, reason, code))

    def _bad(self, reason: str) -> ProtocolError:
        return self._response("BAD", reason)

    def _too_long(self) -> ProtocolError:
        if self._line_state is _State.COMMAND:
            return self._bad("Command line too long")
        return self._error(self._last_tag, "Line too long")

    def _error(self, tag: str | None, reason: str) -> ProtocolError:
        if tag is None:
            return ProtocolError(None, b"* BAD " + reason.encode() + b"\r\n")
        return ProtocolError(tag, tagged(tag, "BAD", reason))


class _Continue:
    """Internal marker: keep framing, nothing to report yet."""

    __slots__ = ()


_CONTINUE = _Continue()
