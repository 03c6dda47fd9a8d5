"""The sync engine against the simulator: UIDs, Outlook-side changes, token expiry, restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.backend.cached import CacheSettings
from bridge.backend.events import (
    FlagsChanged,
    MailboxesChanged,
    MailboxReset,
    MessagesAdded,
    MessagesExpunged,
)
from bridge.backend.remote import RemoteAuthError, RemoteError
from bridge.backend.types import FetchNeed

from .harness import Account, mail, open_account

BASE = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


async def uids(acc: Account, name: str = "INBOX") -> list[int]:
    snap = await acc.backend.select(name, read_only=True)
    return [m.uid for m in snap.messages]


async def _inbox_id(acc: Account) -> str:
    return (await acc.backend.select("INBOX", read_only=True)).mailbox_id


async def test_initial_sync_allocates_uids_by_received_and_survives_restart(
    tenant: Any, tmp_path: Path
) -> None:
    sim = tenant.sim
    # Delivered out of order, across several delta pages (the smallest page is 10).
    order = [5, 1, 4, 2, 3, 7, 6, 12, 9, 11, 8, 10]
    for n in order:
        sim.deliver(tenant.alice, mail(n), received=BASE + timedelta(days=n))
    acc, app = await open_account(tenant, tmp_path, page_size=10)
    try:
        await acc.sync()
        snap = await acc.backend.select("INBOX", read_only=True)
        assert [m.uid for m in snap.messages] == list(range(1, 13))
        data = await acc.backend.fetch(
            snap.mailbox_id, list(range(1, 13)), FetchNeed.INTERNALDATE | FetchNeed.SUMMARY
        )
        dates = [d.internaldate for d in data]
        assert dates == sorted(dates)
        assert [d.summary.message_id for d in data] == [
            f"<cached-{n}@example.test>" for n in range(1, 13)
        ]
        progress = acc.engine.progress()
        assert progress["state"] == "connected" and progress["phase"] == "steady"
        assert ("connected", None) in acc.states

        await acc.restart()
        await acc.sync()
        again = await acc.backend.select("INBOX", read_only=True)
        assert again.uidvalidity == snap.uidvalidity
        assert [m.uid for m in again.messages] == list(range(1, 13))
        assert again.uidnext == snap.uidnext
        assert not [e for e in acc.events if isinstance(e, MessagesAdded)]
    finally:
        await acc.close()
        await app.aclose()


async def test_new_mail_gets_the_next_uid(account: Account) -> None:
    sim = account.tenant.sim
    before = await account.backend.status("INBOX")
    sim.deliver(account.tenant.alice, mail(1))
    await account.engine.sync_now()
    added = account.take(MessagesAdded)
    assert len(added) == 1
    assert [m.uid for m in added[0].messages] == [before.uidnext]
    assert added[0].uidvalidity == before.uidvalidity
    # A second pass with nothing new changes nothing.
    account.events.clear()
    await account.engine.sync_now()
    assert account.events == []


async def test_outlook_read_and_flag_become_flag_changes(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    mid = sim.deliver(alice, mail(1))
    await account.sync()
    snap = await account.backend.select("INBOX", read_only=True)
    account.events.clear()
    sim.set_read(alice, mid)
    sim.set_flag(alice, mid)
    sim.set_categories(alice, mid, ["Red category"])
    await account.sync()
    changed = account.take(FlagsChanged)
    assert changed
    assert changed[-1].messages[0].flags == {"\\Seen", "\\Flagged", "Red~20category"}
    assert changed[-1].messages[0].modseq > snap.messages[0].modseq
    assert (await account.backend.status("INBOX")).highestmodseq >= changed[-1].messages[0].modseq


async def test_outlook_delete_and_move(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    gone = sim.deliver(alice, mail(1))
    moving = sim.deliver(alice, mail(2))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=True)
    archive = await account.backend.select("Archive", read_only=True)
    account.events.clear()
    sim.delete(alice, gone)
    sim.move(alice, moving, "archive")
    await account.sync()
    expunged = account.take(MessagesExpunged)
    assert [e.mailbox_id for e in expunged] == [inbox.mailbox_id]
    assert sorted(expunged[0].uids) == [m.uid for m in inbox.messages]
    added = account.take(MessagesAdded)
    assert [e.mailbox_id for e in added] == [archive.mailbox_id]
    uid = added[0].messages[0].uid
    data = await account.backend.fetch(archive.mailbox_id, [uid], FetchNeed.BODY)
    assert b"Message 2" in (data[0].body or b"")
    assert (await account.backend.status("INBOX")).messages == 0


async def test_expired_delta_token_recovers_without_renumbering(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    ids = [sim.deliver(alice, mail(n), received=BASE + timedelta(hours=n)) for n in (1, 2, 3)]
    await account.sync()
    before = await account.backend.select("INBOX", read_only=True)
    sim.expire_delta_tokens(alice)
    sim.set_read(alice, ids[0])
    sim.delete(alice, ids[1])
    sim.deliver(alice, mail(4))
    account.events.clear()
    await account.sync()
    after = await account.backend.select("INBOX", read_only=True)
    assert after.uidvalidity == before.uidvalidity
    old = [m.uid for m in before.messages]
    assert [m.uid for m in after.messages] == [old[0], old[2], before.uidnext]
    assert after.messages[0].flags == {"\\Seen"}
    assert [e.uids for e in account.take(MessagesExpunged)] == [(old[1],)]
    assert not account.take(MailboxReset)
    # The recovered round stored a fresh token: the next pass is incremental and quiet.
    account.events.clear()
    await account.sync()
    assert account.events == []


async def test_interrupted_round_replays_without_duplicates(tenant: Any, tmp_path: Path) -> None:
    """A round cut off after its first page (Graph failing, or a crash) leaves the old
    token stored; the replay skips what was applied and nothing is duplicated or
    renumbered."""
    sim, alice = tenant.sim, tenant.alice
    acc, app = await open_account(tenant, tmp_path, page_size=10)
    try:
        await acc.sync()
        for n in range(1, 26):
            sim.deliver(alice, mail(n), received=BASE + timedelta(minutes=n))

        def cut_after_first_page(event: object) -> None:
            if isinstance(event, MessagesAdded) and not sim.faults.rules:
                sim.faults.fail_next("messages.delta", count=1, status=400)

        unsubscribe = acc.bus.subscribe(cut_after_first_page)
        with pytest.raises(RemoteError):
            await acc.engine.sync_now(await _inbox_id(acc))
        unsubscribe()
        partial = await uids(acc)
        assert partial and len(partial) < 25
        await acc.restart()
        await acc.sync()
        assert await uids(acc) == list(range(1, 26))
        added = [m.uid for e in acc.take(MessagesAdded) for m in e.messages]
        assert sorted(added) == list(range(len(partial) + 1, 26))
        await acc.restart()
        await acc.sync()
        assert await uids(acc) == list(range(1, 26))
    finally:
        await acc.close()
        await app.aclose()


async def test_outlook_folder_changes_appear_at_next_list(tenant: Any, tmp_path: Path) -> None:
    sim, alice = tenant.sim, tenant.alice
    acc, app = await open_account(tenant, tmp_path, tree_max_age=0.0)
    try:
        await acc.sync()
        top = sim.create_folder(alice, "Projects")
        sim.create_folder(alice, "Q1/Q2", parent=top)
        sim.create_folder(alice, "Hidden one", hidden=True)
        sim.create_search_folder(alice, "Digest", "contains(subject, 'digest')")
        names = {m.name: m for m in await acc.backend.list_mailboxes()}
        assert "Hidden one" not in names and "Digest" not in names
        assert names["Projects"].has_children
        assert "Projects/Q1\u2215Q2" in names
        assert any(isinstance(e, MailboxesChanged) for e in acc.events)
        sim.rename_folder(alice, top, "Work")
        names = {m.name: m for m in await acc.backend.list_mailboxes()}
        assert "Projects" not in names and "Work/Q1\u2215Q2" in names
        assert names["Work"].mailbox_id == top
        sim.delete_folder(alice, top, permanent=True)
        names = {m.name: m for m in await acc.backend.list_mailboxes()}
        assert "Work" not in names
        assert MailboxReset(top) in acc.events
    finally:
        await acc.close()
        await app.aclose()


async def test_draft_edited_in_outlook_gets_a_new_uid(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    seen = await account.backend.append("Drafts", mail(1), frozenset({"\\Draft"}), None)
    unseen = await account.backend.append("Drafts", mail(2), frozenset({"\\Draft"}), None)
    await account.sync()
    drafts = await account.backend.select("Drafts", read_only=True)
    box = drafts.mailbox_id
    first = await account.backend.fetch(box, [seen.uid], FetchNeed.BODY)
    assert first[0].body == mail(1)
    by_subject = {m["subject"]: m["id"] for m in sim.messages(alice, "drafts")}
    # A flag-only change keeps the UID.
    account.events.clear()
    sim.set_flag(alice, by_subject["Message 1"])
    await account.sync()
    assert not account.take(MessagesExpunged)
    assert account.take(FlagsChanged)
    # Content changes (fetched before or never) give new UIDs.
    account.events.clear()
    sim.edit_draft(alice, by_subject["Message 1"], body="Edited in Outlook.")
    sim.edit_draft(alice, by_subject["Message 2"], subject="Renamed draft")
    await account.sync()
    assert sorted(u for e in account.take(MessagesExpunged) for u in e.uids) == sorted(
        [seen.uid, unseen.uid]
    )
    added = [m.uid for e in account.take(MessagesAdded) for m in e.messages]
    assert len(added) == 2 and min(added) >= drafts.uidnext
    data = await account.backend.fetch(box, added, FetchNeed.BODY | FetchNeed.SIZE)
    bodies = b"".join(d.body or b"" for d in data)
    assert b"Edited in Outlook." in bodies
    assert all(d.size == len(d.body or b"") for d in data)


async def test_background_polling_picks_up_new_mail(tenant: Any, tmp_path: Path) -> None:
    sim, alice = tenant.sim, tenant.alice
    acc, app = await open_account(tenant, tmp_path, poll_watched=0.05, poll_idle=0.05)
    try:
        await acc.engine.start()
        arrived = asyncio.Event()
        acc.bus.subscribe(lambda e: arrived.set() if isinstance(e, MessagesAdded) else None)
        await acc.backend.select("INBOX", read_only=True)
        sim.deliver(alice, mail(1))
        acc.engine.nudge(None)
        await asyncio.wait_for(arrived.wait(), timeout=30)
        assert (await acc.backend.status("INBOX")).messages == 1
    finally:
        await acc.close()
        await app.aclose()


async def test_prefetch_downloads_recent_bodies(tenant: Any, tmp_path: Path) -> None:
    sim, alice = tenant.sim, tenant.alice
    now = datetime.now(UTC)
    sim.deliver(alice, mail(1), received=now - timedelta(days=90))
    sim.deliver(alice, mail(2), received=now - timedelta(days=1))
    acc, app = await open_account(tenant, tmp_path)
    try:
        await acc.sync()
        acc.engine.settings = CacheSettings(prefetch_days=30, prefetch_rate=0.0)
        assert await acc.engine.prefetch() == 1
        assert acc.engine.progress()["prefetched"] == 1
        snap = await acc.backend.select("INBOX", read_only=True)
        old, recent = (m.uid for m in snap.messages)
        sim.reset_counters(alice)
        data = await acc.backend.fetch(snap.mailbox_id, [recent], FetchNeed.BODY)
        assert b"Message 2" in (data[0].body or b"")
        assert sim.counters(alice).requests == 0  # served from the cache
        await acc.backend.fetch(snap.mailbox_id, [old], FetchNeed.BODY)
        assert sim.counters(alice).by_kind.get("GET message.value") == 1
    finally:
        await acc.close()
        await app.aclose()


async def test_authentication_failure_is_reported_and_cache_still_serves(
    account: Account,
) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1))
    await account.sync()
    sim.expire_secret(account.tenant.app.client_id)
    sim.expire_tokens()
    with pytest.raises(RemoteAuthError):
        await account.engine.sync_now()
    assert account.states[-1][0] == "authenticationError"
    assert account.engine.progress()["state"] == "authenticationError"
    assert (await account.backend.status("INBOX")).messages == 1


async def test_replayed_entries_and_empty_pages_change_nothing(tenant: Any, tmp_path: Path) -> None:
    sim, alice = tenant.sim, tenant.alice
    acc, app = await open_account(tenant, tmp_path, page_size=10)
    try:
        await acc.sync()
        sim.faults.delta_replay = True
        sim.faults.delta_trailing_empty_page = True
        ids = [
            sim.deliver(alice, mail(n), received=BASE + timedelta(minutes=n)) for n in range(1, 26)
        ]
        await acc.sync()
        sim.set_read(alice, ids[3])
        await acc.sync()
        await acc.sync()
        snap = await acc.backend.select("INBOX", read_only=True)
        assert [m.uid for m in snap.messages] == list(range(1, 26))
        added = [m.uid for e in acc.take(MessagesAdded) for m in e.messages]
        assert sorted(added) == list(range(1, 26))
        assert [m.uid for m in snap.messages if "\\Seen" in m.flags] == [4]
    finally:
        sim.faults.delta_replay = False
        sim.faults.delta_trailing_empty_page = False
        await acc.close()
        await app.aclose()
