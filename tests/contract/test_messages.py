"""Contract: selected-state operations — snapshot, fetch needs, store, append, copy,
move, expunge, \\Recent, modseq, UIDPLUS results, and the events each publishes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.backend.errors import MailboxNotFound
from bridge.backend.events import FlagsChanged, MailEvent, MessagesAdded, MessagesExpunged
from bridge.backend.protocol import MailBackend
from bridge.backend.types import FetchNeed, StoreOperation

from .messages import message


async def fill(backend: MailBackend, count: int, name: str = "INBOX") -> list[int]:
    uids = []
    for n in range(1, count + 1):
        uids.append((await backend.append(name, message(n), frozenset(), None)).uid)
    return uids


async def test_append_result_and_event(backend: MailBackend, events: list[MailEvent]) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    result = await backend.append("INBOX", message(1), frozenset({"\\Seen", "$Work"}), when)
    status = await backend.status("INBOX")
    assert result.uidvalidity == status.uidvalidity
    assert result.uid == status.uidnext - 1
    added = [e for e in events if isinstance(e, MessagesAdded)]
    assert len(added) == 1
    assert added[0].uidvalidity == result.uidvalidity
    assert [m.uid for m in added[0].messages] == [result.uid]
    assert added[0].messages[0].flags == {"\\Seen", "$Work"}
    snap = await backend.select("INBOX", read_only=True)
    data = await backend.fetch(snap.mailbox_id, [result.uid], FetchNeed.INTERNALDATE)
    assert data[0].internaldate == when


async def test_append_to_missing_mailbox(backend: MailBackend) -> None:
    with pytest.raises(MailboxNotFound):
        await backend.append("Missing", message(1), frozenset(), None)


async def test_uids_ascend_and_are_never_reused(backend: MailBackend) -> None:
    uids = await fill(backend, 3)
    assert uids == sorted(uids) and len(set(uids)) == 3
    snap = await backend.select("INBOX", read_only=False)
    await backend.store_flags(
        snap.mailbox_id, [uids[-1]], StoreOperation.ADD, frozenset({"\\Deleted"})
    )
    assert await backend.expunge(snap.mailbox_id) == [uids[-1]]
    again = await backend.append("INBOX", message(9), frozenset(), None)
    assert again.uid > uids[-1]


async def test_snapshot(backend: MailBackend) -> None:
    uids = await fill(backend, 3)
    snap = await backend.select("INBOX", read_only=False)
    assert [m.uid for m in snap.messages] == uids
    assert snap.name == "INBOX"
    assert snap.uidnext > uids[-1]
    assert not snap.read_only
    assert "\\Seen" in snap.permanent_flags and "\\Deleted" in snap.permanent_flags
    assert snap.highestmodseq >= max(m.modseq for m in snap.messages)
    examined = await backend.select("INBOX", read_only=True)
    assert examined.read_only
    assert examined.mailbox_id == snap.mailbox_id


async def test_recent_belongs_to_one_session(backend: MailBackend) -> None:
    uids = await fill(backend, 2)
    examine = await backend.select("INBOX", read_only=True)
    assert examine.recent_uids == frozenset(uids)  # EXAMINE does not take \Recent
    first = await backend.select("INBOX", read_only=False)
    assert first.recent_uids == frozenset(uids)
    second = await backend.select("INBOX", read_only=False)
    assert second.recent_uids == frozenset()
    new = await backend.append("INBOX", message(3), frozenset(), None)
    assert await backend.claim_recent(first.mailbox_id, [new.uid]) == {new.uid}
    assert await backend.claim_recent(first.mailbox_id, [new.uid]) == frozenset()


async def test_fetch_needs(backend: MailBackend) -> None:
    await fill(backend, 2)
    snap = await backend.select("INBOX", read_only=True)
    uids = [m.uid for m in snap.messages]
    flags_only = await backend.fetch(snap.mailbox_id, uids, FetchNeed.FLAGS)
    assert [d.uid for d in flags_only] == uids
    assert all(d.flags == frozenset() and d.body is None and d.summary is None for d in flags_only)
    assert all(d.size is None and d.internaldate is None for d in flags_only)
    full = await backend.fetch(
        snap.mailbox_id,
        list(reversed(uids)),
        FetchNeed.BODY | FetchNeed.SIZE | FetchNeed.SUMMARY | FetchNeed.INTERNALDATE,
    )
    assert [d.uid for d in full] == uids  # UID order whatever the request order
    assert full[0].body == message(1)
    assert all(d.size == len(d.body or b"") for d in full)
    assert full[0].summary is not None
    assert full[0].internaldate is not None
    # UIDs that do not exist are skipped, not an error.
    assert await backend.fetch(snap.mailbox_id, [uids[-1] + 100], FetchNeed.FLAGS) == []


async def test_store_operations_and_events(backend: MailBackend, events: list[MailEvent]) -> None:
    uids = await fill(backend, 2)
    snap = await backend.select("INBOX", read_only=False)
    box = snap.mailbox_id
    events.clear()
    added = await backend.store_flags(
        box, uids, StoreOperation.ADD, frozenset({"\\Seen", "$Label1"})
    )
    assert [m.uid for m in added] == uids
    assert all(m.flags == {"\\Seen", "$Label1"} for m in added)
    changed = [e for e in events if isinstance(e, FlagsChanged)]
    assert len(changed) == 1 and [m.uid for m in changed[0].messages] == uids
    removed = await backend.store_flags(
        box, [uids[0]], StoreOperation.REMOVE, frozenset({"$Label1"})
    )
    assert removed[0].flags == {"\\Seen"}
    replaced = await backend.store_flags(
        box, [uids[1]], StoreOperation.REPLACE, frozenset({"\\Flagged"})
    )
    assert replaced[0].flags == {"\\Flagged"}
    # \Recent cannot be stored (RFC 3501 §2.3.2).
    recent = await backend.store_flags(box, [uids[1]], StoreOperation.ADD, frozenset({"\\Recent"}))
    assert "\\Recent" not in recent[0].flags
    data = await backend.fetch(box, uids, FetchNeed.FLAGS)
    assert [d.flags for d in data] == [{"\\Seen"}, {"\\Flagged"}]


async def test_store_no_change_publishes_nothing(
    backend: MailBackend, events: list[MailEvent]
) -> None:
    uids = await fill(backend, 1)
    snap = await backend.select("INBOX", read_only=False)
    events.clear()
    result = await backend.store_flags(
        snap.mailbox_id, uids, StoreOperation.REMOVE, frozenset({"\\Seen"})
    )
    assert [m.uid for m in result] == uids
    assert not any(isinstance(e, FlagsChanged) for e in events)


async def test_modseq_grows_and_unchangedsince(backend: MailBackend) -> None:
    uids = await fill(backend, 2)
    snap = await backend.select("INBOX", read_only=False)
    box = snap.mailbox_id
    before = {m.uid: m.modseq for m in snap.messages}
    first = await backend.store_flags(box, [uids[0]], StoreOperation.ADD, frozenset({"\\Seen"}))
    assert first[0].modseq > before[uids[0]]
    assert (await backend.status("INBOX")).highestmodseq >= first[0].modseq
    # RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE is left alone.
    guarded = await backend.store_flags(
        box, uids, StoreOperation.ADD, frozenset({"\\Flagged"}), unchanged_since=before[uids[1]]
    )
    assert [m.uid for m in guarded] == [uids[1]]
    data = await backend.fetch(box, uids, FetchNeed.FLAGS)
    assert data[0].flags == {"\\Seen"}
    assert data[1].flags == {"\\Flagged"}


async def test_copy_preserves_flags_and_pairs_uids(
    backend: MailBackend, events: list[MailEvent]
) -> None:
    await fill(backend, 3)
    await backend.create_mailbox("Copies")
    snap = await backend.select("INBOX", read_only=False)
    uids = [m.uid for m in snap.messages]
    await backend.store_flags(
        snap.mailbox_id, [uids[2]], StoreOperation.ADD, frozenset({"\\Flagged"})
    )
    events.clear()
    result = await backend.copy(snap.mailbox_id, [uids[2], uids[0]], "Copies")
    status = await backend.status("Copies")
    assert result.uidvalidity == status.uidvalidity
    assert result.source_uids == (uids[0], uids[2])  # ascending source order
    assert list(result.dest_uids) == sorted(result.dest_uids)
    added = [e for e in events if isinstance(e, MessagesAdded)]
    assert [m.uid for m in added[0].messages] == list(result.dest_uids)
    dest = await backend.select("Copies", read_only=True)
    data = await backend.fetch(
        dest.mailbox_id, list(result.dest_uids), FetchNeed.FLAGS | FetchNeed.BODY
    )
    assert data[0].body == message(1) and data[0].flags == frozenset()
    assert data[1].body == message(3) and data[1].flags == {"\\Flagged"}
    # The source is untouched.
    assert (await backend.status("INBOX")).messages == 3


async def test_move(backend: MailBackend, events: list[MailEvent]) -> None:
    uids = await fill(backend, 3)
    snap = await backend.select("INBOX", read_only=False)
    events.clear()
    result = await backend.move(snap.mailbox_id, [uids[1]], "Archive")
    assert result.source_uids == (uids[1],)
    assert len(result.dest_uids) == 1
    expunged = [e for e in events if isinstance(e, MessagesExpunged)]
    assert expunged and expunged[0].uids == (uids[1],)
    assert any(isinstance(e, MessagesAdded) for e in events)
    remaining = await backend.fetch(snap.mailbox_id, uids, FetchNeed.FLAGS)
    assert [d.uid for d in remaining] == [uids[0], uids[2]]
    assert (await backend.status("Archive")).messages == 1


async def test_copy_to_missing_mailbox(backend: MailBackend) -> None:
    uids = await fill(backend, 1)
    snap = await backend.select("INBOX", read_only=False)
    with pytest.raises(MailboxNotFound):
        await backend.copy(snap.mailbox_id, uids, "Missing")
    with pytest.raises(MailboxNotFound):
        await backend.move(snap.mailbox_id, uids, "Missing")
    assert (await backend.status("INBOX")).messages == 1


async def test_expunge_all_and_by_uid(backend: MailBackend, events: list[MailEvent]) -> None:
    uids = await fill(backend, 4)
    snap = await backend.select("INBOX", read_only=False)
    box = snap.mailbox_id
    await backend.store_flags(box, uids[:3], StoreOperation.ADD, frozenset({"\\Deleted"}))
    events.clear()
    # UID EXPUNGE (RFC 4315 §2.1) only removes the named messages.
    assert await backend.expunge(box, [uids[1], uids[3]]) == [uids[1]]
    assert [e.uids for e in events if isinstance(e, MessagesExpunged)] == [(uids[1],)]
    assert await backend.expunge(box) == [uids[0], uids[2]]
    assert [d.uid for d in await backend.fetch(box, uids, FetchNeed.FLAGS)] == [uids[3]]
    assert await backend.expunge(box) == []


async def test_keywords_round_trip(backend: MailBackend) -> None:
    result = await backend.append("INBOX", message(1), frozenset({"$Forwarded", "Urgent"}), None)
    snap = await backend.select("INBOX", read_only=True)
    assert snap.allows_new_keywords or {"$Forwarded", "Urgent"} <= snap.permanent_flags
    data = await backend.fetch(snap.mailbox_id, [result.uid], FetchNeed.FLAGS)
    assert data[0].flags == {"$Forwarded", "Urgent"}


async def test_size_is_len_of_body(backend: MailBackend) -> None:
    big = message(1, body="x" * 5000)
    result = await backend.append("INBOX", big, frozenset(), None)
    snap = await backend.select("INBOX", read_only=True)
    data = await backend.fetch(snap.mailbox_id, [result.uid], FetchNeed.SIZE | FetchNeed.BODY)
    assert data[0].body == big
    assert data[0].size == len(big)


async def test_quota_reports_usage(backend: MailBackend) -> None:
    # A backend may not know its quota; then it says None every time.
    known = await backend.quota() is not None
    await backend.append("INBOX", message(1, body="y" * 4096), frozenset(), None)
    after = await backend.quota()
    assert (after is not None) == known
    if after is not None:
        assert after.used_kib >= 4
        assert after.limit_kib > 0


async def test_events_name_the_mailbox(backend: MailBackend, events: list[MailEvent]) -> None:
    await backend.create_mailbox("Elsewhere")
    inbox = await backend.select("INBOX", read_only=True)
    await backend.append("Elsewhere", message(1), frozenset(), None)
    added = [e for e in events if isinstance(e, MessagesAdded)]
    assert added and added[0].mailbox_id != inbox.mailbox_id
