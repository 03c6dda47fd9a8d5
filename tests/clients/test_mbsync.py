"""mbsync (isync 1.4) syncing a Maildir both ways with the bridge over the simulator.

Changes are made on both sides between runs — in Outlook (the simulator's control API)
and in the Maildir (renaming ``:2,`` flag suffixes, deleting and adding files, a new
folder) — and afterwards the simulator's mailbox and the Maildir must agree message by
message (by Message-ID), flag by flag. A further run with nothing changed must change
nothing on either side.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from pathlib import Path

from tests.corpus import corpus_message
from tests.e2e.conftest import RunningBridge

from .helpers import PASSWORD, bridge_bodies, lf, message_id, run_client, seed_corpus

# Maildir info letters (maildir(5)) <-> what Graph keeps.
_SEEN, _FLAGGED = "S", "F"


def _rc(tmp: Path, port: int) -> tuple[Path, Path]:
    maildir = tmp / "Mail"
    maildir.mkdir()
    rc = tmp / "mbsyncrc"
    # isync 1.4 spells it SSLType (TLSType is 1.5); the bridge listens without TLS on
    # loopback in the test harness, so LOGIN is allowed explicitly.
    rc.write_text(
        f"""IMAPAccount bridge
Host 127.0.0.1
Port {port}
User alice
Pass "{PASSWORD}"
SSLType None
AuthMechs LOGIN
PipelineDepth 8

