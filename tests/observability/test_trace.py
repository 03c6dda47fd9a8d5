"""The per-account wire trace: real imaplib and raw-socket sessions against ``ImapServer``,
and ``ConnectionTrace`` fed by hand for framing edge cases."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import logging
import re

import pytest

from bridge.logsetup import TRACE
from bridge.trace import WireTracer

from .conftest import OTHER_PASSWORD, USER_PASSWORD, Imap, TraceRecords

BODY_MARKER = "Zanzibar-body-text-never-logged"
APPEND_MARKER = "Quixotic-append-text-never-logged"


def _message(marker: str) -> bytes:
    return (
        "From: Carol <carol@example.test>\r\n"
        "To: User <user@example.test>\r\n"
        "Subject: trace test\r\n"
        "\r\n"
        f"{marker} and more words.\r\n"
    ).encode()


def _secret_forms(password: str, login: str) -> list[str]:
    plain = f"\0{login}\0{password}".encode()
    return [
        password,
        base64.b64encode(plain).decode(),
        base64.b64encode(password.encode()).decode(),
    ]


async def test_trace_shows_commands_and_hides_password_and_bodies(
    imap: Imap, trace_records: TraceRecords
) -> None:
    imap.tracer.enable("user")
    await imap.user.append("INBOX", _message(BODY_MARKER), frozenset(), None)

    def client() -> None:
        with imaplib.IMAP4("127.0.0.1", imap.port) as conn:
            conn.login("user", USER_PASSWORD)
            conn.select("INBOX")
            conn.fetch("1", "(BODY[])")
            conn.fetch("1", "(BODY.PEEK[TEXT]<0.20>)")  # short: even 20 bytes are not shown
            conn.append("INBOX", None, None, _message(APPEND_MARKER))
            conn.logout()

    await asyncio.to_thread(client)
    lines = trace_records.lines("user")
    text = "\n".join(lines)
    assert all(r.levelno == TRACE for r in trace_records.records)
    # The commands, in order, with the greeting written once the login was known.
    assert lines[0].startswith("S: * OK [CAPABILITY")
    assert any(line.endswith(" LOGIN user ***") for line in lines), text
    assert any(line.startswith("C: ") and line.endswith(" SELECT INBOX") for line in lines)
    assert "S: * 1 EXISTS" in lines
    assert any("FETCH 1 (BODY[])" in line and line.startswith("C: ") for line in lines)
    fetched = [line for line in lines if line.startswith("S: * 1 FETCH")]
    assert re.match(r"S: \* 1 FETCH \(BODY\[\] \{(\d+)\}<\1 bytes>", fetched[0]), fetched
    assert re.match(r"S: \* 1 FETCH \(BODY\[TEXT\]<0> \{20\}<20 bytes>\)", fetched[1]), fetched
    assert any("APPEND INBOX {" in line and line.startswith("C: ") for line in lines), text
    assert any("APPENDUID" in line for line in lines)
    assert any("LOGOUT" in line for line in lines)
    # Never the password, never a body.
    for secret in _secret_forms(USER_PASSWORD, "user"):
        assert secret not in text
    assert BODY_MARKER[:10] not in text
    assert APPEND_MARKER[:10] not in text


async def test_authenticate_plain_is_redacted(imap: Imap, trace_records: TraceRecords) -> None:
    imap.tracer.enable("user")

    def client() -> None:
        with imaplib.IMAP4("127.0.0.1", imap.port) as conn:
            conn.authenticate("PLAIN", lambda _: b"\0user\0" + USER_PASSWORD.encode())
            conn.noop()
            conn.logout()

    await asyncio.to_thread(client)
    text = trace_records.text()
    assert "AUTHENTICATE PLAIN" in text
    assert "C: ***" in text  # the SASL response line
    assert "NOOP" in text
    for secret in _secret_forms(USER_PASSWORD, "user"):
        assert secret not in text


async def _raw_session(port: int, script: list[bytes]) -> bytes:
    """Send each chunk after the server's answer to the previous one ends in a line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = await reader.readline()
    try:
        for chunk in script:
            writer.write(chunk)
            await writer.drain()
            received += await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return received


