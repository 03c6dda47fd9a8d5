"""Isolation (issue 5 "Isolation and safety"): an account's sessions touch only that
account's mailbox, whatever path a client tries.

alice is logged in; bob's mailbox (on the same bridge, same app registration) holds mail
whose every Subject and Message-ID carries a marker. alice tries bob's folders by name
(plain, path tricks, other-users namespaces, Graph folder ids), by UID (in her folders,
including after MOVE), as APPEND/COPY/MOVE targets, by CREATE, and by SMTP send-as.
Every attempt is refused or stays inside alice's mailbox; the marker never appears in
any byte alice receives, and bob's mailbox and sent log are unchanged at the end.
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from typing import Any

from tests.faults.harness import (
    PASSWORD,
    deliver_many,
    in_process_bridge,
    make_mime,
    smtp_send_with_retries,
)

MARKER = b"zq7hidden"  # in every Subject and Message-ID of bob's mail only


class RawImap:
    """A line-level IMAP client that keeps every byte the server sent."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.received = bytearray()
        self.buffer = b""
        self.counter = 0
        self._read_line()  # greeting

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.received += chunk
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        literal = re.search(rb"\{(\d+)\}$", line)
        if literal:
            size = int(literal.group(1))
            while len(self.buffer) < size:
                chunk = self.sock.recv(65536)
                assert chunk, "the server closed the connection"
                self.received += chunk
                self.buffer += chunk
            line += b"\r\n" + self.buffer[:size]
            self.buffer = self.buffer[size:]
            line += self._read_line()
        return line

    def command(self, text: str, literal: bytes | None = None) -> tuple[bytes, list[bytes]]:
        """Send one command (with an optional LITERAL+ argument); return its tagged
        status line and the untagged lines before it."""
        self.counter += 1
        tag = f"i{self.counter}"
        data = f"{tag} {text}".encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.sock.sendall(data + b"\r\n")
        untagged: list[bytes] = []
        while True:
            line = self._read_line()
            if line.startswith(tag.encode() + b" "):
                return line[len(tag) + 1 :], untagged
            untagged.append(line)

    def close(self) -> None:
        self.sock.close()


def _names_of_bob(bob_folder_id: str, bob: Any) -> list[str]:
    quoted = [
        "BobSecret",
        "bobsecret",
        "INBOX/../BobSecret",
        "/BobSecret",
        "./BobSecret",
        "~bob/INBOX",
        "~bob/BobSecret",
        "#shared/bob/INBOX",
        "#users/bob/INBOX",
        "Other Users/bob/INBOX",
        "Shared Folders/bob/BobSecret",
        f"{bob.mail}/INBOX",
        f"{bob.mail}/BobSecret",
        "bob/INBOX",
        bob_folder_id,
        f"users/{bob.id}/mailFolders/inbox",
    ]
    return [f'"{name}"' for name in quoted]


def alice_session(port: int, bob: Any, bob_folder_id: str, alice_uid_count: int) -> dict[str, Any]:
    imap = RawImap(port)
    results: dict[str, Any] = {"refused": [], "accepted": []}
    try:
        status, _ = imap.command(f'LOGIN alice "{PASSWORD}"')
        assert status.startswith(b"OK"), status
        status, _ = imap.command("LOGIN bob x")  # a second LOGIN is refused by state
        assert status.startswith(b"BAD"), status
        _, listing = imap.command('LIST "" "*"')
        results["list"] = listing
        for name in _names_of_bob(bob_folder_id, bob):
            for verb in ("SELECT", "EXAMINE", "STATUS {} (MESSAGES UIDNEXT)", "SUBSCRIBE"):
                command = f"{verb} {name}" if "{}" not in verb else verb.format(name)
                status, _ = imap.command(command)
                (results["refused"] if status.startswith(b"NO") else results["accepted"]).append(
                    (command, status)
                )
            status, _ = imap.command(f"APPEND {name}", make_mime(1, "a@x", "b@y", tag="aliceput"))
            (results["refused"] if status.startswith(b"NO") else results["accepted"]).append(
                (f"APPEND {name}", status)
            )
        # alice's own INBOX: every UID up to far beyond hers, every part of every message.
        status, _ = imap.command("SELECT INBOX")
        assert status.startswith(b"OK"), status
        _, fetched = imap.command("UID FETCH 1:1000 (UID BODY.PEEK[] ENVELOPE)")
        results["inbox_uids"] = [
            int(m.group(1)) for line in fetched for m in [re.search(rb"UID (\d+)", line)] if m
        ]
        _, searched = imap.command("UID SEARCH ALL")
        results["search"] = searched
        for target in _names_of_bob(bob_folder_id, bob)[:6]:
            for verb in ("UID COPY 1:*", "UID MOVE 1"):
                status, _ = imap.command(f"{verb} {target}")
                (results["refused"] if status.startswith(b"NO") else results["accepted"]).append(
                    (f"{verb} {target}", status)
                )
        # UIDs after MOVE: alice moves one of hers into her own folder, then probes UIDs
        # that exist only in bob's folder of the same name.
        status, _ = imap.command('CREATE "Projects"')
        assert status.startswith(b"OK"), status
        status, _ = imap.command('UID MOVE 1 "Projects"')
        assert status.startswith(b"OK"), status
        status, _ = imap.command('SELECT "Projects"')
        assert status.startswith(b"OK"), status
        _, fetched = imap.command("UID FETCH 1:1000 (UID BODY.PEEK[])")
        results["projects_uids"] = [
            int(m.group(1)) for line in fetched for m in [re.search(rb"UID (\d+)", line)] if m
        ]
        # CREATE of bob's folder name makes alice's own folder, empty.
        status, _ = imap.command('CREATE "BobSecret"')
        assert status.startswith(b"OK"), status
        status, untagged = imap.command('SELECT "BobSecret"')
        assert status.startswith(b"OK"), status
        results["created_exists"] = [ln for ln in untagged if ln.endswith(b" EXISTS")]
        imap.command("LOGOUT")
    finally:
        results["received"] = bytes(imap.received)
        imap.close()
    assert len(results["inbox_uids"]) == alice_uid_count
    return results


