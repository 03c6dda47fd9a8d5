"""IMAP metrics after real traffic: imaplib against ``ImapServer``, read back through
``GET /metrics``."""

from __future__ import annotations

import asyncio
import imaplib

import pytest
from prometheus_client import generate_latest

from bridge.imap.session import command_name
from bridge.imap.wire import commands as c
from bridge.imap.wire.sequence import SequenceSet
from bridge.metrics import BridgeMetrics

from .conftest import OTHER_PASSWORD, USER_PASSWORD, Imap, Scraper, sample

MESSAGE = b"From: a@example.test\r\nSubject: hi\r\n\r\nHello there.\r\n"


async def _until_no_connections(imap: Imap) -> None:
    # The server finishes a connection after the client's socket closed; wait for that
    # (bounded) instead of sleeping a fixed time.
    for _ in range(500):
        if imap.server.connection_count == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("connections did not close")


async def test_commands_are_counted_by_name_and_status(imap: Imap, scrape: Scraper) -> None:
    await imap.user.append("INBOX", MESSAGE, frozenset(), None)

    def client() -> None:
        with imaplib.IMAP4("127.0.0.1", imap.port) as conn:
            conn.login("user", USER_PASSWORD)
            conn.select("INBOX")
            conn.uid("FETCH", "1:*", "(FLAGS)")
            conn.noop()
            typ, _ = conn.select("No/Such/Folder")
            assert typ == "NO"
            with pytest.raises(imaplib.IMAP4.error):
                conn.xatom("XYZZY")  # unknown command: the parser answers BAD
            conn.logout()

    await asyncio.to_thread(client)
    await _until_no_connections(imap)
    text = await scrape.text()
    assert 'imap_commands_total{command="SELECT",status="OK"} 1.0' in text
    assert 'imap_commands_total{command="SELECT",status="NO"} 1.0' in text
    assert 'imap_commands_total{command="LOGIN",status="OK"} 1.0' in text
    assert 'imap_commands_total{command="UID FETCH",status="OK"} 1.0' in text
    assert 'imap_commands_total{command="NOOP",status="OK"} 1.0' in text
    assert 'imap_commands_total{command="LOGOUT",status="OK"} 1.0' in text
    assert 'imap_commands_total{command="INVALID",status="BAD"} 1.0' in text
    # imaplib asks for CAPABILITY once, at connect.
    assert sample(text, "imap_commands_total", command="CAPABILITY", status="OK") == 1.0
    assert sample(text, "imap_response_codes_total", command="SELECT", code="READ-WRITE") == 1.0
    assert sample(text, "imap_response_codes_total", command="LOGIN", code="CAPABILITY") == 1.0
    assert sample(text, "imap_command_duration_seconds_count", command="SELECT") == 2.0
    assert sample(text, "imap_auth_failures_total") == 0.0


async def test_connections_gauge_goes_up_and_down(imap: Imap, scrape: Scraper) -> None:
    first = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap.port)
    second = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap.port)
    try:
        assert await scrape.value("imap_connections", listener="imap") == 2.0
    finally:
        await asyncio.to_thread(first.logout)
    for _ in range(500):
        if imap.server.connection_count == 1:
            break
        await asyncio.sleep(0.01)
    assert await scrape.value("imap_connections", listener="imap") == 1.0
    await asyncio.to_thread(second.logout)
    await _until_no_connections(imap)
    assert await scrape.value("imap_connections", listener="imap") == 0.0