async def test_sasl_ir_and_literal_login_are_redacted(
    imap: Imap, trace_records: TraceRecords
) -> None:
    imap.tracer.enable("user")
    initial = base64.b64encode(b"\0user\0" + USER_PASSWORD.encode())
    answers = await _raw_session(
        imap.port, [b"a1 AUTHENTICATE PLAIN " + initial + b"\r\n", b"a2 LOGOUT\r\n"]
    )
    assert b"a1 OK" in answers
    password = USER_PASSWORD.encode()
    answers = await _raw_session(
        imap.port,
        [
            b"b1 LOGIN {4}\r\n",
            b"user {%d}\r\n" % len(password),
            password + b"\r\n",
            b"b2 NOOP\r\n",
        ],
    )
    assert b"b1 OK" in answers
    text = trace_records.text()
    assert "C: a1 AUTHENTICATE PLAIN ***" in text
    assert "C: b1 LOGIN {literal} ***" in text
    assert "C: b2 NOOP" in text
    for secret in _secret_forms(USER_PASSWORD, "user"):
        assert secret not in text


async def test_other_logins_are_not_traced_and_disable_stops(
    imap: Imap, trace_records: TraceRecords
) -> None:
    imap.tracer.enable("USER")  # logins compare case-insensitively
    assert imap.tracer.enabled("user")

    def other() -> None:
        with imaplib.IMAP4("127.0.0.1", imap.port) as conn:
            conn.login("other", OTHER_PASSWORD)
            conn.select("INBOX")
            conn.logout()

    await asyncio.to_thread(other)
    assert trace_records.records == []

    conn = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap.port)
    try:
        await asyncio.to_thread(conn.login, "user", USER_PASSWORD)
        await asyncio.to_thread(conn.select, "INBOX")
        traced = len(trace_records.records)
        assert traced > 0
        assert {getattr(r, "account", None) for r in trace_records.records} == {"user"}
        imap.tracer.disable("user")
        assert not imap.tracer.enabled("user")
        await asyncio.to_thread(conn.noop)
        await asyncio.to_thread(conn.append, "INBOX", None, None, _message(APPEND_MARKER))
        assert len(trace_records.records) == traced
        # Switched on again mid-session: the framing never stopped, so it picks up cleanly.
        imap.tracer.enable("user")
        await asyncio.to_thread(conn.noop)
        assert any(line.endswith(" NOOP") for line in trace_records.lines("user")[traced:])
    finally:
        await asyncio.to_thread(conn.logout)


# -- ConnectionTrace fed directly ------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def capture() -> tuple[WireTracer, _Capture]:
    logger = logging.getLogger("tests.observability.trace")
    logger.propagate = False
    handler = _Capture()
    logger.handlers = [handler]
    return WireTracer(["alice"], logger=logger), handler


def _feed(chunks: list[tuple[str, bytes]], trace: object, one_byte: bool) -> None:
    for direction, data in chunks:
        pieces = [data[i : i + 1] for i in range(len(data))] if one_byte else [data]
        for piece in pieces:
            getattr(trace, "received" if direction == "C" else "sent")(piece)


_BODY = b"Secret body line one\r\nline two\r\n"
_SESSION = [
    ("S", b"* OK ready\r\n"),
    ("C", b"a1 LOGIN alice hunter2-password\r\n"),
    ("S", b"a1 OK Logged in\r\n"),
    ("C", b"a2 SELECT {5}\r\nINBOX\r\n"),
    ("S", b"* 1 EXISTS\r\na2 OK [READ-WRITE] done\r\n"),
    ("C", b"a3 FETCH 1 (BODY[] BODY[1])\r\n"),
    ("S", b'* 1 FETCH (BODY[] {%d}\r\n%s BODY[1] "Secret short")\r\n' % (len(_BODY), _BODY)),
    ("S", b"a3 OK done\r\n"),
    ("C", b"a4 APPEND INBOX {%d+}\r\n%s\r\n" % (len(_BODY), _BODY)),
    ("S", b"a4 OK [APPENDUID 1 2] done\r\n"),
    ("C", b"a5 APPEND INBOX {99999999}\r\n"),
    ("S", b"a5 NO [TOOBIG] Literal too large\r\n"),
    ("C", b"a6 NOOP\r\n"),
    ("S", b"a6 OK done\r\n"),
]
_EXPECTED = [
    "S: * OK ready",
    "C: a1 LOGIN alice ***",
    "S: a1 OK Logged in",
    "C: a2 SELECT {5}<INBOX>",
    "S: * 1 EXISTS",
    "S: a2 OK [READ-WRITE] done",
    "C: a3 FETCH 1 (BODY[] BODY[1])",
    f"S: * 1 FETCH (BODY[] {{{len(_BODY)}}}<{len(_BODY)} bytes> BODY[1] <12 bytes>)",
    "S: a3 OK done",
    f"C: a4 APPEND INBOX {{{len(_BODY)}+}}<{len(_BODY)} bytes>",
    "S: a4 OK [APPENDUID 1 2] done",
    "C: a5 APPEND INBOX {99999999}",
    "S: a5 NO [TOOBIG] Literal too large",
    "C: a6 NOOP",
    "S: a6 OK done",
]


