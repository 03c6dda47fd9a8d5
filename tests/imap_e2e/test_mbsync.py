"""mbsync (isync 1.4) two-way sync between a Maildir and the bridge over real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.backend.types import FetchNeed, StoreOperation

from .conftest import Running


def _message(n: int) -> bytes:
    return (
        f"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
        f"Subject: sync {n}\r\nDate: Mon, 2 Nov 2026 10:00:0{n} +0000\r\n"
        f"Message-ID: <sync-{n}@example.test>\r\n\r\nbody {n}\r\n"
    ).encode()


def _config(tmp: Path, port: int) -> Path:
    maildir = tmp / "mail"
    maildir.mkdir()
    rc = tmp / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount bridge
Host 127.0.0.1
Port {port}
User user
Pass secret
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bridge

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel everything
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
Sync All
SyncState *
"""
    )
    return rc


async def _mbsync(rc: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        "mbsync",
        "-c",
        str(rc),
        "-a",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text


def _local(maildir: Path, folder: str) -> dict[str, str]:
    """Subject -> maildir flag letters of every message in ``folder``."""
    found = {}
    for sub in ("cur", "new"):
        for path in (maildir / folder / sub).iterdir():
            subject = next(
                line
                for line in path.read_bytes().decode().splitlines()
                if line.startswith("Subject:")
            )
            flags = path.name.split(":2,")[1] if ":2," in path.name else ""
            found[subject[len("Subject: ") :]] = flags
    return found


async def _remote(running: Running, folder: str) -> dict[str, frozenset[str]]:
    snap = await running.backend.select(folder, read_only=True)
    data = await running.backend.fetch(
        snap.mailbox_id, [m.uid for m in snap.messages], FetchNeed.FLAGS | FetchNeed.BODY
    )
    out = {}
    for d in data:
        subject = next(
            line for line in (d.body or b"").decode().splitlines() if line.startswith("Subject:")
        )
        out[subject[len("Subject: ") :]] = d.flags or frozenset()
    return out


_LETTERS = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R", "\\Draft": "D"}


def _letters(flags: frozenset[str]) -> str:
    return "".join(sorted(_LETTERS[f] for f in flags if f in _LETTERS))


async def test_two_way_sync(running: Running, tmp_path: Path) -> None:
    backend = running.backend
    for n in (1, 2, 3):
        await backend.append("INBOX", _message(n), frozenset({"\\Seen"} if n == 1 else ()), None)
    await backend.append("Archive", _message(4), frozenset({"\\Flagged"}), None)
    rc = _config(tmp_path, running.port)
    maildir = tmp_path / "mail"

    await _mbsync(rc)
    local = _local(maildir, "INBOX")
    assert local == {"sync 1": "S", "sync 2": "", "sync 3": ""}
    assert _local(maildir, "Archive") == {"sync 4": "F"}

    # Changes on the server: a new message, a flag change, a deletion.
    snap = await backend.select("INBOX", read_only=False)
    uids = [m.uid for m in snap.messages]
    await backend.append("INBOX", _message(5), frozenset(), None)
    await backend.store_flags(
        snap.mailbox_id, [uids[1]], StoreOperation.ADD, frozenset({"\\Flagged"})
    )
    await backend.store_flags(
        snap.mailbox_id, [uids[2]], StoreOperation.ADD, frozenset({"\\Deleted"})
    )
    await backend.expunge(snap.mailbox_id)
    # Changes in the Maildir: a new message, one marked seen.
    (maildir / "INBOX" / "new" / "1700000000.local6.host").write_bytes(_message(6))
    archived = [p for sub in ("cur", "new") for p in (maildir / "Archive" / sub).iterdir()]
    assert len(archived) == 1
    seen = archived[0]
    seen = seen.rename(maildir / "Archive" / "cur" / seen.name)
    seen.rename(seen.with_name(seen.name.split(":2,")[0] + ":2,FS"))

    await _mbsync(rc)
    await _mbsync(rc)  # a second run must find nothing left to do and change nothing

    inbox_remote = await _remote(running, "INBOX")
    inbox_local = _local(maildir, "INBOX")
    assert set(inbox_remote) == {"sync 1", "sync 2", "sync 5", "sync 6"}
    assert set(inbox_local) == set(inbox_remote)
    assert {k: _letters(v) for k, v in inbox_remote.items()} == inbox_local
    assert inbox_local["sync 2"] == "F"
    archive_remote = await _remote(running, "Archive")
    assert {k: _letters(v) for k, v in archive_remote.items()} == {"sync 4": "FS"}
    assert _local(maildir, "Archive") == {"sync 4": "FS"}
