"""imaplib (the standard library's client) against a real ImapServer socket."""

from __future__ import annotations

import asyncio
import imaplib
import re

from .conftest import Running

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: Hello there\r\n"
    b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <e2e-1@example.test>\r\n"
    b"\r\n"
    b"Body text with needle inside.\r\n"
)


def _session_script(port: int) -> dict[str, object]:
    out: dict[str, object] = {}
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        out["caps_before"] = imap.capabilities
        assert imap.login("user", "secret")[0] == "OK"
        out["list"] = imap.list()[1]
        typ, data = imap.append("INBOX", "(\\Flagged)", None, MESSAGE)
        out["append"] = (typ, data)
        typ, data = imap.select("INBOX")
        out["select"] = (typ, data)
        out["fetch"] = imap.fetch("1", "(FLAGS RFC822.SIZE BODY.PEEK[])")[1]
        out["search"] = imap.search(None, "BODY", "needle")[1]
        out["search_none"] = imap.search(None, "SUBJECT", "absent")[1]
        out["store"] = imap.store("1", "+FLAGS", "(\\Seen)")[1]
        out["create"] = imap.create("Archive/2026")
        out["copy"] = imap.copy("1", "Archive/2026")
        out["move"] = imap.uid("MOVE", "1", "Trash")
        out["after_move"] = imap.select("INBOX")[1]
        out["trash"] = imap.select("Trash")[1]
        imap.store("1", "+FLAGS", "(\\Deleted)")
        out["expunge"] = imap.expunge()[1]
        imap.close()
    finally:
        imap.logout()
    return out


async def test_imaplib_full_session(running: Running) -> None:
    out = await asyncio.to_thread(_session_script, running.port)
    assert "AUTH=PLAIN" in out["caps_before"]  # loopback: plaintext login allowed
    assert any(b'"INBOX"' in line for line in out["list"])  # type: ignore[union-attr]
    typ, data = out["append"]  # type: ignore[misc]
    assert typ == "OK" and b"APPENDUID" in data[0]
    assert out["select"] == ("OK", [b"1"])
    fetched = out["fetch"]
    assert fetched[0][1] == MESSAGE  # type: ignore[index]
    assert b"RFC822.SIZE %d" % len(MESSAGE) in fetched[0][0]  # type: ignore[index]
    assert out["search"] == [b"1"]
    assert out["search_none"] == [b""]
    assert b"\\Seen" in out["store"][0]  # type: ignore[index]
    assert out["create"][0] == "OK"  # type: ignore[index]
    assert out["copy"][0] == "OK"  # type: ignore[index]
    assert out["move"][0] == "OK"  # type: ignore[index]
    assert out["after_move"] == [b"0"]
    assert out["trash"] == [b"1"]
    assert out["expunge"] == [b"1"]
    assert (await running.backend.status("Trash")).messages == 0
    assert (await running.backend.status("Archive/2026")).messages == 1


def _idle_script(port: int, ready: asyncio.Event, loop: asyncio.AbstractEventLoop) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"a LOGIN user secret\r\nb SELECT INBOX\r\n")
        while not f.readline().startswith(b"b OK"):
            pass
        sock.sendall(b"c IDLE\r\n")
        assert f.readline().startswith(b"+ ")
        loop.call_soon_threadsafe(ready.set)
        pushed = f.readline()
        sock.sendall(b"DONE\r\n")
        lines = [pushed]
        while not lines[-1].startswith(b"c "):
            lines.append(f.readline())
        sock.sendall(b"d LOGOUT\r\n")
        return b"".join(lines)


async def test_idle_over_a_raw_socket(running: Running) -> None:
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    worker = asyncio.create_task(asyncio.to_thread(_idle_script, running.port, ready, loop))
    await asyncio.wait_for(ready.wait(), 10)
    await running.backend.append("INBOX", MESSAGE, frozenset(), None)
    transcript = await asyncio.wait_for(worker, 10)
    assert transcript.startswith(b"* 1 EXISTS\r\n")
    assert re.search(rb"c OK .*IDLE", transcript)