IMAPStore remote
Account bridge

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel mail
Far :remote:
Near :local:
Patterns INBOX Projects Projects/* Outlook*
Create Both
Expunge Both
Sync All
SyncState *
"""
    )
    return rc, maildir


async def _mbsync(rc: Path) -> str:
    return (await run_client("mbsync", "-V", "-c", str(rc), "-a", timeout=90)).output


def _maildir(maildir: Path, folder: str) -> dict[str, tuple[str, Path]]:
    """Message-ID -> (flag letters, file) of every message in a Maildir folder."""
    found: dict[str, tuple[str, Path]] = {}
    for sub in ("cur", "new"):
        for path in sorted((maildir / folder / sub).iterdir()):
            flags = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            mid = message_id(path.read_bytes())
            assert mid not in found, f"{mid} twice in Maildir {folder}"
            found[mid] = (flags, path)
    return found


def _outlook(bridge: RunningBridge, folder: str) -> dict[str, str]:
    """Message-ID -> flag letters of every message in a simulator folder."""
    out: dict[str, str] = {}
    for m in bridge.sim.messages(bridge.tenant.alice.id, folder):
        letters = (_FLAGGED if m["flag"]["flagStatus"] == "flagged" else "") + (
            _SEEN if m["isRead"] else ""
        )
        assert m["internetMessageId"] not in out, f"{m['internetMessageId']} twice in {folder}"
        out[m["internetMessageId"]] = letters
    return out


_TUID = re.compile(rb"^X-TUID: [^\n]*\n", re.MULTILINE)


def _without_tuid(data: bytes) -> bytes:
    """mbsync writes an ``X-TUID:`` header into every message it stores (isync's
    own bookkeeping, inserted at the end of the header); remove exactly that line."""
    stripped, count = _TUID.subn(b"", data, count=1)
    assert count == 1, data[:200]
    return stripped


def _words(text: str) -> list[str]:
    """The words of a text or HTML body (Graph may keep a text body as HTML)."""
    return html.unescape(re.sub(r"<[^>]*>", " ", text)).split()


def _letters(flags: str) -> str:
    return "".join(ch for ch in flags if ch in (_FLAGGED, _SEEN))


def _folder_id(bridge: RunningBridge, name: str) -> str:
    for f in bridge.sim.folders(bridge.tenant.alice.id):
        if f["displayName"] == name:
            return str(f["id"])
    raise AssertionError(f"no folder {name!r} in the simulator")


def _rename_flags(path: Path, flags: str) -> Path:
    base = path.name.split(":2,", 1)[0]
    target = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
    os.rename(path, target)
    return target


def _new_maildir_file(folder: Path, name: str, data: bytes) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "new" / name).write_bytes(lf(data))


def _assert_agree(bridge: RunningBridge, maildir: Path, pairs: dict[str, str]) -> None:
    for local, remote in pairs.items():
        near = {mid: _letters(flags) for mid, (flags, _) in _maildir(maildir, local).items()}
        far = _outlook(bridge, remote)
        assert near == far, f"Maildir {local} and Outlook {remote} disagree"


async def test_mbsync_two_way_sync(running_bridge: RunningBridge, tmp_path: Path) -> None:
    bridge = running_bridge
    sim, alice = bridge.sim, bridge.tenant.alice.id
    projects = sim.create_folder(alice, "Projects")
    clients = sim.create_folder(alice, "Clients", parent=projects)
    seeded = seed_corpus(bridge, alice, ["inbox", "inbox", projects, clients], count=30)
    await bridge.sync_now("alice")
    rc, maildir = _rc(tmp_path, bridge.imap_port)

    # --- first run: a full pull ----------------------------------------------------
    await _mbsync(rc)
    pairs = {"INBOX": "inbox", "Projects": projects, "Projects/Clients": clients}
    _assert_agree(bridge, maildir, pairs)
    inbox = _maildir(maildir, "INBOX")
    assert len(inbox) == len(seeded["inbox"]) > 15
    assert len(_maildir(maildir, "Projects")) == len(seeded[projects]) > 5
    assert len(_maildir(maildir, "Projects/Clients")) == len(seeded[clients]) > 5
    # What mbsync stored is what the bridge serves (mbsync stores LF line ends and adds
    # its X-TUID tracking header) and what was delivered.
    served = await asyncio.to_thread(bridge_bodies, bridge.imap_port, "alice", "INBOX")
    assert sorted(lf(b) for b in served.values()) == sorted(
        _without_tuid(path.read_bytes()) for _, path in inbox.values()
    )
    assert sorted(lf(b) for b in served.values()) == sorted(lf(m) for m in seeded["inbox"])

    # --- changes on both sides -----------------------------------------------------
    by_mid = {m["internetMessageId"]: m for m in sim.messages(alice, "inbox")}
    unread = sorted(mid for mid, m in by_mid.items() if not m["isRead"])
    read = sorted(mid for mid, m in by_mid.items() if m["isRead"])
    # Outlook: read one, flag one, delete one, move one to a subfolder, new folder + mail.
    sim.set_read(alice, by_mid[unread[0]]["id"], True)
    sim.set_flag(alice, by_mid[unread[1]]["id"], True)
    sim.delete(alice, by_mid[unread[2]]["id"])
    sim.move(alice, by_mid[unread[3]]["id"], clients)
    outlook_folder = sim.create_folder(alice, "Outlook Made")
    outlook_mail = corpus_message("alternative", seed=501)
    sim.deliver(alice, outlook_mail, folder=outlook_folder)
    # Maildir: flag one, read one, unread one, delete one, a new message, a new folder.
    _rename_flags(inbox[unread[4]][1], "F")
    _rename_flags(inbox[unread[5]][1], "S")
    _rename_flags(inbox[read[0]][1], "")
    os.unlink(inbox[read[1]][1])
    appended = corpus_message("plain", seed=502)
    _new_maildir_file(maildir / "INBOX", "1790000000.M1P1.test", appended)
    created = corpus_message("mixed", seed=503)
    _new_maildir_file(maildir / "Projects" / "From Maildir", "1790000001.M2P1.test", created)

    # --- second run: both directions -----------------------------------------------
    await bridge.sync_now("alice")
    await _mbsync(rc)
    await bridge.sync_now("alice")
    # The new Maildir folder became a child folder of Projects in Outlook.
    from_maildir = _folder_id(bridge, "From Maildir")
    parent = next(f for f in sim.folders(alice) if f["id"] == from_maildir)["parentFolderId"]
    assert parent == projects
    pairs |= {"Outlook Made": outlook_folder, "Projects/From Maildir": from_maildir}
    _assert_agree(bridge, maildir, pairs)

    near_inbox = _maildir(maildir, "INBOX")
    far_inbox = _outlook(bridge, "inbox")
    far_clients = _outlook(bridge, clients)
    assert far_inbox[unread[0]] == "S" and near_inbox[unread[0]][0] == "S"
    assert far_inbox[unread[1]] == "F" and _letters(near_inbox[unread[1]][0]) == "F"
    assert unread[2] not in far_inbox and unread[2] not in near_inbox
    assert unread[3] not in far_inbox and unread[3] in far_clients
    assert unread[3] in _maildir(maildir, "Projects/Clients")
    assert far_inbox[unread[4]] == "F" and far_inbox[unread[5]] == "S"
    assert far_inbox[read[0]] == ""
    assert read[1] not in far_inbox and read[1] not in near_inbox
    assert message_id(appended) in far_inbox
    assert list(_maildir(maildir, "Outlook Made")) == [message_id(outlook_mail)]
    assert list(_outlook(bridge, from_maildir)) == [message_id(created)]
    assert len(far_inbox) == len(seeded["inbox"]) - 3 + 1

    # The uploaded messages exist in Outlook with the same content: Graph's view of
    # them, and the bytes the bridge serves for them, match what was in the Maildir.
    new_in_sim = next(
        m for m in sim.messages(alice, "inbox") if m["internetMessageId"] == message_id(appended)
    )
    assert new_in_sim["isDraft"] is False
    appended_text = lf(appended).split(b"\n\n", 1)[1].decode()
    assert _words(new_in_sim["body"]["content"]) == _words(appended_text)
    created_in_sim = sim.messages(alice, from_maildir)[0]
    assert created_in_sim["hasAttachments"] is True
    assert created_in_sim["attachmentNames"]
    served_new = await asyncio.to_thread(
        bridge_bodies, bridge.imap_port, "alice", "Projects/From Maildir"
    )
    # mbsync uploads with its X-TUID header; the bridge serves the uploaded bytes.
    assert [_without_tuid(lf(b)) for b in served_new.values()] == [lf(created)]

    # --- third run: nothing to do ----------------------------------------------------
    before_near = {
        folder: sorted(p.name for p in (maildir / folder).glob("*/*")) for folder in pairs
    }
    before_far = {folder: _outlook(bridge, remote) for folder, remote in pairs.items()}
    await bridge.sync_now("alice")
    await _mbsync(rc)
    assert {
        folder: sorted(p.name for p in (maildir / folder).glob("*/*")) for folder in pairs
    } == before_near
    assert {folder: _outlook(bridge, remote) for folder, remote in pairs.items()} == before_far


