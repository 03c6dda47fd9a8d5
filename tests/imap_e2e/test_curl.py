"""curl's IMAP client against a real ImapServer socket."""

from __future__ import annotations

import asyncio

from .conftest import Running


async def _curl(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-s",
        "--max-time",
        "20",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_curl_lists_mailboxes(running: Running) -> None:
    rc, out = await _curl("--url", f"imap://127.0.0.1:{running.port}/", "-u", "user:secret")
    assert rc == 0
    assert '* LIST (\\HasNoChildren) "/" "INBOX"' in out
    assert '\\Sent) "/" "Sent"' in out


async def test_curl_fetches_a_message_by_uid(running: Running) -> None:
    body = b"Subject: from curl\r\nFrom: a@example.test\r\n\r\nline one\r\n"
    result = await running.backend.append("INBOX", body, frozenset(), None)
    rc, out = await _curl(
        "--url", f"imap://127.0.0.1:{running.port}/INBOX;UID={result.uid}", "-u", "user:secret"
    )
    assert rc == 0
    assert out.encode() == body


async def test_curl_search(running: Running) -> None:
    for n in range(3):
        await running.backend.append(
            "INBOX", b"Subject: s%d\r\n\r\nx\r\n" % n, frozenset({"\\Seen"} if n else ()), None
        )
    rc, out = await _curl(
        "--url", f"imap://127.0.0.1:{running.port}/INBOX?UNSEEN", "-u", "user:secret"
    )
    assert rc == 0
    assert out.strip() == "* SEARCH 1"


async def test_curl_wrong_password_is_refused(running: Running) -> None:
    rc, _ = await _curl("--url", f"imap://127.0.0.1:{running.port}/", "-u", "user:wrong")
    assert rc == 67  # CURLE_LOGIN_DENIED
