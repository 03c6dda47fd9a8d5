"""Contract: mailbox hierarchy, subscriptions, STATUS (RFC 3501 §6.3)."""

from __future__ import annotations

import pytest

from bridge.backend.errors import BackendError, MailboxExists, MailboxNotFound
from bridge.backend.events import MailboxesChanged, MailboxReset, MailEvent
from bridge.backend.protocol import MailBackend
from bridge.backend.types import SpecialUse

from .messages import message


async def names(backend: MailBackend) -> list[str]:
    return [m.name for m in await backend.list_mailboxes()]


async def test_fresh_backend_has_inbox_and_special_use(backend: MailBackend) -> None:
    assert isinstance(backend, MailBackend)
    listed = {m.name: m for m in await backend.list_mailboxes()}
    assert "INBOX" in listed
    uses = {m.special_use for m in listed.values() if m.special_use is not None}
    assert {SpecialUse.SENT, SpecialUse.DRAFTS, SpecialUse.TRASH, SpecialUse.JUNK} <= uses
    assert all(m.selectable for m in listed.values())
    assert len({m.mailbox_id for m in listed.values()}) == len(listed)


async def test_parents_listed_before_children(backend: MailBackend) -> None:
    await backend.create_mailbox("Projects/2026/Q1")
    order = await names(backend)
    assert order.index("Projects") < order.index("Projects/2026") < order.index("Projects/2026/Q1")
    listed = {m.name: m for m in await backend.list_mailboxes()}
    assert listed["Projects"].has_children
    assert listed["Projects/2026"].has_children
    assert not listed["Projects/2026/Q1"].has_children


async def test_create_existing_fails(backend: MailBackend) -> None:
    await backend.create_mailbox("Work")
    with pytest.raises(MailboxExists):
        await backend.create_mailbox("Work")
    with pytest.raises(MailboxExists):
        await backend.create_mailbox("inbox")


async def test_create_returns_info_and_announces(
    backend: MailBackend, events: list[MailEvent]
) -> None:
    info = await backend.create_mailbox("Work")
    assert info.name == "Work"
    assert info.selectable
    assert any(isinstance(e, MailboxesChanged) for e in events)


async def test_delete_leaf(backend: MailBackend, events: list[MailEvent]) -> None:
    info = await backend.create_mailbox("Old")
    await backend.delete_mailbox("Old")
    assert "Old" not in await names(backend)
    assert MailboxReset(info.mailbox_id) in events
    with pytest.raises(MailboxNotFound):
        await backend.status("Old")


async def test_delete_missing_and_inbox(backend: MailBackend) -> None:
    with pytest.raises(MailboxNotFound):
        await backend.delete_mailbox("Nope")
    with pytest.raises(BackendError):
        await backend.delete_mailbox("INBOX")
    assert "INBOX" in await names(backend)


async def test_recreated_mailbox_gets_new_uidvalidity(backend: MailBackend) -> None:
    await backend.create_mailbox("Tmp")
    first = (await backend.status("Tmp")).uidvalidity
    await backend.delete_mailbox("Tmp")
    await backend.create_mailbox("Tmp")
    assert (await backend.status("Tmp")).uidvalidity != first


async def test_rename_keeps_uidvalidity_uids_and_id(backend: MailBackend) -> None:
    info = await backend.create_mailbox("Before")
    await backend.create_mailbox("Before/Child")
    await backend.append("Before", message(1), frozenset({"\\Seen"}), None)
    appended = await backend.append("Before", message(2), frozenset(), None)
    status = await backend.status("Before")
    await backend.rename_mailbox("Before", "After")
    listed = {m.name: m for m in await backend.list_mailboxes()}
    assert "Before" not in listed and "Before/Child" not in listed
    assert listed["After"].mailbox_id == info.mailbox_id
    assert "After/Child" in listed
    renamed = await backend.status("After")
    assert renamed.uidvalidity == status.uidvalidity
    assert renamed.uidnext == status.uidnext
    snap = await backend.select("After", read_only=True)
    assert [m.uid for m in snap.messages][-1] == appended.uid


async def test_rename_errors(backend: MailBackend) -> None:
    await backend.create_mailbox("A")
    await backend.create_mailbox("B")
    with pytest.raises(MailboxExists):
        await backend.rename_mailbox("A", "B")
    with pytest.raises(MailboxNotFound):
        await backend.rename_mailbox("Missing", "C")


async def test_rename_inbox_moves_messages_and_leaves_inbox_empty(backend: MailBackend) -> None:
    await backend.append("INBOX", message(1), frozenset(), None)
    await backend.append("INBOX", message(2), frozenset({"\\Flagged"}), None)
    before = await backend.status("INBOX")
    await backend.rename_mailbox("INBOX", "Saved")
    assert (await backend.status("INBOX")).messages == 0
    saved = await backend.status("Saved")
    assert saved.messages == 2
    # INBOX's UIDs are not reused for the next delivery (RFC 3501 §2.3.1.1).
    again = await backend.append("INBOX", message(3), frozenset(), None)
    if again.uidvalidity == before.uidvalidity:
        assert again.uid >= before.uidnext


async def test_subscriptions(backend: MailBackend) -> None:
    await backend.create_mailbox("Lists")
    await backend.set_subscribed("Lists", True)
    listed = {m.name: m for m in await backend.list_mailboxes()}
    assert listed["Lists"].subscribed
    await backend.set_subscribed("Lists", False)
    listed = {m.name: m for m in await backend.list_mailboxes()}
    assert not listed["Lists"].subscribed


async def test_status_counts(backend: MailBackend) -> None:
    empty = await backend.status("INBOX")
    assert (empty.messages, empty.unseen) == (0, 0)
    await backend.append("INBOX", message(1), frozenset({"\\Seen"}), None)
    await backend.append("INBOX", message(2), frozenset(), None)
    status = await backend.status("inbox")
    assert status.messages == 2
    assert status.unseen == 1
    assert status.recent == 2
    assert status.uidnext > empty.uidnext
    assert status.uidvalidity == empty.uidvalidity
    assert status.highestmodseq > empty.highestmodseq
    assert status.size is None or status.size == len(message(1)) + len(message(2))
    with pytest.raises(MailboxNotFound):
        await backend.status("Missing")


async def test_every_hierarchy_change_is_announced(
    backend: MailBackend, events: list[MailEvent]
) -> None:
    await backend.create_mailbox("One")
    await backend.rename_mailbox("One", "Two")
    await backend.set_subscribed("Two", True)
    await backend.delete_mailbox("Two")
    assert sum(isinstance(e, MailboxesChanged) for e in events) >= 4


async def test_failed_operations_change_nothing(
    backend: MailBackend, events: list[MailEvent]
) -> None:
    before = await names(backend)
    with pytest.raises(BackendError):
        await backend.create_mailbox("INBOX")
    with pytest.raises(BackendError):
        await backend.rename_mailbox("Nope", "Other")
    assert await names(backend) == before
    assert events == []
