"""Graph request economy of the cached backend, counted by the simulator (issue 5 goals).

An mbsync-like pull (LIST, SELECT and FETCH of every body in every folder) must cost at
most one ``/$value`` per message plus a few requests per folder, and a pull with nothing
changed at most two requests per folder. The counts come from the simulator's
per-mailbox counters, so every request the real ``GraphRemote`` makes is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge.backend.types import FetchNeed
from bridge.store import mailstate as ms
from tests.cached.harness import Account, mail, open_account


def _kind(sim: Any, user: Any, kind: str) -> int:
    return int(sim.counters(user).by_kind.get(kind, 0))


async def _pull(acc: Account) -> int:
    """LIST, then SELECT + FETCH FLAGS + FETCH BODY[] (in chunks of 200, as the IMAP
    session asks) of every mailbox; returns the number of mailboxes."""
    boxes = await acc.backend.list_mailboxes()
    for box in boxes:
        snap = await acc.backend.select(box.name, read_only=False)
        uids = [m.uid for m in snap.messages]
        await acc.backend.fetch(snap.mailbox_id, uids, FetchNeed.FLAGS)
        for start in range(0, len(uids), 200):
            data = await acc.backend.fetch(
                snap.mailbox_id, uids[start : start + 200], FetchNeed.BODY | FetchNeed.SIZE
            )
            assert all(d.size == len(d.body or b"") for d in data)
    return len(boxes)


async def test_first_list_and_select_during_the_initial_pass_do_not_repeat_it(
    tenant: Any, tmp_path: Path
) -> None:
    """A client that logs in while the initial pass runs: its LIST must wait for the
    pass's tree read, and its SELECT of a folder the pass is syncing must not run a
    second delta round of that folder."""
    sim, alice = tenant.sim, tenant.alice
    for n in range(5):
        sim.deliver(alice, mail(n))
    acc, app = await open_account(tenant, tmp_path)
    try:
        sim.reset_counters(alice)
        passing = asyncio.create_task(acc.engine.sync_now())
        await asyncio.sleep(0)  # the pass takes the tree lock first, as at start-up
        boxes = await acc.backend.list_mailboxes()
        snap = await acc.backend.select("INBOX", read_only=False)
        await passing
        assert len(snap.messages) == 5
        assert _kind(sim, alice, "GET folders.list") == 1
        assert _kind(sim, alice, "GET messages.delta") == len(boxes)
    finally:
        await acc.close()
        await app.aclose()


async def test_prefetch_does_not_download_again_what_a_fetch_just_loaded(
    tenant: Any, tmp_path: Path
) -> None:
    sim, alice = tenant.sim, tenant.alice
    count = 30
    for n in range(count):
        sim.deliver(alice, mail(n))
    acc, app = await open_account(tenant, tmp_path)
    try:
        acc.settings = replace(acc.settings, prefetch_days=3650, prefetch_rate=0.0)
        await acc.restart()
        await acc.sync()
        snap = await acc.backend.select("INBOX", read_only=True)
        sim.reset_counters(alice)
        # Prefetch works through its list one body at a time while a client FETCHes
        # them all (4 at a time): the client overtakes it.
        await asyncio.gather(
            acc.engine.prefetch(),
            acc.backend.fetch(snap.mailbox_id, [m.uid for m in snap.messages], FetchNeed.BODY),
        )
        assert _kind(sim, alice, "GET message.value") == count
        missing = await acc.store.read(
            lambda db: ms.bodies_missing(db, acc.backend.account_id, [snap.mailbox_id], "", 100)
        )
        assert missing == []
    finally:
        await acc.close()
        await app.aclose()


async def test_full_pull_then_unchanged_pull_stay_within_the_goals(
    tenant: Any, tmp_path: Path
) -> None:
    sim, alice = tenant.sim, tenant.alice
    projects = sim.create_folder(alice, "Projects")
    count = 300
    for n in range(count):
        sim.deliver(alice, mail(n, body="x" * 2000), folder=projects if n % 3 == 0 else "inbox")
    acc, app = await open_account(tenant, tmp_path)
    try:
        sim.reset_counters(alice)
        await acc.engine.start()
        folders = await _pull(acc)
        first = sim.counters(alice)
        assert first.by_kind.get("GET message.value") == count
        # Per message: the bodies; per folder: one delta round; per account: the
        # well-known lookup (one batch) and the tree.
        overhead = first.requests - count
        assert overhead <= 2 * folders + 20, first.by_kind

        # Nothing changed; the folders' sync state is older than the staleness limit.
        def age(db: Any) -> None:
            db.execute("UPDATE ms_folders SET synced_at = synced_at - 3600")

        await acc.store.write(age)
        acc.engine._tree_synced = None  # as if the tree was read long ago
        sim.reset_counters(alice)
        boxes = await acc.backend.list_mailboxes()
        for box in boxes:
            await acc.backend.status(box.name)
            snap = await acc.backend.select(box.name, read_only=False)
            await acc.backend.poke(snap.mailbox_id)
            uids = [m.uid for m in snap.messages]
            await acc.backend.fetch(snap.mailbox_id, uids, FetchNeed.FLAGS)
        await acc.engine.sync_now()  # whatever the SELECTs nudged, done now
        second = sim.counters(alice)
        assert second.requests <= 2 * len(boxes), second.by_kind
    finally:
        await acc.close()
        await app.aclose()


@contextlib.asynccontextmanager
async def _reading_inbox(
    tenant: Any, tmp_path: Path, count: int
) -> AsyncIterator[tuple[Account, Any, list[int]]]:
    """An account with ``count`` synced INBOX messages, no body cached, a read-ahead
    window of 6 and the simulator's counters reset: the start of a sequential reader."""
    for n in range(count):
        tenant.sim.deliver(tenant.alice, mail(n))
    acc, app = await open_account(tenant, tmp_path)
    try:
        acc.settings = replace(acc.settings, read_ahead=6)
        await acc.restart()
        await acc.sync()
        snap = await acc.backend.select("INBOX", read_only=True)
        tenant.sim.reset_counters(tenant.alice)
        yield acc, snap, [m.uid for m in snap.messages]
    finally:
        await acc.close()
        await app.aclose()