async def test_mbsync_pull_through_a_slow_and_failing_graph(
    running_bridge: RunningBridge, tmp_path: Path
) -> None:
    """Latency and injected 503s (with Retry-After) on Graph: mbsync still gets every
    message exactly once, and the bridge never runs more than 4 Graph requests at once
    for the mailbox."""
    bridge = running_bridge
    sim, alice = bridge.sim, bridge.tenant.alice.id
    projects = sim.create_folder(alice, "Projects")
    seeded = seed_corpus(bridge, alice, ["inbox", projects], count=24, seed=17)
    sim.reset_counters(alice)
    sim.set_faults(latency=0.02, jitter=0.02, error_rate=0.15, retry_after=0.05, seed=17)
    # Besides the random ones, certainly a 429 and 503s where it hurts: on body downloads.
    sim.faults.fail_next("message.value", count=2, status=503, retry_after=0.05)
    sim.faults.fail_next("message.value", count=1, status=429, retry_after=0.05)
    await bridge.sync_now("alice")
    rc, maildir = _rc(tmp_path, bridge.imap_port)
    await _mbsync(rc)
    sim.set_faults(latency=0.0, jitter=0.0, error_rate=0.0)
    assert not sim.faults.rules, "the injected failures were never hit"

    counters = sim.counters(alice)
    assert counters.max_concurrency <= 4, counters
    assert counters.by_kind, counters
    for folder, key in (("INBOX", "inbox"), ("Projects", projects)):
        local = _maildir(maildir, folder)
        assert sorted(_without_tuid(path.read_bytes()) for _, path in local.values()) == sorted(
            lf(m) for m in seeded[key]
        )
    _assert_agree(bridge, maildir, {"INBOX": "inbox", "Projects": projects})
