"""Client writes racing the sync engine, staged deterministically against the simulator.

Each test holds a delta page that Graph generated *before* a client's write and lets the
engine apply it *after* the write committed (``GatedRemote``), or lets a sync round run
between Graph's answer to a write and the write's own store transaction. The bridge must
neither resurrect what the client removed, nor drop or renumber what it added, nor roll
back flags it set, nor announce one change twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from bridge.backend.events import FlagsChanged, MailboxReset, MessagesAdded, MessagesExpunged
from bridge.backend.remote import NewMessage, RemoteMessage
from bridge.backend.types import StoreOperation
from tests.cached.harness import Account, mail

from .gate import GatedRemote


async def _held_round(acc: Account, folder_id: str) -> tuple[GatedRemote, asyncio.Task[None]]:
    """Start a delta round of ``folder_id`` whose first page is held after Graph answered."""
    gate = GatedRemote(acc.remote)
    gate.hold = True
    acc.engine.remote = gate  # type: ignore[assignment]
    task = asyncio.create_task(acc.engine.sync_now(folder_id))
    await asyncio.wait_for(gate.fetched.wait(), 10)
    return gate, task


def _added_uids(acc: Account, mailbox_id: str) -> list[int]:
    return [
        m.uid for e in acc.take(MessagesAdded) if e.mailbox_id == mailbox_id for m in e.messages
    ]


async def test_move_racing_an_incremental_round_does_not_resurrect_the_source(
    account: Account,
) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    mid = sim.deliver(alice, mail(1))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=False)
    sim.set_flag(alice, mid)  # an Outlook change: the next page carries the message
    gate, task = await _held_round(account, inbox.mailbox_id)
    account.events.clear()
    result = await account.backend.move(inbox.mailbox_id, [inbox.messages[0].uid], "Archive")
    gate.release()
    await task
    assert _added_uids(account, inbox.mailbox_id) == []
    assert (await account.backend.status("INBOX")).messages == 0
    await account.sync()
    assert (await account.backend.status("INBOX")).messages == 0
    archive = await account.backend.select("Archive", read_only=True)
    assert [m.uid for m in archive.messages] == list(result.dest_uids)


async def test_expunge_racing_a_recovery_round_does_not_resurrect(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1))
    sim.deliver(alice, mail(2))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=False)
    first, second = (m.uid for m in inbox.messages)
    sim.expire_delta_tokens(alice)  # the next round is a full (410 recovery) round
    gate, task = await _held_round(account, inbox.mailbox_id)
    await account.backend.store_flags(
        inbox.mailbox_id, [first], StoreOperation.ADD, frozenset({"\\Deleted"})
    )
    account.events.clear()
    assert await account.backend.expunge(inbox.mailbox_id) == [first]
    gate.release()
    await task
    assert _added_uids(account, inbox.mailbox_id) == []
    after = await account.backend.select("INBOX", read_only=True)
    assert [m.uid for m in after.messages] == [second]
    assert after.uidvalidity == inbox.uidvalidity


async def test_append_racing_a_recovery_round_keeps_its_uid(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=False)
    sim.expire_delta_tokens(alice)
    gate, task = await _held_round(account, inbox.mailbox_id)
    appended = await account.backend.append("INBOX", mail(2), frozenset({"\\Seen"}), None)
    account.events.clear()
    gate.release()
    await task
    expunged = [u for e in account.take(MessagesExpunged) for u in e.uids]
    assert appended.uid not in expunged
    await account.sync()
    after = await account.backend.select("INBOX", read_only=True)
    assert appended.uid in [m.uid for m in after.messages]
    assert len(after.messages) == 2


async def test_store_racing_a_stale_page_does_not_roll_flags_back(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    mid = sim.deliver(alice, mail(1))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=False)
    uid = inbox.messages[0].uid
    sim.set_flag(alice, mid)  # Outlook: flagged, still unread
    gate, task = await _held_round(account, inbox.mailbox_id)
    await account.backend.store_flags(
        inbox.mailbox_id, [uid], StoreOperation.ADD, frozenset({"\\Seen"})
    )
    account.events.clear()
    gate.release()
    await task
    for event in account.take(FlagsChanged):
        for info in event.messages:
            assert "\\Seen" in info.flags, "a stale page rolled \\Seen back"
    after = await account.backend.select("INBOX", read_only=True)
    assert "\\Seen" in after.messages[0].flags


class _SyncAfter:
    """Pass-through Remote that runs a sync round of ``folder`` right after Graph
    answered a write and before the backend records that answer."""

    def __init__(self, acc: Account, folder: str) -> None:
        self._acc = acc
        self._inner = acc.remote
        self.folder = folder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_message(self, message: NewMessage) -> RemoteMessage:
        created = await self._inner.create_message(message)
        await self._acc.engine.sync_now(self.folder)
        return created

    async def move_messages(self, ids: Any, dest: str) -> dict[str, Any]:
        answers = await self._inner.move_messages(ids, dest)
        await self._acc.engine.sync_now(self.folder)
        return answers


async def test_append_seen_by_delta_first_is_announced_once(account: Account) -> None:
    inbox = await account.backend.select("INBOX", read_only=False)
    account.backend.remote = _SyncAfter(account, inbox.mailbox_id)  # type: ignore[assignment]
    account.events.clear()
    result = await account.backend.append(
        "INBOX", mail(7), frozenset(), datetime(2026, 1, 2, tzinfo=UTC)
    )
    added = _added_uids(account, inbox.mailbox_id)
    assert added == [result.uid]


async def test_move_seen_by_delta_first_is_announced_once(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=False)
    archive = await account.backend.select("Archive", read_only=True)
    account.backend.remote = _SyncAfter(account, archive.mailbox_id)  # type: ignore[assignment]
    account.events.clear()
    result = await account.backend.move(inbox.mailbox_id, [inbox.messages[0].uid], "Archive")
    assert _added_uids(account, archive.mailbox_id) == list(result.dest_uids)
    expunged = [e.uids for e in account.take(MessagesExpunged) if e.mailbox_id == inbox.mailbox_id]
    assert expunged == [(inbox.messages[0].uid,)]


async def _held_tree(acc: Account) -> tuple[GatedRemote, asyncio.Task[None]]:
    """Start a folder-tree read whose answer is held after Graph answered."""
    gate = GatedRemote(acc.remote)
    gate.hold = True
    acc.engine.remote = gate  # type: ignore[assignment]
    task = asyncio.create_task(acc.engine.sync_tree())
    await asyncio.wait_for(gate.fetched.wait(), 10)
    return gate, task


async def test_create_racing_a_tree_read_keeps_the_new_mailbox(account: Account) -> None:
    gate, task = await _held_tree(account)
    await account.backend.create_mailbox("Fresh")
    before = await account.backend.status("Fresh")
    account.events.clear()
    gate.release()
    await task
    assert not account.take(MailboxReset)
    await account.engine.sync_tree()
    after = await account.backend.status("Fresh")
    assert after.uidvalidity == before.uidvalidity


async def test_delete_racing_a_tree_read_does_not_bring_the_mailbox_back(
    account: Account,
) -> None:
    await account.backend.create_mailbox("Doomed")
    gate, task = await _held_tree(account)
    await account.backend.delete_mailbox("Doomed")
    gate.release()
    await task
    names = [box.name for box in await account.backend.list_mailboxes()]
    assert "Doomed" not in names


async def test_rename_racing_a_tree_read_is_not_rolled_back(account: Account) -> None:
    await account.backend.create_mailbox("Before")
    gate, task = await _held_tree(account)
    await account.backend.rename_mailbox("Before", "After")
    account.events.clear()
    gate.release()
    await task
    names = [box.name for box in await account.backend.list_mailboxes()]
    assert "After" in names and "Before" not in names
