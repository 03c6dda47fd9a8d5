"""GraphRemote against the simulator: folders, delta, flags, move/copy/delete, APPEND,
submission, retries, limits and OutcomeUnknown."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
from datetime import UTC, datetime

import pytest

from bridge.backend.remote import (
    DeleteMode,
    DeltaTokenExpired,
    FlagChange,
    NewMessage,
    OutcomeUnknown,
    RemoteConflict,
    RemoteMessage,
    RemoteNotFound,
    RemoteRejected,
    RemoteUnavailable,
)
from bridge.graph import GraphApp, GraphRemote
from tests.conftest import SimTenant
from tests.graph.conftest import Sleeps, secret_credentials, sim_cloud


def mime(
    n: int | str,
    *,
    sender: str = "bob@example.net",
    to: str = "alice@example.net",
    attachments: tuple[tuple[str, bytes], ...] = (),
    message_id: str | None = None,
) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"message {n}"
    msg["Date"] = "Tue, 02 Jan 2024 10:00:00 +0000"
    msg["Message-ID"] = message_id or f"<m{n}@example.net>"
    msg.set_content(f"body {n}\n")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


async def _remote(app: GraphApp, tenant: SimTenant) -> GraphRemote:
    return app.remote(await app.resolve_mailbox(tenant.alice.upn))


async def _attachment_bytes(
    app: GraphApp, remote: GraphRemote, message_id: str
) -> dict[str, bytes]:
    base = f"/users/{remote.mailbox.id}/messages/{message_id}/attachments"
    listing = await app.get_json(base, mailbox=remote.mailbox.id)
    out = {}
    for att in listing["value"]:
        resp = await app.request("GET", f"{base}/{att['id']}/$value", mailbox=remote.mailbox.id)
        out[att["name"]] = resp.content
    return out


def _attachments_of(raw: bytes) -> dict[str, bytes]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return {
        part.get_filename(): part.get_payload(decode=True)
        for part in msg.walk()
        if part.get_filename()
    }


# --- folders -----------------------------------------------------------------------------


async def test_folders_nested_hidden_search_and_well_known(
    app: GraphApp, tenant: SimTenant
) -> None:
    sim = tenant.sim
    remote = await _remote(app, tenant)
    projects = await remote.create_folder(None, "Projects")
    child = await remote.create_folder(projects.id, "2024/Q1")  # "/" inside a name
    grandchild = await remote.create_folder(child.id, "Deep")
    sim.create_folder(tenant.alice, "Secret", hidden=True)
    sim.create_search_folder(tenant.alice, "Unread", "isRead eq false")

    visible = await remote.list_folders()
    by_name = {f.display_name: f for f in visible}
    assert by_name["Projects"].parent_id is None
    assert by_name["2024/Q1"].parent_id == projects.id
    assert by_name["Deep"].parent_id == grandchild.parent_id == child.id
    assert by_name["Inbox"].well_known == "inbox"
    assert by_name["Sent Items"].well_known == "sentitems"
    assert "Secret" not in by_name
    assert by_name["Unread"].is_search_folder
    order = [f.id for f in visible]
    assert order.index(projects.id) < order.index(child.id) < order.index(grandchild.id)

    everything = {f.display_name: f for f in await remote.list_folders(include_hidden=True)}
    assert everything["Secret"].hidden

    with pytest.raises(RemoteConflict):
        await remote.create_folder(None, "Projects")
    renamed = await remote.rename_folder(child.id, "2025")
    assert renamed.display_name == "2025" and renamed.parent_id == projects.id
    moved = await remote.move_folder(child.id, None)
    assert moved.parent_id is None
    await remote.delete_folder(projects.id)
    after = {f.display_name: f for f in await remote.list_folders()}
    # Facts §6.4: a deleted folder goes to Deleted Items.
    assert after["Projects"].parent_id == (await remote.well_known_folders())["deleteditems"]


# --- delta -------------------------------------------------------------------------------


async def _round(
    remote: GraphRemote, folder: str, link: str | None
) -> tuple[list[RemoteMessage], list[str], str]:
    messages: list[RemoteMessage] = []
    removed: list[str] = []
    while True:
        page = await remote.message_delta(folder, link)
        messages.extend(page.messages)
        removed.extend(page.removed_ids)
        if page.delta_link:
            return messages, removed, page.delta_link
        link = page.next_link


async def test_delta_rounds_with_pages_changes_removals_and_410(
    app: GraphApp, tenant: SimTenant
) -> None:
    sim = tenant.sim
    remote = app.remote(await app.resolve_mailbox(tenant.alice.upn), delta_page_size=10)
    ids = [sim.deliver(tenant.alice, mime(i)) for i in range(13)]
    inbox = (await remote.well_known_folders())["inbox"]

    first = await remote.message_delta(inbox, None)
    assert first.next_link and len(first.messages) == 10  # maxpagesize honoured
    messages, removed, link = await _round(remote, inbox, first.next_link)
    assert {m.id for m in first.messages + tuple(messages)} == set(ids)
    assert removed == []

    sim.set_read(tenant.alice, ids[0])
    sim.set_extended_property(tenant.alice, ids[1], "Integer 0x1081", "104")
    sim.delete(tenant.alice, ids[2])
    messages, removed, link2 = await _round(remote, inbox, link)
    changed = {m.id: m for m in messages}
    assert changed[ids[0]].is_read is True
    assert changed[ids[1]].last_verb == 104
    assert removed == [ids[2]]

    sim.expire_delta_tokens(tenant.alice, "inbox")
    with pytest.raises(DeltaTokenExpired):
        await remote.message_delta(inbox, link2)


async def test_delta_on_a_deleted_folder_is_not_found(app: GraphApp, tenant: SimTenant) -> None:
    remote = await _remote(app, tenant)
    folder = await remote.create_folder(None, "Gone")
    tenant.sim.delete_folder(tenant.alice, folder.id, permanent=True)
    with pytest.raises(RemoteNotFound, match="folder no longer exists"):
        await remote.message_delta(folder.id, None)


# --- flags, move, copy, delete -----------------------------------------------------------


async def test_flags_through_batch(app: GraphApp, tenant: SimTenant) -> None:
    sim = tenant.sim
    remote = await _remote(app, tenant)
    a, b, c = (sim.deliver(tenant.alice, mime(i)) for i in range(3))
    results = await remote.update_flags(
        [
            FlagChange(a, is_read=True, flagged=True),
            FlagChange(b, categories=("$label1", "Work"), last_verb=102),
            FlagChange(c, last_verb=104),
            FlagChange("AAMkAGdvbmU=", is_read=True),
        ]
    )
    ra, rb, rc = results[a], results[b], results[c]
    assert isinstance(ra, RemoteMessage) and ra.is_read and ra.flagged
    assert isinstance(rb, RemoteMessage) and rb.categories == ("$label1", "Work")
    assert rb.last_verb == 102
    assert isinstance(rc, RemoteMessage) and rc.last_verb == 104
    assert isinstance(results["AAMkAGdvbmU="], RemoteNotFound)
    stored = sim.message(tenant.alice, b)
    props = {p["id"].lower(): p["value"] for p in stored["singleValueExtendedProperties"]}
    assert props["integer 0x1081"] == "102" and props["integer 0x1080"] == "261"
    fetched = await remote.get_message(c)
    assert fetched.last_verb == 104 and fetched.change_key == rc.change_key


async def test_move_keeps_immutable_ids_copy_makes_new_ones(
    app: GraphApp, tenant: SimTenant
) -> None:
    sim = tenant.sim
    remote = await _remote(app, tenant)
    dest = await remote.create_folder(None, "Archive 2024")
    ids = [sim.deliver(tenant.alice, mime(i)) for i in range(3)]
    moved = await remote.move_messages(ids[:2], dest.id)
    for mid in ids[:2]:
        result = moved[mid]
        assert isinstance(result, RemoteMessage)
        assert result.id == mid and result.folder_id == dest.id
    copied = await remote.copy_messages([ids[2]], dest.id)
    copy = copied[ids[2]]
    assert isinstance(copy, RemoteMessage) and copy.id != ids[2] and copy.folder_id == dest.id
    in_dest = {m["id"] for m in sim.messages(tenant.alice, dest.id)}
    assert in_dest == {ids[0], ids[1], copy.id}


async def test_delete_modes(app: GraphApp, tenant: SimTenant) -> None:
    sim = tenant.sim
    remote = await _remote(app, tenant)
    soft, trash, hard = (sim.deliver(tenant.alice, mime(i)) for i in range(3))
    assert await remote.delete_messages([soft], DeleteMode.SOFT) == {soft: None}
    assert await remote.delete_messages([trash], DeleteMode.TRASH) == {trash: None}
    assert await remote.delete_messages([hard], DeleteMode.PERMANENT) == {hard: None}
    assert sim.messages(tenant.alice, "inbox") == []
    assert [m["id"] for m in sim.messages(tenant.alice, "deleteditems")] == [trash]
    again = await remote.delete_messages([hard], DeleteMode.SOFT)
    assert isinstance(again[hard], RemoteNotFound)


# --- APPEND ------------------------------------------------------------------------------


async def test_create_non_draft_keeps_date_flags_and_big_attachment(
    app: GraphApp, tenant: SimTenant
) -> None:
    remote = await _remote(app, tenant)
    inbox = (await remote.well_known_folders())["inbox"]
    big = os.urandom(3_500_000)
    small = b"small attachment\n"
    received = datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)
    created = await remote.create_message(
        NewMessage(
            folder_id=inbox,
            mime=mime("append", attachments=(("big.bin", big), ("small.txt", small))),
            is_draft=False,
            is_read=False,
            flagged=True,
            categories=("Work",),
            received=received,
        )
    )
    assert created.is_draft is False and created.is_read is False and created.flagged
    assert created.received == received
    assert created.folder_id == inbox and created.categories == ("Work",)
    assert created.internet_message_id == "<mappend@example.net>"
    stored = await _attachment_bytes(app, remote, created.id)
    assert stored == {"big.bin": big, "small.txt": small}
    found = await remote.find_by_internet_message_id(inbox, "<mappend@example.net>")
    assert [m.id for m in found] == [created.id]


async def test_create_draft_from_mime_lands_in_the_target_folder(
    app: GraphApp, tenant: SimTenant
) -> None:
    remote = await _remote(app, tenant)
    folder = await remote.create_folder(None, "Templates")
    created = await remote.create_message(
        NewMessage(folder_id=folder.id, mime=mime("draft"), is_draft=True, is_read=False)
    )
    assert created.is_draft and created.folder_id == folder.id and not created.is_read
    assert b"body draft" in await remote.get_mime(created.id)
    drafts = (await remote.well_known_folders())["drafts"]
    assert tenant.sim.messages(tenant.alice, drafts) == []


async def test_find_by_internet_message_id_quotes_apostrophes(
    app: GraphApp, tenant: SimTenant
) -> None:
    remote = await _remote(app, tenant)
    mid = tenant.sim.deliver(tenant.alice, mime("q", message_id="<o'brien@example.net>"))
    inbox = (await remote.well_known_folders())["inbox"]
    found = await remote.find_by_internet_message_id(inbox, "<o'brien@example.net>")
    assert [m.id for m in found] == [mid]
    assert await remote.find_by_internet_message_id(inbox, "<none@example.net>") == []


# --- sending -----------------------------------------------------------------------------


async def test_send_small_mime(app: GraphApp, tenant: SimTenant) -> None:
    remote = await _remote(app, tenant)
    raw = mime("small", sender=tenant.alice.upn, to=tenant.bob.upn, attachments=(("a.txt", b"A"),))
    result = await remote.send_mime(raw)
    assert result.sent_message_id is None
    log = tenant.sim.sent_log(tenant.alice)
    assert len(log) == 1 and tenant.bob.upn in log[0].recipients
    assert _attachments_of(log[0].mime) == {"a.txt": b"A"}


async def test_send_large_mime_via_draft_and_upload_session(
    app: GraphApp, tenant: SimTenant
) -> None:
    remote = await _remote(app, tenant)
    big = os.urandom(4_500_000)
    small = os.urandom(10_000)
    raw = mime(
        "large",
        sender=tenant.alice.upn,
        to=tenant.bob.upn,
        attachments=(("big.bin", big), ("small.bin", small)),
    )
    assert len(raw) > 4_000_000
    result = await remote.send_mime(raw)
    assert result.sent_message_id
    log = tenant.sim.sent_log(tenant.alice)
    assert len(log) == 1 and tenant.bob.upn in log[0].recipients
    assert _attachments_of(log[0].mime) == {"big.bin": big, "small.bin": small}
    sent = await remote.get_message(result.sent_message_id)
    assert sent.folder_id == (await remote.well_known_folders())["sentitems"]


async def test_reset_after_send_is_outcome_unknown(app: GraphApp, tenant: SimTenant) -> None:
    remote = await _remote(app, tenant)
    await remote.list_folders()
    tenant.sim.set_faults(reset_rate=1.0)
    with pytest.raises(OutcomeUnknown):
        await remote.send_mime(mime("reset", sender=tenant.alice.upn, to=tenant.bob.upn))
    with pytest.raises(OutcomeUnknown):
        await remote.create_message(
            NewMessage(folder_id="inbox", mime=mime("r2"), is_draft=False, is_read=True)
        )


# --- retries and limits ------------------------------------------------------------------


async def test_503_and_429_are_retried_after_retry_after(
    app: GraphApp, tenant: SimTenant, sleeps: Sleeps
) -> None:
    remote = await _remote(app, tenant)
    mid = tenant.sim.deliver(tenant.alice, mime("retry"))
    tenant.sim.faults.fail_next("message.get", 2, 503, retry_after=1.5)
    tenant.sim.faults.fail_next("message.value", 1, 429, retry_after=2.25)
    assert (await remote.get_message(mid)).id == mid
    assert b"body retry" in await remote.get_mime(mid)
    assert sleeps == [1.5, 1.5, 2.25]
    assert app.stats(remote.mailbox.id).throttled == 3
    # A non-idempotent create refused with 503 is retried too: nothing was done.
    tenant.sim.faults.fail_next("message.create", 1, 503, retry_after=0.5)
    created = await remote.create_message(
        NewMessage(folder_id="inbox", mime=mime("c"), is_draft=False, is_read=True)
    )
    assert created.is_read and sleeps[-1] == 0.5


async def test_retries_are_bounded(tenant: SimTenant, sleeps: Sleeps) -> None:
    graph = GraphApp(sim_cloud(tenant), secret_credentials(tenant), sleep=sleeps, max_retries=2)
    try:
        remote = await _remote(graph, tenant)
        mid = tenant.sim.deliver(tenant.alice, mime("bounded"))
        tenant.sim.faults.fail_next("message.get", 5, 429, retry_after=3)
        with pytest.raises(RemoteUnavailable, match="throttling") as info:
            await remote.get_message(mid)
        assert info.value.retry_after == 3.0 and len(sleeps) == 2
        tenant.sim.faults.fail_next("message.create", 1, 504)
        with pytest.raises(OutcomeUnknown):
            await remote.create_message(
                NewMessage(folder_id="inbox", mime=mime("x"), is_draft=False, is_read=True)
            )
    finally:
        await graph.aclose()


async def test_twenty_concurrent_calls_stay_within_four_in_flight(
    app: GraphApp, tenant: SimTenant
) -> None:
    sim = tenant.sim
    remote = await _remote(app, tenant)
    ids = [sim.deliver(tenant.alice, mime(i)) for i in range(12)]
    sim.reset_counters(tenant.alice)
    sim.set_faults(latency=0.02)
    calls = [remote.get_mime(i) for i in ids] + [remote.get_message(i) for i in ids[:6]]
    calls.append(remote.update_flags([FlagChange(i, is_read=True) for i in ids]))
    calls.append(remote.list_folders())
    results = await asyncio.gather(*calls)
    counters = sim.counters(tenant.alice)
    assert counters.max_concurrency <= 4
    assert counters.throttled == 0
    assert all(not isinstance(r, Exception) for r in results)
    stats = app.stats(remote.mailbox.id)
    assert stats.max_in_flight <= 4 and stats.in_flight == 0 and stats.waits > 0


async def test_budget_window_keeps_requests_under_the_limit(tenant: SimTenant) -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    graph = GraphApp(
        sim_cloud(tenant),
        secret_credentials(tenant),
        budget_per_window=20,
        budget_window=60.0,
        clock=lambda: now[0],
        sleep=sleep,
    )
    try:
        remote = await _remote(graph, tenant)
        mid = tenant.sim.deliver(tenant.alice, mime("budget"))
        for _ in range(25):
            await remote.get_message(mid)
        assert slept and sum(slept) >= 60.0 - 1e-6
        assert graph.stats(remote.mailbox.id).budget_used == 25
    finally:
        await graph.aclose()


async def test_failed_attachment_step_removes_the_half_created_message(
    app: GraphApp, tenant: SimTenant
) -> None:
    remote = await _remote(app, tenant)
    inbox = (await remote.well_known_folders())["inbox"]
    tenant.sim.faults.fail_next("attachment.uploadSession", 1, 400)
    with pytest.raises(RemoteRejected):
        await remote.create_message(
            NewMessage(
                folder_id=inbox,
                mime=mime("half", attachments=(("big.bin", os.urandom(3_200_000)),)),
                is_draft=False,
                is_read=True,
            )
        )
    # The caller's retry check finds nothing, so a retry cannot duplicate the message.
    assert await remote.find_by_internet_message_id(inbox, "<mhalf@example.net>") == []


async def test_large_draft_append_uploads_the_big_part(app: GraphApp, tenant: SimTenant) -> None:
    remote = await _remote(app, tenant)
    drafts = (await remote.well_known_folders())["drafts"]
    big = os.urandom(4_200_000)
    created = await remote.create_message(
        NewMessage(
            folder_id="drafts",
            mime=mime("bigdraft", attachments=(("big.bin", big),)),
            is_draft=True,
            is_read=True,
            flagged=True,
        )
    )
    assert created.is_draft and created.folder_id == drafts and created.flagged
    assert await _attachment_bytes(app, remote, created.id) == {"big.bin": big}