async def test_alice_cannot_reach_bobs_mailbox_by_any_path(tenant: Any, tmp_path: Path) -> None:
    sim, alice, bob = tenant.sim, tenant.alice, tenant.bob
    await asyncio.to_thread(deliver_many, sim, bob, 6, tag="zq7hidden")
    bob_folder = sim.create_folder(bob, "BobSecret")
    for n in range(20, 24):
        sim.deliver(
            bob, make_mime(n, "x@example.net", bob.mail, tag="zq7hidden"), folder=bob_folder
        )
    await asyncio.to_thread(deliver_many, sim, alice, 2, tag="alice")
    bob_before = {
        "inbox": sorted(m["id"] for m in sim.messages(bob, "inbox")),
        "secret": sorted(m["id"] for m in sim.messages(bob, bob_folder)),
        "folders": sorted(f["id"] for f in sim.folders(bob)),
    }
    async with in_process_bridge(tenant, tmp_path / "state") as bridge:
        await bridge.sync_until_clean("alice")
        await bridge.sync_until_clean("bob")
        results = await asyncio.to_thread(alice_session, bridge.imap_port, bob, bob_folder, 2)
        # SMTP: alice may not send as bob, neither in the envelope nor in From:.
        as_bob = make_mime(1, bob.mail, "carol@example.net", tag="bobsecret-forged")
        envelope = await asyncio.to_thread(
            smtp_send_with_retries, bridge.smtp_port, bob.mail, "carol@example.net", as_bob, 1
        )
        header = await asyncio.to_thread(
            smtp_send_with_retries, bridge.smtp_port, alice.mail, "carol@example.net", as_bob, 1
        )
    assert not results["accepted"], results["accepted"]
    # 16 names x (SELECT, EXAMINE, STATUS, SUBSCRIBE, APPEND) + 6 targets x (COPY, MOVE)
    assert len(results["refused"]) == 16 * 5 + 6 * 2, len(results["refused"])
    assert MARKER not in results["received"].lower(), "bob's mail reached alice's session"
    assert not any(b"BobSecret" in line for line in results["list"]), results["list"]
    assert results["projects_uids"] == [1], results["projects_uids"]
    assert results["created_exists"] == [b"* 0 EXISTS"], results["created_exists"]
    assert envelope[-1].startswith("550"), envelope
    assert header[-1].startswith("550"), header
    assert sim.sent_log(bob) == [] and sim.sent_log(alice) == []
    # bob's mailbox is exactly as it was.
    assert sorted(m["id"] for m in sim.messages(bob, "inbox")) == bob_before["inbox"]
    assert sorted(m["id"] for m in sim.messages(bob, bob_folder)) == bob_before["secret"]
    assert sorted(f["id"] for f in sim.folders(bob)) == bob_before["folders"]
    # what alice appended or created stayed in her mailbox (refused appends: nowhere).
    assert not [m for m in sim.messages(alice, "inbox") if "aliceput" in (m["subject"] or "")]