async def test_fetching_one_body_at_a_time_reads_ahead_without_extra_requests(
    tenant: Any, tmp_path: Path
) -> None:
    """mbsync asks for one message per command; the bridge keeps several downloads in
    flight by reading ahead, and never downloads a body twice."""
    sim, alice = tenant.sim, tenant.alice
    count = 20
    async with _reading_inbox(tenant, tmp_path, count) as (acc, snap, uids):
        # One FETCH of one body is not a stream: no read-ahead.
        await acc.backend.fetch(snap.mailbox_id, uids[3:4], FetchNeed.BODY)
        assert _kind(sim, alice, "GET message.value") == 1
        # A later one below it is not either; the next one above it is.
        await acc.backend.fetch(snap.mailbox_id, uids[:1], FetchNeed.BODY)
        assert not acc.backend._ahead_tasks
        first = await acc.backend.fetch(snap.mailbox_id, uids[1:2], FetchNeed.BODY)
        assert first and first[0].body
        await asyncio.gather(*acc.backend._ahead_tasks)
        # uids[0], [1], [3] asked for; 6 read ahead after uids[1] ([2], [4]..[8]).
        assert _kind(sim, alice, "GET message.value") == 9
        for uid in uids[2:]:
            data = await acc.backend.fetch(snap.mailbox_id, [uid], FetchNeed.BODY)
            assert data[0].body
        await asyncio.gather(*acc.backend._ahead_tasks)
        assert _kind(sim, alice, "GET message.value") == count
        assert sim.counters(alice).max_concurrency <= 4


async def test_reading_bodies_already_read_ahead_keeps_the_window_full(
    tenant: Any, tmp_path: Path
) -> None:
    """Hits move the window too: a client consuming read-ahead bodies must not have to
    hit an uncached one (and wait a whole Graph round trip) before the next ones start."""
    sim, alice = tenant.sim, tenant.alice
    count = 20
    async with _reading_inbox(tenant, tmp_path, count) as (acc, snap, uids):
        await acc.backend.fetch(snap.mailbox_id, uids[0:1], FetchNeed.BODY)
        await acc.backend.fetch(snap.mailbox_id, uids[1:2], FetchNeed.BODY)
        await asyncio.gather(*acc.backend._ahead_tasks)
        assert _kind(sim, alice, "GET message.value") == 8  # [0], [1], then [2]..[7]
        # Read [2]..[5]: all cached already, yet the window moves on behind them.
        for uid in uids[2:6]:
            await acc.backend.fetch(snap.mailbox_id, [uid], FetchNeed.BODY)
        await asyncio.gather(*acc.backend._ahead_tasks)
        assert _kind(sim, alice, "GET message.value") > 8
        missing = await acc.store.read(
            lambda db: ms.bodies_missing_after(db, acc.login, snap.mailbox_id, uids[5], 100)
        )
        assert missing and missing[0].uid > uids[7]  # the bodies right after [7] came in
        assert sim.counters(alice).max_concurrency <= 4