async def test_failed_logins_are_counted(imap: Imap, scrape: Scraper) -> None:
    def client() -> None:
        with imaplib.IMAP4("127.0.0.1", imap.port) as conn:
            with pytest.raises(imaplib.IMAP4.error):
                conn.login("user", "wrong-password")
            with pytest.raises(imaplib.IMAP4.error):
                conn.authenticate("PLAIN", lambda _: b"\0other\0not-" + OTHER_PASSWORD.encode())
            conn.login("other", OTHER_PASSWORD)
            conn.logout()

    await asyncio.to_thread(client)
    text = await scrape.text()
    assert sample(text, "imap_auth_failures_total") == 2.0
    assert sample(text, "imap_commands_total", command="LOGIN", status="NO") == 1.0
    assert sample(text, "imap_commands_total", command="AUTHENTICATE", status="NO") == 1.0
    assert sample(text, "imap_commands_total", command="LOGIN", status="OK") == 1.0
    assert (
        sample(text, "imap_response_codes_total", command="LOGIN", code="AUTHENTICATIONFAILED")
        == 1.0
    )
    # A peer address is never a label.
    assert "127.0.0.1" not in text


def test_command_names_keep_uid() -> None:
    everything = SequenceSet.parse("1:*")
    assert command_name(c.Fetch("a1", everything, (), uid=True)) == "UID FETCH"
    assert command_name(c.Fetch("a1", everything, ())) == "FETCH"
    assert command_name(c.Expunge("a1", everything)) == "UID EXPUNGE"
    assert command_name(c.Expunge("a1")) == "EXPUNGE"
    assert command_name(c.StartTls("a1")) == "STARTTLS"
    assert command_name(c.GetQuotaRoot("a1", "INBOX")) == "GETQUOTAROOT"


def test_smtp_submissions_by_outcome() -> None:
    metrics = BridgeMetrics()
    before = generate_latest(metrics.registry).decode()
    # Every known outcome is there from the start, at zero.
    for outcome in ("sent", "deferred", "refused"):
        assert sample(before, "smtp_submissions_total", outcome=outcome) == 0.0
    for outcome in ("sent", "sent", "refused", "deferred", "mystery"):
        metrics.record_submission(outcome)
    text = generate_latest(metrics.registry).decode()
    assert sample(text, "smtp_submissions_total", outcome="sent") == 2.0
    assert sample(text, "smtp_submissions_total", outcome="refused") == 1.0
    assert sample(text, "smtp_submissions_total", outcome="deferred") == 1.0
    assert sample(text, "smtp_submissions_total", outcome="other") == 1.0
    assert sample(text, "smtp_submissions_total", outcome="mystery") is None


def test_registries_are_independent() -> None:
    one, two = BridgeMetrics(), BridgeMetrics()
    one.command("NOOP", "OK", None, 0.001)

    assert (
        sample(
            generate_latest(one.registry).decode(),
            "imap_commands_total",
            command="NOOP",
            status="OK",
        )
        == 1.0
    )
    assert (
        sample(
            generate_latest(two.registry).decode(),
            "imap_commands_total",
            command="NOOP",
            status="OK",
        )
        is None
    )


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes, until: bytes
) -> bytes:
    writer.write(line)
    await writer.drain()
    seen = b""
    while not seen.endswith(b"\r\n") or until not in seen.rsplit(b"\r\n", 2)[-2]:
        chunk = await asyncio.wait_for(reader.readline(), 10)
        assert chunk, seen
        seen += chunk
    return seen


async def test_idle_is_counted_but_not_timed(imap: Imap, scrape: Scraper) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port)
    try:
        await reader.readline()
        await _command(reader, writer, b'a1 LOGIN user "%s"\r\n' % USER_PASSWORD.encode(), b"a1 ")
        await _command(reader, writer, b"a2 SELECT INBOX\r\n", b"a2 ")
        await _command(reader, writer, b"a3 IDLE\r\n", b"+ ")
        done = await _command(reader, writer, b"DONE\r\n", b"a3 ")
        assert b"a3 OK" in done
    finally:
        writer.close()
    text = await scrape.text()
    assert sample(text, "imap_commands_total", command="IDLE", status="OK") == 1.0
    assert sample(text, "imap_command_duration_seconds_count", command="IDLE") is None
    assert sample(text, "imap_command_duration_seconds_count", command="LOGIN") == 1.0
