"""Helpers shared by the real-client tests: seeding the simulator with the corpus,
running a client program without blocking the bridge's event loop, and reading what the
bridge serves over IMAP (the reference every client's download is compared against).

Imports only the test harness and the corpus; never the bridge's own Graph client.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.corpus import build_corpus
from tests.e2e.conftest import PASSWORD, RunningBridge

__all__ = [
    "PASSWORD",
    "ClientRun",
    "bridge_bodies",
    "lf",
    "message_id",
    "run_client",
    "seed_corpus",
]

SEED_START = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ClientRun:
    """What a client program printed and how it exited."""

    returncode: int
    output: str


async def run_client(
    *argv: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    check: bool = True,
) -> ClientRun:
    """Run a real client as a subprocess (the bridge keeps serving in this loop)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=full_env,
        cwd=str(cwd) if cwd else None,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(
            f"{argv[0]} did not finish within {timeout} s:\n{out.decode(errors='replace')}"
        ) from None
    run = ClientRun(proc.returncode or 0, out.decode(errors="replace"))
    if check:
        assert run.returncode == 0, f"{argv[0]} exited {run.returncode}:\n{run.output}"
    return run


def seed_corpus(
    bridge: RunningBridge,
    user_id: str,
    folders: Iterable[str],
    count: int,
    seed: int = 1,
    read_every: int = 3,
    spacing: timedelta = timedelta(minutes=1),
) -> dict[str, list[bytes]]:
    """Deliver ``count`` corpus messages round-robin into ``folders`` (folder ids or
    well-known names), every ``read_every``-th one already read, received ``spacing``
    apart from ``SEED_START``. Returns what each folder received, in delivery order."""
    targets = list(folders)
    delivered: dict[str, list[bytes]] = {f: [] for f in targets}
    for n, mime in enumerate(build_corpus(count, seed=seed)):
        folder = targets[n % len(targets)]
        bridge.sim.deliver(
            user_id,
            mime,
            folder=folder,
            received=SEED_START + n * spacing,
            is_read=n % read_every == 0,
        )
        delivered[folder].append(mime)
    return delivered


def lf(data: bytes) -> bytes:
    """Line endings as Maildir clients store them (mbsync, offlineimap: LF)."""
    return data.replace(b"\r\n", b"\n")


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def message_id(data: bytes) -> str:
    """The Message-ID of raw message bytes (the corpus gives every message one)."""
    found = _MESSAGE_ID.search(data)
    assert found is not None, data[:300]
    return found.group(1).decode()


_FETCH_UID = re.compile(rb"UID (\d+)")


def bridge_bodies(port: int, login: str, mailbox: str) -> dict[int, bytes]:
    """UID -> BODY[] exactly as the bridge serves it (blocking: call in a thread)."""
    imap = imaplib.IMAP4("127.0.0.1", port)
    try:
        imap.login(login, PASSWORD)
        typ, data = imap.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK", data
        out: dict[int, bytes] = {}
        if int(data[0] or 0) == 0:
            return out
        typ, fetched = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        assert typ == "OK", fetched
        for item in fetched:
            if isinstance(item, tuple):
                found = _FETCH_UID.search(item[0])
                assert found is not None, item[0]
                out[int(found.group(1))] = item[1]
        return out
    finally:
        imap.logout()
