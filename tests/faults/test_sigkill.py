"""SIGKILL of the bridge process at chosen points (issue 5 "Crash safety", issue 8).

The bridge runs as ``python -m bridge serve`` in a child process; the Graph simulator
stays up in the test process. Points:

- initial sync and delta apply: killed once some, not all, of the new messages were
  committed (the test polls the bridge's SQLite database read-only);
- APPEND, COPY/MOVE and SMTP submission, before and after Graph accepted the request:
  ``Gate`` holds that one Graph request inside the simulator — *before* its handler ran
  (then the request is dropped: Graph never saw it) or *after* (Graph did it and its
  answer is held back) — while the test kills the bridge. The client then reconnects to
  the restarted bridge and retries the command, as mail clients do.

After every restart: all invariants of ``assert_consistent`` on the affected folders,
and for SMTP exactly one sent message for the ``250``.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    BridgeProcess,
    Snapshot,
    _check,
    _quote,
    assert_consistent,
    assert_sent_once,
    bridge_process,
    deliver_many,
    imap_login,
    make_mime,
    message_id,
    sim_message_ids,
    smtp_send_with_retries,
    snapshot,
)

APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")
FOLDERS = ("Projects", "Clients", "Archive2026")


# ---------------------------------------------------------------------------- helpers
async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_synced(bridge: BridgeProcess, mailbox: str, count: int) -> None:
    """Poll like a client until the mailbox shows ``count`` messages (the restarted
    bridge syncs by itself; the test never nudges it)."""
    deadline = time.monotonic() + 60
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await asyncio.to_thread(snapshot, bridge.imap_port, mailbox)
            if last.exists == count:
                return
        except (OSError, imaplib.IMAP4.error, AssertionError) as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{mailbox} never showed {count} messages: {last!r}")


def db_snapshot(bridge: BridgeProcess, folder_id: str) -> Snapshot:
    """What the killed bridge had committed for a folder (all a client could have seen)."""
    import sqlite3

    uri = f"file:{bridge.db}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        row = conn.execute(
            "SELECT uidvalidity FROM ms_folders WHERE account_id = 'alice' AND folder_id = ?",
            (folder_id,),
        ).fetchone()
        rows = conn.execute(
            "SELECT uid, internet_message_id FROM ms_messages"
            " WHERE account_id = 'alice' AND folder_id = ?",
            (folder_id,),
        ).fetchall()
    assert row is not None, f"folder {folder_id} was never recorded"
    return Snapshot(int(row[0]), len(rows), {int(u): m or "" for u, m in rows})


def committed(bridge: BridgeProcess) -> int:
    return bridge.db_count("SELECT COUNT(*) FROM ms_messages WHERE account_id = 'alice'")


def folder_ids(sim: Any, user: Any) -> dict[str, str]:
    return {f["displayName"]: f["id"] for f in sim.folders(user)}


@contextlib.asynccontextmanager
async def running(bridge: BridgeProcess) -> Any:
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


class Gate:
    """Holds one kind of Graph request inside the simulator while the test kills the
    bridge. ``before``: the request waits before the simulator acts on it and is then
    dropped (Graph never did it). ``after``: the simulator acts, then the answer waits
    and is lost with the connection."""

    def __init__(self, sim: Any, matches: Callable[[Any], bool], point: str) -> None:
        self.sim = sim
        self.matches = matches
        self.point = point
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.original = sim.pipeline.handle
        self.armed = True

    async def handle(self, req: Any, abort: Callable[[], None] | None = None) -> Any:
        if not (self.armed and self.matches(req)):
            return await self.original(req, abort)
        self.armed = False
        if self.point == "after":
            response = await self.original(req, abort)
        self.arrived.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        if abort is not None:
            abort()
        return None if self.point == "before" else response

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(self.sim.pipeline, "handle", self.handle)

    async def kill_when_held(self, bridge: BridgeProcess) -> None:
        await wait_for(self.arrived.is_set, "the gated Graph request")
        bridge.kill()
        await bridge.wait()
        self.release.set()


def _is(method: str, suffix: str) -> Callable[[Any], bool]:
    return lambda req: req.method == method and req.path.lower().rstrip("/").endswith(suffix)


# ---------------------------------------------------------------------------- sync
async def test_sigkill_during_initial_sync(
    tenant: Any, tmp_path: Path, matrix: Callable[[str, str], None]
) -> None:
    matrix("SIGKILL mid-sync", "initial sync + FETCH")
    sim, alice = tenant.sim, tenant.alice
    await asyncio.to_thread(deliver_many, sim, alice, 20)
    for n, name in enumerate(FOLDERS):
        sim.create_folder(alice, name)
        await asyncio.to_thread(
            _deliver_to, sim, alice, folder_ids(sim, alice)[name], 20, 100 * (n + 1)
        )
    bridge = await bridge_process(tenant, tmp_path)
    sim.set_faults(latency=0.15)  # every folder is its own transaction: widen the gaps
    try:
        await bridge.start()
        await wait_for(lambda: committed(bridge) > 0, "the first committed messages")
        bridge.kill()
        await bridge.wait()
    finally:
        sim.faults.clear()
    partial = committed(bridge)
    assert 0 < partial < 80, f"the kill did not land mid-sync ({partial} committed)"
    ids = folder_ids(sim, alice)
    by_name = {"INBOX": _inbox_id(sim, alice), **{name: ids[name] for name in FOLDERS}}
    # What the killed bridge had committed is what a client could have seen: it must
    # survive the restart unchanged.
    before = {
        name: db_snapshot(bridge, folder_id)
        for name, folder_id in by_name.items()
        if _recorded(bridge, folder_id)
    }
    async with running(bridge):
        for name in ("INBOX", *FOLDERS):
            await wait_synced(bridge, name, 20)
            await asyncio.to_thread(
                assert_consistent,
                sim,
                alice,
                bridge.imap_port,
                mailbox=name,
                folder="inbox" if name == "INBOX" else ids[name],
                before=before.get(name),
                check_bodies=name == "INBOX",
            )


def _deliver_to(sim: Any, user: Any, folder: str, count: int, start: int) -> None:
    from tests.faults.harness import BASE_TIME

    for n in range(start, start + count):
        sim.deliver(
            user,
            make_mime(n, "sender@example.net", user.mail),
            folder=folder,
            received=BASE_TIME,
        )


def _inbox_id(sim: Any, user: Any) -> str:
    return next(f["id"] for f in sim.folders(user) if f["wellKnownName"] == "inbox")


def _recorded(bridge: BridgeProcess, folder_id: str) -> bool:
    return (
        bridge.db_count(
            "SELECT COUNT(*) FROM ms_folders WHERE account_id = 'alice' AND folder_id = ?",
            folder_id,
        )
        > 0
    )


async def test_sigkill_during_delta_apply(
    tenant: Any, tmp_path: Path, matrix: Callable[[str, str], None]
) -> None:
    matrix("SIGKILL mid-sync", "delta apply")
    sim, alice = tenant.sim, tenant.alice
    await asyncio.to_thread(deliver_many, sim, alice, 5)
    for name in FOLDERS:
        sim.create_folder(alice, name)
    bridge = await bridge_process(tenant, tmp_path)
    ids = folder_ids(sim, alice)
    async with running(bridge):
        await wait_synced(bridge, "INBOX", 5)
        for name in FOLDERS:
            await wait_synced(bridge, name, 0)
        before = {"INBOX": await asyncio.to_thread(snapshot, bridge.imap_port)}
        for name in FOLDERS:
            before[name] = await asyncio.to_thread(snapshot, bridge.imap_port, name)
        start = committed(bridge)
        sim.set_faults(latency=0.15)
        try:
            await asyncio.to_thread(deliver_many, sim, alice, 20, start=6)
            for n, name in enumerate(FOLDERS):
                await asyncio.to_thread(_deliver_to, sim, alice, ids[name], 20, 100 * (n + 1))
            await wait_for(lambda: committed(bridge) > start, "the first delta commit")
            bridge.kill()
            await bridge.wait()
        finally:
            sim.faults.clear()
    partial = committed(bridge) - start
    assert 0 < partial < 80, f"the kill did not land mid-delta ({partial} committed)"
    # What was committed before the kill (the old UIDs and the first new ones) is what a
    # client could have seen; all of it must keep its UIDs.
    for name in before:
        folder_id = _inbox_id(sim, alice) if name == "INBOX" else ids[name]
        committed_then = db_snapshot(bridge, folder_id)
        assert committed_then.uidvalidity == before[name].uidvalidity
        assert before[name].by_uid.items() <= committed_then.by_uid.items()
        before[name] = committed_then
    async with running(bridge):
        for name, count in (("INBOX", 25), *((f, 20) for f in FOLDERS)):
            await wait_synced(bridge, name, count)
            await asyncio.to_thread(
                assert_consistent,
                sim,
                alice,
                bridge.imap_port,
                mailbox=name,
                folder="inbox" if name == "INBOX" else ids[name],
                before=before[name],
            )


# ---------------------------------------------------------------------------- APPEND
def _append(port: int, mime: bytes) -> bytes:
    imap = imap_login(port)
    try:
        typ, data = imap.append("INBOX", r"(\Seen)", None, mime)
        _check(typ, data, "APPEND")
        return bytes(data[0])
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


@pytest.mark.parametrize("point", ["before", "after"])
async def test_sigkill_during_append_then_client_retries(
    point: str,
    tenant: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    matrix: Callable[[str, str], None],
) -> None:
    matrix(f"SIGKILL {point} Graph accepted", "APPEND")
    sim, alice = tenant.sim, tenant.alice
    await asyncio.to_thread(deliver_many, sim, alice, 3)
    bridge = await bridge_process(tenant, tmp_path)
    mime = make_mime(700, alice.mail, "x@example.net", tag="crash-append")
    mid = message_id(700, "crash-append")
    gate = Gate(sim, _is("POST", "/messages"), point)
    async with running(bridge):
        await wait_synced(bridge, "INBOX", 3)
        before = await asyncio.to_thread(snapshot, bridge.imap_port)
        gate.install(monkeypatch)
        client = asyncio.ensure_future(asyncio.to_thread(_append, bridge.imap_port, mime))
        await gate.kill_when_held(bridge)
        with pytest.raises((OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error)):
            await client  # the connection died under the client
    assert sim_message_ids(sim, alice, "inbox")[mid] == (1 if point == "after" else 0)
    async with running(bridge):
        answer = await asyncio.to_thread(_append, bridge.imap_port, mime)  # the client's retry
        await wait_synced(bridge, "INBOX", 4)
        after = await asyncio.to_thread(
            assert_consistent, sim, alice, bridge.imap_port, before=before
        )
    assert sim_message_ids(sim, alice, "inbox")[mid] == 1, "the retried APPEND duplicated"
    found = APPENDUID.search(answer)
    assert found is not None, answer
    assert after.by_uid[int(found.group(2))] == mid


# ---------------------------------------------------------------------------- COPY/MOVE
def _transfer(port: int, command: str, uids: list[int], dest: str) -> None:
    imap = imap_login(port)
    try:
        _check(*imap.select("INBOX"), "SELECT")
        _check(*imap.uid(command, ",".join(map(str, uids)), _quote(dest)), command)
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("command", ["COPY", "MOVE"])
async def test_sigkill_during_copy_move(
    command: str,
    point: str,
    tenant: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    matrix: Callable[[str, str], None],
) -> None:
    matrix(f"SIGKILL {point} Graph accepted", command)
    sim, alice = tenant.sim, tenant.alice
    await asyncio.to_thread(deliver_many, sim, alice, 4)
    sim.create_folder(alice, "Projects")
    projects = folder_ids(sim, alice)["Projects"]
    bridge = await bridge_process(tenant, tmp_path)
    # Copy/move go out as $batch; the gate holds the inner request (one message, so the
    # batch holds nothing else that could run past the gate).
    gate = Gate(sim, _is("POST", f"/{command.lower()}"), point)
    async with running(bridge):
        await wait_synced(bridge, "INBOX", 4)
        await wait_synced(bridge, "Projects", 0)
        before = await asyncio.to_thread(snapshot, bridge.imap_port)
        projects_before = await asyncio.to_thread(snapshot, bridge.imap_port, "Projects")
        uids = sorted(before.by_uid)[:1]
        gate.install(monkeypatch)
        client = asyncio.ensure_future(
            asyncio.to_thread(_transfer, bridge.imap_port, command, uids, "Projects")
        )
        await gate.kill_when_held(bridge)
        with pytest.raises((OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error)):
            await client
    chosen = {before.by_uid[uid] for uid in uids}
    async with running(bridge):
        if command == "MOVE":
            # The client reconnects and repeats the MOVE of what it still sees in INBOX.
            await wait_synced(bridge, "INBOX", len(sim.messages(alice, "inbox")))
            now = await asyncio.to_thread(snapshot, bridge.imap_port)
            still = [uid for uid in uids if uid in now.by_uid]
            if still:
                await asyncio.to_thread(_transfer, bridge.imap_port, "MOVE", still, "Projects")
            expected_inbox = 3
        else:
            expected_inbox = 4
        expected_projects = len(sim.messages(alice, projects))
        await wait_synced(bridge, "INBOX", expected_inbox)
        await wait_synced(bridge, "Projects", expected_projects)
        await asyncio.to_thread(assert_consistent, sim, alice, bridge.imap_port, before=before)
        dest = await asyncio.to_thread(
            assert_consistent,
            sim,
            alice,
            bridge.imap_port,
            mailbox="Projects",
            folder=projects,
            before=projects_before,
        )
    if command == "MOVE":
        assert set(dest.by_uid.values()) == chosen
        assert not chosen & set(sim_message_ids(sim, alice, "inbox"))
    else:
        # Without a retry, a COPY cut short leaves at most what Graph did, each once.
        assert set(dest.by_uid.values()) == (chosen if point == "after" else set())


# ---------------------------------------------------------------------------- SMTP
@pytest.mark.parametrize("point", ["before", "after"])
async def test_sigkill_during_smtp_submission_then_client_retries(
    point: str,
    tenant: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    matrix: Callable[[str, str], None],
) -> None:
    matrix(f"SIGKILL {point} Graph accepted", "SMTP send")
    sim, alice, bob = tenant.sim, tenant.alice, tenant.bob
    bridge = await bridge_process(tenant, tmp_path)
    mime = make_mime(1, alice.mail, bob.mail, tag=f"crash-smtp-{point}")
    mid = message_id(1, f"crash-smtp-{point}")
    gate = Gate(sim, _is("POST", "/sendmail"), point)
    async with running(bridge):
        await wait_synced(bridge, "INBOX", 0)
        gate.install(monkeypatch)
        first = asyncio.ensure_future(
            asyncio.to_thread(
                smtp_send_with_retries, bridge.smtp_port, alice.mail, bob.mail, mime, 1
            )
        )
        await gate.kill_when_held(bridge)
        outcome = await first
    assert outcome[-1] != "250", outcome
    sent_before_retry = [r for r in sim.sent_log(alice) if mid.encode() in bytes(r.mime)]
    assert len(sent_before_retry) == (1 if point == "after" else 0)
    async with running(bridge):
        outcomes = await asyncio.to_thread(
            smtp_send_with_retries, bridge.smtp_port, alice.mail, bob.mail, mime
        )
    assert outcomes[-1] == "250", outcomes
    assert_sent_once(sim, alice, mid, answered_250=True)
