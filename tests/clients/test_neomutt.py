"""neomutt against the whole bridge: the index of INBOX as a user sees it (driven in a
detached tmux session, screen read with ``capture-pane``), a message opened in the
pager, and a message sent in batch mode through ``smtp_url``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningBridge

from .helpers import PASSWORD, run_client, seed_corpus

_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "xterm-256color"}


def _muttrc(tmp: Path, bridge: RunningBridge) -> Path:
    rc = tmp / "neomuttrc"
    rc.write_text(
        f"""set imap_user = "alice"
set imap_pass = "{PASSWORD}"
set folder = "imap://127.0.0.1:{bridge.imap_port}/"
set spoolfile = "+INBOX"
set ssl_starttls = no
set ssl_force_tls = no
set imap_check_subscribed = no
set header_cache = ""
set message_cachedir = ""
set sort = date-received
set index_format = "IDX %-40.40s ]"
set pager_index_lines = 0
set smtp_url = "smtp://alice@127.0.0.1:{bridge.smtp_port}/"
set smtp_pass = "{PASSWORD}"
set from = "{bridge.tenant.alice.mail}"
set realname = "Alice Anders"
set record = ""
set copy = no
set wait_key = no
set quit = yes
set confirmappend = no
set mark_old = no
set charset = "utf-8"
set send_charset = "utf-8"
"""
    )
    return rc


class Tmux:
    """A private tmux server (its own socket) holding one window."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"gmb-{uuid.uuid4().hex[:10]}"
        self.tmp = tmp

    async def cmd(self, *args: str) -> str:
        # HOME: neomutt (started by this tmux server) must not read the user's files.
        env = {**_ENV, "HOME": str(self.tmp)}
        run = await run_client("tmux", "-L", self.socket, *args, env=env, timeout=20)
        return run.output

    async def screen(self) -> str:
        return await self.cmd("capture-pane", "-p", "-t", "main")

    async def wait_for(self, predicate: object, what: str, timeout: float = 30.0) -> str:
        """Poll the screen until ``predicate(screen)`` holds (bounded, no fixed sleep)."""
        deadline = asyncio.get_running_loop().time() + timeout
        screen = ""
        while asyncio.get_running_loop().time() < deadline:
            screen = await self.screen()
            if predicate(screen):  # type: ignore[operator]
                return screen
            await asyncio.sleep(0.2)
        raise AssertionError(f"neomutt never showed {what}; last screen:\n{screen}")

    async def wait_closed(self, timeout: float = 30.0) -> None:
        """Wait until the program in the window exited (its session is gone)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            run = await run_client(
                "tmux", "-L", self.socket, "has-session", "-t", "main", check=False, timeout=20
            )
            if run.returncode != 0:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"neomutt did not exit; last screen:\n{await self.screen()}")


@pytest.fixture
async def tmux(tmp_path: Path) -> AsyncIterator[Tmux]:
    session = Tmux(tmp_path)
    try:
        yield session
    finally:
        await run_client("tmux", "-L", session.socket, "kill-server", check=False, timeout=20)


async def test_neomutt_shows_inbox_and_opens_a_message(
    running_bridge: RunningBridge, tmp_path: Path, tmux: Tmux
) -> None:
    bridge = running_bridge
    alice = bridge.tenant.alice.id
    seed_corpus(bridge, alice, ["inbox"], count=12, seed=13)
    await bridge.sync_now("alice")
    subjects = [
        m["subject"]
        for m in sorted(bridge.sim.messages(alice, "inbox"), key=lambda m: m["receivedDateTime"])
    ]
    rc = _muttrc(tmp_path, bridge)
    await tmux.cmd(
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        "160",
        "-y",
        "40",
        f"LANG=C.UTF-8 LC_ALL=C.UTF-8 neomutt -n -F {rc}",
    )
    screen = await tmux.wait_for(
        lambda s: s.count("IDX ") == len(subjects), f"{len(subjects)} index lines"
    )
    shown = [
        line.split("IDX ", 1)[1].rsplit(" ]", 1)[0].rstrip()
        for line in screen.splitlines()
        if "IDX " in line
    ]
    # Sorted by date received: exactly Outlook's subjects, decoded, in order.
    assert shown == [s[:40].rstrip() for s in subjects]
    assert "INBOX" in screen

    # neomutt puts the cursor on the first unread message; open it in the pager: its
    # body text appears.
    first = min(
        (m for m in bridge.sim.messages(alice, "inbox") if not m["isRead"]),
        key=lambda m: m["receivedDateTime"],
    )
    words = first["bodyPreview"].split()[:3]
    await tmux.cmd("send-keys", "-t", "main", "Enter")
    await tmux.wait_for(lambda s: " ".join(words) in s, f"the body of {first['subject']!r}")
    await tmux.cmd("send-keys", "-t", "main", "q")
    await tmux.wait_for(lambda s: "IDX " in s, "the index again")
    await tmux.cmd("send-keys", "-t", "main", "q")
    await tmux.wait_closed()
    # Reading it marked it read; neomutt stored \Seen when it closed the mailbox, and the
    # bridge wrote that through to Outlook.
    read = next(m for m in bridge.sim.messages(alice, "inbox") if m["id"] == first["id"])
    assert read["isRead"] is True


async def test_neomutt_sends_through_smtp_url(
    running_bridge: RunningBridge, tmp_path: Path
) -> None:
    bridge = running_bridge
    tenant = bridge.tenant
    rc = _muttrc(tmp_path, bridge)
    body = "Hallo Bob,\n\ngesendet mit neomutt — über die Brücke.\n"
    await run_client(
        "neomutt",
        "-n",
        "-F",
        str(rc),
        "-s",
        "neomutt batch send",
        "--",
        tenant.bob.mail,
        stdin=body.encode(),
        env={**_ENV, "HOME": str(tmp_path)},
        timeout=60,
    )
    received = [
        m
        for m in bridge.sim.messages(tenant.bob.id, "inbox")
        if m["subject"] == "neomutt batch send"
    ]
    assert len(received) == 1
    mime = bridge.sim.mime(tenant.bob.id, received[0]["id"])
    assert "gesendet mit neomutt — über die Brücke.".encode() in mime  # 8-bit UTF-8 intact
    sent = [r for r in bridge.sim.sent_log(tenant.alice.id) if b"neomutt batch send" in r.mime]
    assert len(sent) == 1 and [r.lower() for r in sent[0].recipients] == [tenant.bob.mail]
