"""Client writes go to Graph first and the store follows Graph's answer (simulator)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.backend.errors import MailboxNotFound, NotPermitted, Unavailable
from bridge.backend.events import EventBus
from bridge.backend.remote import DeleteMode, NewMessage, RemoteUnavailable
from bridge.backend.types import AccountIdentity, FetchNeed, StoreOperation
from bridge.store import mailstate as ms
from bridge.sync import open_cached_backend

from .harness import Account, mail, open_account

SLASH = "\u2215"


def folder_named(sim: Any, user: Any, name: str, parent: str | None = None) -> dict[str, Any]:
    for folder in sim.folders(user):
        if folder["displayName"] == name and (parent is None or folder["parentFolderId"] == parent):
            return folder  # type: ignore[no-any-return]
    raise AssertionError(f"no folder {name!r} in the simulator")


def sim_message(sim: Any, user: Any, folder: str, subject: str) -> dict[str, Any]:
    for message in sim.messages(user, folder):
        if message["subject"] == subject:
            return message  # type: ignore[no-any-return]
    raise AssertionError(f"no message {subject!r} in {folder}")


def verb(message: dict[str, Any]) -> str | None:
    for prop in message["singleValueExtendedProperties"]:
        if prop["id"].lower().endswith("0x1081"):
            return str(prop["value"])
    return None


async def test_create_rename_delete_mailboxes_reach_graph(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    backend = account.backend
    await backend.create_mailbox(f"Clients/Acme{SLASH}Corp")
    clients = folder_named(sim, alice, "Clients")
    acme = folder_named(sim, alice, "Acme/Corp", parent=clients["id"])
    appended = await backend.append(f"Clients/Acme{SLASH}Corp", mail(1), frozenset(), None)
    before = await backend.status(f"Clients/Acme{SLASH}Corp")

    await backend.rename_mailbox("Clients", "Partners/Clients")
    partners = folder_named(sim, alice, "Partners")
    assert folder_named(sim, alice, "Clients", parent=partners["id"])["id"] == clients["id"]
    after = await backend.status(f"Partners/Clients/Acme{SLASH}Corp")
    assert (after.uidvalidity, after.uidnext, after.messages) == (
        before.uidvalidity,
        before.uidnext,
        1,
    )
    snap = await backend.select(f"Partners/Clients/Acme{SLASH}Corp", read_only=True)
    assert snap.mailbox_id == acme["id"]
    assert [m.uid for m in snap.messages] == [appended.uid]
    # A sync after the rename changes nothing a client sees.
    account.events.clear()
    await account.sync()
    assert account.events == []

    await backend.delete_mailbox(f"Partners/Clients/Acme{SLASH}Corp")
    # Graph's DELETE moves a folder into Deleted Items (facts §6.4).
    assert not [f for f in sim.folders(alice) if f["parentFolderId"] == clients["id"]]
    with pytest.raises(NotPermitted):
        await backend.delete_mailbox("Sent Items")
    with pytest.raises(NotPermitted):
        await backend.delete_mailbox("Partners")  # has a child; Graph would delete it too
    names = [m.name for m in await backend.list_mailboxes()]
    assert "Partners/Clients" in names and f"Partners/Clients/Acme{SLASH}Corp" not in names


async def test_store_flags_round_trip_through_graph(account: Account, tmp_path: Path) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1))
    await account.sync()
    snap = await account.backend.select("INBOX", read_only=False)
    uid = snap.messages[0].uid
    wanted = frozenset({"\\Seen", "\\Flagged", "\\Answered", "Red~20category", "$Work"})
    result = await account.backend.store_flags(snap.mailbox_id, [uid], StoreOperation.ADD, wanted)
    assert result[0].flags == wanted
    remote = sim_message(sim, alice, "inbox", "Message 1")
    assert remote["isRead"] is True
    assert remote["flag"]["flagStatus"] == "flagged"
    assert sorted(remote["categories"]) == ["$Work", "Red category"]
    assert verb(remote) == "102"
    # \Draft cannot be stored; \Deleted stays local.
    result = await account.backend.store_flags(
        snap.mailbox_id, [uid], StoreOperation.ADD, frozenset({"\\Draft", "\\Deleted"})
    )
    assert result[0].flags == wanted | {"\\Deleted"}
    assert sim_message(sim, alice, "inbox", "Message 1")["isDraft"] is False
    # Another bridge reading the same mailbox from scratch sees the same flags.
    fresh, app = await open_account(account.tenant, tmp_path / "second")
    try:
        await fresh.sync()
        again = await fresh.backend.select("INBOX", read_only=True)
        assert again.messages[0].flags == wanted
    finally:
        await fresh.close()
        await app.aclose()
    # Removing \Answered clears the last verb; a replay of our own change is quiet.
    await account.backend.store_flags(
        snap.mailbox_id, [uid], StoreOperation.REMOVE, frozenset({"\\Answered"})
    )
    assert verb(sim_message(sim, alice, "inbox", "Message 1")) in (None, "0")
    account.events.clear()
    await account.sync()
    assert account.events == []


async def test_append_keeps_client_bytes_and_draft_state(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    plain = mail(1, body="Appended, not a draft.")
    result = await account.backend.append("INBOX", plain, frozenset({"\\Seen"}), None)
    remote = sim_message(sim, alice, "inbox", "Message 1")
    assert remote["isDraft"] is False and remote["isRead"] is True
    snap = await account.backend.select("INBOX", read_only=True)
    data = await account.backend.fetch(
        snap.mailbox_id, [result.uid], FetchNeed.BODY | FetchNeed.SIZE | FetchNeed.FLAGS
    )
    assert data[0].body == plain and data[0].size == len(plain)
    assert data[0].flags == {"\\Seen"}
    # The sync engine sees the same message: no second UID.
    await account.sync()
    assert (await account.backend.status("INBOX")).messages == 1

    draft = await account.backend.append("INBOX", mail(2), frozenset({"\\Draft"}), None)
    into_drafts = await account.backend.append("Drafts", mail(3), frozenset(), None)
    assert sim_message(sim, alice, "inbox", "Message 2")["isDraft"] is True
    assert sim_message(sim, alice, "drafts", "Message 3")["isDraft"] is True
    drafts = await account.backend.select("Drafts", read_only=True)
    flags = await account.backend.fetch(drafts.mailbox_id, [into_drafts.uid], FetchNeed.FLAGS)
    assert "\\Draft" in (flags[0].flags or set())
    inbox = await account.backend.fetch(snap.mailbox_id, [draft.uid], FetchNeed.BODY)
    assert inbox[0].body == mail(2)
    await account.sync()
    assert (await account.backend.status("INBOX")).messages == 2
    assert (await account.backend.status("Drafts")).messages == 1


async def test_copy_and_move_use_graph_and_return_copyuid(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    for n in (1, 2):
        sim.deliver(alice, mail(n))
    await account.sync()
    info = await account.backend.create_mailbox("Dest")
    inbox = await account.backend.select("INBOX", read_only=False)
    uids = [m.uid for m in inbox.messages]
    copied = await account.backend.copy(inbox.mailbox_id, uids, "Dest")
    assert copied.source_uids == tuple(uids) and len(copied.dest_uids) == 2
    assert len(sim.messages(alice, info.mailbox_id)) == 2
    assert len(sim.messages(alice, "inbox")) == 2
    moved = await account.backend.move(inbox.mailbox_id, uids[:1], "Dest")
    assert moved.dest_uids[0] > max(copied.dest_uids)
    assert len(sim.messages(alice, "inbox")) == 1
    assert len(sim.messages(alice, info.mailbox_id)) == 3
    account.events.clear()
    await account.sync()
    assert account.events == []
    assert (await account.backend.status("Dest")).messages == 3
    assert (await account.backend.status("INBOX")).messages == 1


@pytest.mark.parametrize("mode", list(DeleteMode))
async def test_expunge_modes(tenant: Any, tmp_path: Path, mode: DeleteMode) -> None:
    sim, alice = tenant.sim, tenant.alice
    acc, app = await open_account(tenant, tmp_path, expunge_mode=mode)
    try:
        sim.deliver(alice, mail(1), received=datetime(2026, 1, 1, tzinfo=UTC))
        sim.deliver(alice, mail(2), received=datetime(2026, 1, 2, tzinfo=UTC))
        await acc.sync()
        inbox = await acc.backend.select("INBOX", read_only=False)
        uids = [m.uid for m in inbox.messages]
        await acc.backend.store_flags(
            inbox.mailbox_id, uids, StoreOperation.ADD, frozenset({"\\Deleted"})
        )
        # UID EXPUNGE touches only the given UIDs (RFC 4315 §2.1).
        assert await acc.backend.expunge(inbox.mailbox_id, [uids[0]]) == [uids[0]]
        assert [m["subject"] for m in sim.messages(alice, "inbox")] == ["Message 2"]
        in_trash = [m["subject"] for m in sim.messages(alice, "deleteditems")]
        assert in_trash == (["Message 1"] if mode is DeleteMode.TRASH else [])
        await acc.sync()
        assert (await acc.backend.status("INBOX")).messages == 1
        assert (await acc.backend.status("Deleted Items")).messages == len(in_trash)
    finally:
        await acc.close()
        await app.aclose()


async def test_graph_down_keeps_cached_reads_and_refuses_the_rest(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1))
    sim.deliver(alice, mail(2))
    await account.sync()
    backend = account.backend
    inbox = await backend.select("INBOX", read_only=False)
    first, second = (m.uid for m in inbox.messages)
    cached = await backend.fetch(inbox.mailbox_id, [first], FetchNeed.BODY)
    sim.faults.error_rate = 1.0
    try:
        again = await backend.fetch(
            inbox.mailbox_id, [first], FetchNeed.BODY | FetchNeed.SIZE | FetchNeed.SUMMARY
        )
        assert again[0].body == cached[0].body and again[0].size == len(cached[0].body or b"")
        with pytest.raises(Unavailable) as down:
            await backend.fetch(inbox.mailbox_id, [second], FetchNeed.BODY)
        assert "Microsoft 365" in str(down.value)
        before = await backend.fetch(inbox.mailbox_id, [first, second], FetchNeed.FLAGS)
        with pytest.raises(Unavailable):
            await backend.store_flags(
                inbox.mailbox_id, [first], StoreOperation.ADD, frozenset({"\\Seen"})
            )
        with pytest.raises(Unavailable):
            await backend.append("INBOX", mail(3), frozenset(), None)
        with pytest.raises(Unavailable):
            await backend.create_mailbox("Offline")
        with pytest.raises(RemoteUnavailable):
            await account.engine.sync_now()
        assert account.engine.progress()["state"] == "connectError"
        assert await backend.fetch(inbox.mailbox_id, [first, second], FetchNeed.FLAGS) == before
        assert (await backend.status("INBOX")).messages == 2
        assert "Offline" not in [m.name for m in await backend.list_mailboxes()]
    finally:
        sim.faults.error_rate = 0.0
    assert all(m["isRead"] is False for m in sim.messages(alice, "inbox"))
    await account.sync()
    assert account.engine.progress()["state"] == "connected"


async def test_body_size_is_the_length_of_the_served_bytes(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    mid = sim.deliver(alice, mail(1, body="x" * 3000))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=True)
    uid = inbox.messages[0].uid
    size = await account.backend.fetch(inbox.mailbox_id, [uid], FetchNeed.SIZE)
    assert size[0].size == len(sim.mime(alice, mid))
    body = await account.backend.fetch(inbox.mailbox_id, [uid], FetchNeed.BODY | FetchNeed.SIZE)
    assert body[0].size == len(body[0].body or b"") == size[0].size
    # What was served is pinned: it stays on disk whatever the cache does later.
    digest = await account.store.read(
        lambda db: db.execute(
            "SELECT body_hash FROM ms_messages WHERE account_id = ? AND uid = ?",
            ["alice", uid],
        ).fetchone()[0]
    )
    assert account.blobs.is_pinned(digest)


async def test_other_accounts_mailboxes_are_unreachable(account: Account) -> None:
    tenant = account.tenant
    tenant.sim.deliver(tenant.bob, mail(1))
    mailbox = await account.app.resolve_mailbox(tenant.bob.upn)
    bob, bob_engine = await open_cached_backend(
        account.store,
        account.blobs,
        account.app.remote(mailbox),
        AccountIdentity(account_id="bob", login="bob", email=tenant.bob.mail),
        EventBus(),
        account.settings,
        start=False,
    )
    await bob_engine.sync_now()
    bob_inbox = await bob.select("INBOX", read_only=True)
    assert bob_inbox.messages
    uid = bob_inbox.messages[0].uid
    alice = account.backend
    with pytest.raises(MailboxNotFound):
        await alice.fetch(bob_inbox.mailbox_id, [uid], FetchNeed.BODY)
    with pytest.raises(MailboxNotFound):
        await alice.store_flags(bob_inbox.mailbox_id, [uid], StoreOperation.ADD, frozenset())
    with pytest.raises(MailboxNotFound):
        await alice.expunge(bob_inbox.mailbox_id)
    with pytest.raises(MailboxNotFound):
        await alice.copy(bob_inbox.mailbox_id, [uid], "INBOX")
    with pytest.raises(MailboxNotFound):
        await alice.claim_recent(bob_inbox.mailbox_id, [uid])
    assert bob_inbox.mailbox_id not in {m.mailbox_id for m in await alice.list_mailboxes()}
    assert (await alice.status("INBOX")).messages == 0


async def test_append_of_a_sent_message_adopts_the_sent_items_copy(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    tenant = account.tenant
    sent = (
        mail(7)
        .replace(b"Carol <carol@example.test>", tenant.alice.mail.encode())
        .replace(b"Alice <alice@example.test>", tenant.bob.mail.encode())
    )
    await account.remote.send_mime(sent)
    assert len(sim.messages(alice, "sentitems")) == 1
    result = await account.backend.append("Sent Items", sent, frozenset({"\\Seen"}), None)
    assert len(sim.messages(alice, "sentitems")) == 1  # no duplicate
    box = (await account.backend.select("Sent Items", read_only=True)).mailbox_id
    data = await account.backend.fetch(box, [result.uid], FetchNeed.BODY | FetchNeed.FLAGS)
    assert data[0].body == sent and "\\Seen" in (data[0].flags or set())
    await account.sync()
    assert (await account.backend.status("Sent Items")).messages == 1
    # Saving it again answers the same UID.
    again = await account.backend.append("Sent Items", sent, frozenset({"\\Seen"}), None)
    assert again.uid == result.uid
    assert len(sim.messages(alice, "sentitems")) == 1


async def test_append_retried_after_a_crash_does_not_duplicate(account: Account) -> None:
    """The first attempt journaled its intent and Graph created the message, then the
    bridge died before recording it; the sync gave it a UID; the client retries."""
    sim, alice = account.tenant.sim, account.tenant.alice
    inbox = await account.backend.select("INBOX", read_only=True)
    body = mail(9)
    await account.store.write(
        lambda db: ms.begin_append(
            db, "alice", inbox.mailbox_id, "<cached-9@example.test>", time.time() - 5
        )
    )
    await account.remote.create_message(
        NewMessage(
            folder_id=inbox.mailbox_id,
            mime=body,
            is_draft=False,
            is_read=False,
            internet_message_id="<cached-9@example.test>",
        )
    )
    await account.sync()
    synced = await account.backend.select("INBOX", read_only=True)
    assert len(synced.messages) == 1
    result = await account.backend.append("INBOX", body, frozenset(), None)
    assert result.uid == synced.messages[0].uid
    assert len(sim.messages(alice, "inbox")) == 1
    data = await account.backend.fetch(inbox.mailbox_id, [result.uid], FetchNeed.BODY)
    assert data[0].body == body
    # The journal entry is gone: appending the same message again is a new message.
    again = await account.backend.append("INBOX", body, frozenset(), None)
    assert again.uid > result.uid
    assert len(sim.messages(alice, "inbox")) == 2


async def test_append_with_unknown_outcome_looks_up_before_retrying(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.faults.fail_next("message.create", count=1, status=504)
    sim.reset_counters(alice)
    result = await account.backend.append("INBOX", mail(11), frozenset(), None)
    kinds = sim.counters(alice).by_kind
    # The injected 504 never reaches the counters; the lookup and the retry do.
    assert kinds.get("GET messages.list") == 1
    assert kinds.get("POST message.create") == 1
    assert [m["subject"] for m in sim.messages(alice, "inbox")] == ["Message 11"]
    assert (await account.backend.status("INBOX")).uidnext == result.uid + 1
    # Without a Message-ID there is nothing to look up: no blind retry.
    sim.faults.fail_next("message.create", count=1, status=504)
    anonymous = mail(12).replace(b"Message-ID: <cached-12@example.test>\r\n", b"")
    with pytest.raises(Unavailable):
        await account.backend.append("INBOX", anonymous, frozenset(), None)
    assert len(sim.messages(alice, "inbox")) == 1


async def test_move_into_the_same_mailbox_renumbers(account: Account) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1))
    await account.sync()
    inbox = await account.backend.select("INBOX", read_only=False)
    old = inbox.messages[0].uid
    result = await account.backend.move(inbox.mailbox_id, [old], "INBOX")
    assert result.source_uids == (old,) and result.dest_uids[0] > old
    assert [m.uid for m in (await account.backend.select("INBOX", True)).messages] == [
        result.dest_uids[0]
    ]
    assert len(sim.messages(alice, "inbox")) == 1
    account.events.clear()
    await account.sync()
    assert account.events == []