@pytest.mark.parametrize("one_byte", [False, True], ids=["whole", "byte-at-a-time"])
def test_framing_and_redaction(capture: tuple[WireTracer, _Capture], one_byte: bool) -> None:
    tracer, handler = capture
    login: list[str | None] = [None]
    trace = tracer.open("127.0.0.1", lambda: login[0])
    _feed(_SESSION[:2], trace, one_byte)
    login[0] = "alice"  # the session authenticated before its tagged OK went out
    _feed(_SESSION[2:], trace, one_byte)
    assert handler.lines == _EXPECTED
    assert "hunter2" not in "\n".join(handler.lines)
    assert "Secret" not in "\n".join(handler.lines)


def test_enabling_inside_a_literal_never_logs_its_bytes(
    capture: tuple[WireTracer, _Capture],
) -> None:
    tracer, handler = capture
    body = b"line one of a body\r\na99 LOGOUT looks like a command\r\n" * 20
    # While some login (bob) is traced, every new connection is framed; alice's trace
    # switched on in the middle of her APPEND literal picks up after the literal.
    tracer.disable("alice")
    tracer.enable("bob")
    trace = tracer.open("127.0.0.1", lambda: "alice")
    trace.received(b"a1 APPEND INBOX {%d+}\r\n" % len(body) + body[:30])
    tracer.enable("alice")
    trace.received(body[30:] + b"\r\na2 NOOP\r\n")
    assert handler.lines == [
        f"C: a1 APPEND INBOX {{{len(body)}+}}<{len(body)} bytes>",
        "C: a2 NOOP",
    ]


def test_connections_opened_while_nothing_is_traced_stay_silent(
    capture: tuple[WireTracer, _Capture],
) -> None:
    tracer, handler = capture
    body = b"line one of a body\r\na99 LOGOUT looks like a command\r\n" * 20
    tracer.disable("alice")
    assert not tracer.active
    trace = tracer.open("127.0.0.1", lambda: "alice")
    trace.received(b"a1 APPEND INBOX {%d+}\r\n" % len(body) + body[:30])
    tracer.enable("alice")
    trace.received(body[30:] + b"\r\na2 NOOP\r\n")
    trace.sent(b"a2 OK done\r\n")
    # Not framed from its start, so never traced: no line, and above all no body bytes.
    assert handler.lines == []
    # The client's next connection is traced.
    fresh = tracer.open("127.0.0.1", lambda: "alice")
    fresh.received(b"a3 NOOP\r\n")
    assert handler.lines == ["C: a3 NOOP"]


def test_long_lines_and_literals_are_cut(capture: tuple[WireTracer, _Capture]) -> None:
    tracer, handler = capture
    trace = tracer.open("127.0.0.1", lambda: "alice")
    big = b"x" * 201
    trace.sent(b'* LIST () "/" {201}\r\n' + big + b"\r\n")
    trace.sent(b"* OK " + b"y" * 5000 + b"\r\n")
    assert handler.lines[0] == 'S: * LIST () "/" {201}<201 bytes>'
    assert len(handler.lines[1]) < 2100 and handler.lines[1].endswith("more characters)")


def test_from_config_traces_configured_logins() -> None:
    from bridge.config import LoggingConfig

    tracer = WireTracer.from_config(LoggingConfig(trace_accounts=("Alice", "bob")))
    assert tracer.enabled("alice") and tracer.enabled("BOB") and not tracer.enabled("carol")
    assert tracer.logins == frozenset({"alice", "bob"})


def test_a_refused_non_synchronizing_literal_is_still_skipped(
    capture: tuple[WireTracer, _Capture],
) -> None:
    tracer, handler = capture
    trace = tracer.open("127.0.0.1", lambda: "alice")
    content = b"x1 LOGIN bob body-bytes-look-like-a-line\r\n"
    trace.received(b"a1 APPEND INBOX {%d+}\r\n" % len(content))
    trace.sent(b"a1 NO [TOOBIG] Too big\r\n")  # RFC 7888: the client sends it anyway
    trace.received(content + b"\r\na2 NOOP\r\n")
    assert "body-bytes" not in "\n".join(handler.lines)
    assert handler.lines[-1] == "C: a2 NOOP"
