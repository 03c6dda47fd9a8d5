"""offlineimap pulling the corpus into a Maildir through the bridge, then a second run
that carries a flag change made in the Maildir back to Outlook.

Every message must arrive with the bytes the bridge serves as BODY[]. offlineimap 8 does
not store what it fetched verbatim: it parses it with the stdlib ``email`` package and
writes it back out (LF line ends where it re-generated, CRLF left inside payloads it
could not parse, an empty line added between nested closing delimiters, a missing close
delimiter supplied). So each Maildir file must equal exactly that transformation of the
bridge's BODY[], and BODY[] must equal what was delivered to the mailbox.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import os
from pathlib import Path

from tests.e2e.conftest import RunningBridge

from .helpers import PASSWORD, bridge_bodies, message_id, run_client, seed_corpus


def _rc(tmp: Path, port: int) -> tuple[Path, Path]:
    maildir = tmp / "Mail"
    maildir.mkdir()
    rc = tmp / "offlineimaprc"
    rc.write_text(
        f"""[general]
accounts = bridge
metadata = {tmp / "metadata"}
ui = basic
maxsyncaccounts = 1

[Account bridge]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {maildir}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = alice
remotepass = {PASSWORD}
ssl = no
starttls = no
maxconnections = 2
folderfilter = lambda name: name in ["INBOX", "Projects"]
"""
    )
    return rc, maildir


# offlineimap 8 (folder/Base.py) parses what it fetches with this policy (CRLF) and
# writes it to the Maildir with the same policy and LF line ends.
_OFFLINEIMAP_POLICY = email.policy.default.clone(
    cte_type="8bit", utf8=True, refold_source="none", linesep="\r\n"
)


def _as_offlineimap_stores(served: bytes) -> bytes:
    parsed = email.parser.BytesParser(policy=_OFFLINEIMAP_POLICY).parsebytes(served)
    return parsed.as_bytes(policy=_OFFLINEIMAP_POLICY.clone(linesep="\n"))


def _maildir(folder: Path) -> dict[str, tuple[str, bytes]]:
    out: dict[str, tuple[str, bytes]] = {}
    for sub in ("cur", "new"):
        for path in (folder / sub).iterdir():
            data = path.read_bytes()
            flags = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            out[message_id(data)] = (flags, data)
    return out


async def test_offlineimap_pull_is_byte_identical(
    running_bridge: RunningBridge, tmp_path: Path
) -> None:
    bridge = running_bridge
    sim, alice = bridge.sim, bridge.tenant.alice.id
    projects = sim.create_folder(alice, "Projects")
    seeded = seed_corpus(bridge, alice, ["inbox", projects], count=24, seed=7)
    await bridge.sync_now("alice")
    rc, maildir = _rc(tmp_path, bridge.imap_port)

    await run_client("offlineimap", "-c", str(rc), "-o", "-u", "basic", timeout=90)

    for folder, key in (("INBOX", "inbox"), ("Projects", projects)):
        served = await asyncio.to_thread(bridge_bodies, bridge.imap_port, "alice", folder)
        local = _maildir(maildir / folder)
        assert len(local) == len(served) == len(seeded[key]) > 5
        for body in served.values():
            stored = local[message_id(body)][1]
            assert stored == _as_offlineimap_stores(body), message_id(body)
        # ... and the bridge serves exactly what was delivered to the mailbox.
        assert sorted(served.values()) == sorted(seeded[key])
        # Read state travels as the S flag.
        for m in sim.messages(alice, key):
            flags, _ = local[m["internetMessageId"]]
            assert ("S" in flags) == m["isRead"], m["internetMessageId"]

    # Two-way: a flag set in the Maildir reaches Outlook on the next run.
    local = _maildir(maildir / "INBOX")
    target = next(mid for mid, (flags, _) in local.items() if "F" not in flags)
    path = next(p for p in (maildir / "INBOX").glob("*/*") if message_id(p.read_bytes()) == target)
    base, _, flags = path.name.partition(":2,")
    os.rename(path, path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags + 'F'))}")
    await run_client("offlineimap", "-c", str(rc), "-o", "-u", "basic", timeout=90)
    flagged = {
        m["internetMessageId"]
        for m in sim.messages(alice, "inbox")
        if m["flag"]["flagStatus"] == "flagged"
    }
    assert flagged == {target}
