"""Two sessions on one MemoryBackend: how updates travel between them (RFC 3501 §5.2,
§7.4.1), \\Recent ownership, IDLE (RFC 2177), and a mailbox deleted under a session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.backend.memory import MemoryBackend

from .conftest import deliver
from .transcript import Client, message


async def two(new_client: Callable[..., Client]) -> tuple[Client, Client]:
    a, b = new_client(), new_client()
    for c in (a, b):
        c.skip()
        await c.login()
        await c.select()
    return a, b


async def until_output(client: Client) -> None:
    """Let the IDLE writer task run (no wall-clock sleeping)."""
    for _ in range(200):
        if client.buffer:
            return
        await asyncio.sleep(0)
    raise AssertionError("no output from the session")


async def test_store_in_one_session_shows_in_the_other_on_noop(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await deliver(backend, 2)
    a, b = await two(new_client)
    await a.C("a1 STORE 2 +FLAGS (\\Flagged)")
    a.S("* 2 FETCH (FLAGS (\\Flagged \\Recent))")
    a.OK("a1")
    await a.C("a2 NOOP")
    a.OK("a2")  # its own change is not reported twice
    await b.C("b1 NOOP")
    b.S("* 2 FETCH (UID 2 FLAGS (\\Flagged))")  # \Recent belongs to a
    b.OK("b1")
    await b.C("b2 NOOP")
    b.OK("b2")
    assert backend.pokes  # NOOP asked the backend to refresh


async def test_expunge_is_deferred_during_fetch_store_search(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await deliver(backend, 3)
    a, b = await two(new_client)
    await a.C("a1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.OK("a1")
    await a.C("a2 EXPUNGE")
    a.S("* 2 EXPUNGE")
    a.OK("a2")
    # b still numbers the messages 1..3: no EXPUNGE during FETCH, STORE, SEARCH.
    await b.C("b1 FETCH 1:3 (UID)")
    b.S("* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)")
    b.NO("b1", "EXPUNGEISSUED")
    await b.C("b2 STORE 3 +FLAGS (\\Seen)")
    b.S("* 3 FETCH (FLAGS (\\Seen))")
    b.OK("b2")
    await b.C("b3 SEARCH ALL")
    b.S("* SEARCH 1 3")
    b.OK("b3")
    # New mail meanwhile: EXISTS still counts the not-yet-expunged message.
    await backend.append("INBOX", message(4), frozenset(), None)
    await b.C("b4 FETCH 3 (UID)")
    b.S("* 3 FETCH (UID 3)", "* 4 EXISTS", "* 1 RECENT")
    b.OK("b4")
    # A UID command may carry the EXPUNGE (RFC 3501 §7.4.1 note).
    await b.C("b5 UID SEARCH ALL")
    b.S("* SEARCH 1 3 4", "* 2 EXPUNGE")
    b.OK("b5")
    await b.C("b6 FETCH 1:* (UID)")
    b.S("* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)")
    b.OK("b6")


async def test_expunge_reported_on_noop(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await deliver(backend, 3)
    a, b = await two(new_client)
    await a.C("a1 STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    await a.C("a2 EXPUNGE")
    a.responses_until("a2")
    await b.C("b1 NOOP")
    b.S("* 1 EXPUNGE", "* 2 EXPUNGE")
    b.OK("b1")


async def test_exists_and_recent_in_only_one_session(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    a, b = await two(new_client)
    await backend.append("INBOX", message(1), frozenset(), None)
    await a.C("a1 NOOP")
    a.S("* 1 EXISTS", "* 1 RECENT")
    a.OK("a1")
    await b.C("b1 NOOP")
    b.S("* 1 EXISTS", "* 0 RECENT")
    b.OK("b1")
    await a.C("a2 FETCH 1 FLAGS")
    a.S("* 1 FETCH (FLAGS (\\Recent))")
    a.OK("a2")
    await b.C("b2 SEARCH RECENT")
    b.S("* SEARCH")
    b.OK("b2")


async def test_append_to_selected_mailbox_reports_exists(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    a, _ = await two(new_client)
    body = message(1)
    await a.C(b"a1 APPEND INBOX {%d+}\r\n" % len(body) + body)
    a.S("* 1 EXISTS", "* 1 RECENT")
    a.OK("a1", "APPENDUID")


async def test_idle_pushes_updates_until_done(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await deliver(backend, 1)
    a, b = await two(new_client)
    await a.C("a1 IDLE")
    a.S("+ idling")
    await backend.append("INBOX", message(2), frozenset(), None)
    await until_output(a)
    a.S("* 2 EXISTS", "* 2 RECENT")  # a took message 1 at SELECT, and now message 2
    await b.C("b1 STORE 1 +FLAGS (\\Seen)")
    b.responses_until("b1")
    await until_output(a)
    a.S("* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen))")
    await b.C("b2 STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.C("b3 EXPUNGE")
    b.responses_until("b3")
    await until_output(a)
    a.S("* 1 EXPUNGE")  # EXPUNGE is allowed while idling
    await a.C("DONE")
    a.OK("a1")
    await a.C("a2 NOOP")
    a.OK("a2")
    assert backend.pokes


async def test_idle_in_authenticated_state_and_logout_during_idle(
    new_client: Callable[..., Client],
) -> None:
    a = new_client()
    a.skip()
    await a.login()
    await a.C("a1 IDLE")
    a.S("+ idling")
    await a.C("DONE")
    a.OK("a1")
    await a.C("a2 IDLE")
    a.S("+ idling")
    await a.session.close()
    assert a.session.idle is None


async def test_selected_mailbox_deleted_by_another_session(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await backend.create_mailbox("Doomed")
    a, b = new_client(), new_client()
    for c in (a, b):
        c.skip()
        await c.login()
    await a.select("Doomed")
    await b.C("b1 DELETE Doomed")
    b.OK("b1")
    await a.C("a1 NOOP")
    a.S("* BYE Selected mailbox was deleted or reset")
    assert a.session.closed


async def test_deleting_own_selected_mailbox_unselects(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await backend.create_mailbox("Doomed")
    a = new_client()
    a.skip()
    await a.login()
    await a.select("Doomed")
    await a.C("a1 DELETE Doomed")
    a.OK("a1")
    await a.C("a2 FETCH 1 FLAGS")
    a.BAD("a2")
    await a.C("a3 NOOP")
    a.OK("a3")


async def test_rename_of_selected_mailbox_keeps_session(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await backend.create_mailbox("Box")
    await deliver(backend, 2, mailbox="Box")
    a, b = new_client(), new_client()
    for c in (a, b):
        c.skip()
        await c.login()
    await a.select("Box")
    await b.C("b1 RENAME Box Renamed")
    b.OK("b1")
    await a.C("a1 UID FETCH 1:* (UID)")
    a.S("* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)")
    a.OK("a1")


async def test_idle_session_told_when_its_mailbox_is_deleted(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    await backend.create_mailbox("Doomed")
    closed: list[bool] = []
    a = new_client(on_close=lambda: closed.append(True))
    a.skip()
    await a.login()
    await a.select("Doomed")
    await a.C("a1 IDLE")
    a.S("+ idling")
    await backend.delete_mailbox("Doomed")
    await until_output(a)
    a.S("* BYE Selected mailbox was deleted or reset")
    assert a.session.closed
    assert closed == [True]  # the transport was told to hang up


async def test_garbage_instead_of_done_ends_idle(new_client: Callable[..., Client]) -> None:
    a = new_client()
    a.skip()
    await a.login()
    await a.C("a1 IDLE")
    a.S("+ idling")
    await a.C("a2 NOOP")
    a.BAD("a1")
    assert a.session.idle is None
    await a.C("a3 NOOP")
    a.OK("a3")
