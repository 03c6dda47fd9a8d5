"""Authenticated state: CREATE/DELETE/RENAME/SUBSCRIBE, LIST (+ extensions), LSUB,
STATUS, APPEND, NAMESPACE, ID, ENABLE, QUOTA."""

from __future__ import annotations

from bridge.backend.memory import MemoryBackend

from .conftest import deliver
from .transcript import Client, message


async def logged_in(client: Client) -> Client:
    client.skip()
    await client.login()
    return client


async def test_list_all(client: Client) -> None:
    await logged_in(client)
    await client.C('a1 LIST "" *')
    client.S(
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
    )
    client.OK("a1")
    await client.C('a2 LIST "" ""')
    client.S('* LIST (\\Noselect) "/" ""')
    client.OK("a2")


async def test_create_hierarchy_and_percent(client: Client) -> None:
    await logged_in(client)
    await client.C("a1 CREATE Work/Projects/Q1")
    client.OK("a1")
    await client.C('a2 LIST "" %')
    untagged, _ = client.responses_until("a2")
    assert '* LIST (\\HasChildren) "/" "Work"' in untagged
    assert not any("Projects" in line for line in untagged)
    await client.C('a3 LIST "Work/" %')
    client.S('* LIST (\\HasChildren) "/" "Work/Projects"')
    client.OK("a3")
    await client.C("a4 CREATE Work")
    client.NO("a4", "ALREADYEXISTS")
    await client.C('a5 LIST "" inbox')
    client.S('* LIST (\\HasNoChildren) "/" "INBOX"')
    client.OK("a5")


async def test_modified_utf7_names(client: Client) -> None:
    await logged_in(client)
    await client.C("a1 CREATE &ZeVnLIqe-")  # 日本語
    client.OK("a1")
    await client.C('a2 LIST "" &ZeVnLIqe-')
    client.S('* LIST (\\HasNoChildren) "/" "&ZeVnLIqe-"')
    client.OK("a2")
    infos = await client.session.backend.list_mailboxes()  # type: ignore[union-attr]
    assert "日本語" in {m.name for m in infos}


async def test_delete_and_rename(client: Client, backend: MemoryBackend) -> None:
    await logged_in(client)
    await client.C("a1 CREATE Old/Child")
    client.OK("a1")
    await client.C("a2 RENAME Old New")
    client.OK("a2")
    await client.C('a3 LIST "" New*')
    client.S('* LIST (\\HasChildren) "/" "New"', '* LIST (\\HasNoChildren) "/" "New/Child"')
    client.OK("a3")
    await client.C("a4 DELETE New/Child")
    client.OK("a4")
    await client.C("a5 DELETE Missing")
    client.NO("a5", "NONEXISTENT")
    await client.C("a6 DELETE INBOX")
    client.NO("a6", "CANNOT")
    await client.C("a7 RENAME New Sent")
    client.NO("a7", "ALREADYEXISTS")


async def test_rename_inbox(client: Client, backend: MemoryBackend) -> None:
    await deliver(backend, 2)
    await logged_in(client)
    await client.C("a1 RENAME INBOX Saved")
    client.OK("a1")
    await client.C("a2 STATUS INBOX (MESSAGES)")
    client.S('* STATUS "INBOX" (MESSAGES 0)')
    client.OK("a2")
    await client.C("a3 STATUS Saved (MESSAGES)")
    client.S('* STATUS "Saved" (MESSAGES 2)')
    client.OK("a3")


async def test_subscriptions_lsub_and_list_subscribed(client: Client) -> None:
    await logged_in(client)
    await client.C("a1 CREATE Lists/python")
    await client.C("a2 SUBSCRIBE Lists/python")
    client.skip(2)
    await client.C('a3 LSUB "" Lists/*')
    client.S('* LSUB () "/" "Lists/python"')
    client.OK("a3")
    await client.C('a4 LSUB "" %')
    untagged, _ = client.responses_until("a4")
    assert '* LSUB (\\Noselect) "/" "Lists"' in untagged
    await client.C('a5 LIST (SUBSCRIBED RECURSIVEMATCH) "" Lists')
    client.S('* LIST (\\HasChildren) "/" "Lists" ("CHILDINFO" ("SUBSCRIBED"))')
    client.OK("a5")
    await client.C('a6 LIST (SUBSCRIBED) "" Lists*')
    client.S('* LIST (\\HasNoChildren \\Subscribed) "/" "Lists/python"')
    client.OK("a6")
    await client.C("a7 UNSUBSCRIBE Lists/python")
    client.OK("a7")
    await client.C('a8 LSUB "" Lists/*')
    client.OK("a8")


async def test_list_special_use_selection_and_return(client: Client) -> None:
    await logged_in(client)
    await client.C('a1 LIST (SPECIAL-USE) "" *')
    untagged, _ = client.responses_until("a1")
    assert len(untagged) == 5
    assert all("INBOX" not in line for line in untagged)
    await client.C('a2 LIST "" Sent RETURN (SPECIAL-USE SUBSCRIBED)')
    client.S('* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" "Sent"')
    client.OK("a2")


async def test_list_status(client: Client, backend: MemoryBackend) -> None:
    await deliver(backend, 3)
    await logged_in(client)
    await client.C('a1 LIST "" INBOX RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
    client.S(
        '* LIST (\\HasNoChildren) "/" "INBOX"', '* STATUS "INBOX" (MESSAGES 3 UNSEEN 3 UIDNEXT 4)'
    )
    client.OK("a1")


async def test_status(client: Client, backend: MemoryBackend) -> None:
    await deliver(backend, 2)
    await deliver(backend, 1, flags=frozenset({"\\Seen"}))
    await logged_in(client)
    status = await backend.status("INBOX")
    await client.C("a1 STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)")
    client.S(
        f'* STATUS "INBOX" (MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY {status.uidvalidity} '
        f"UNSEEN 2 HIGHESTMODSEQ {status.highestmodseq})"
    )
    client.OK("a1")
    await client.C("a2 STATUS Nowhere (MESSAGES)")
    client.NO("a2", "NONEXISTENT")


async def test_append_with_literal_plus_and_sync_literal(
    client: Client, backend: MemoryBackend
) -> None:
    await logged_in(client)
    body = message(1)
    status = await backend.status("INBOX")
    await client.C(
        b'a1 APPEND INBOX (\\Seen $Work) "02-Nov-2026 10:00:00 +0100" {%d+}\r\n' % len(body) + body
    )
    client.OK("a1", f"APPENDUID {status.uidvalidity} 1")
    await client.C(b"a2 APPEND Drafts (\\Draft) {%d}" % len(body))
    client.S("+ Ready for literal data")
    await client.C(body)
    done = client.OK("a2", "APPENDUID")
    assert done.endswith("APPEND completed")
    snap = await backend.select("INBOX", read_only=True)
    assert snap.messages[0].flags == {"\\Seen", "$Work"}
    await client.C(b"a3 APPEND Nowhere {%d+}\r\n" % len(body) + body)
    client.NO("a3", "TRYCREATE")


async def test_append_too_big(authenticator: object) -> None:
    from bridge.backend.memory import MemoryAuthenticator

    assert isinstance(authenticator, MemoryAuthenticator)
    client = Client(authenticator, max_literal=100)
    await logged_in(client)
    await client.C(b"a1 APPEND INBOX {500}")
    client.NO("a1", "TOOBIG")
    await client.C("a2 NOOP")
    client.OK("a2")


async def test_namespace_id_enable(client: Client) -> None:
    await logged_in(client)
    await client.C("a1 NAMESPACE")
    client.S('* NAMESPACE (("" "/")) NIL NIL')
    client.OK("a1")
    await client.C('a2 ID ("name" "test-client")')
    client.S('* ID ("name" "graph-mail-bridge" "version" "0.1.0")')
    client.OK("a2")
    await client.C("a3 ENABLE CONDSTORE X-UNKNOWN")
    client.S("* ENABLED CONDSTORE")
    client.OK("a3")
    assert client.session.condstore
    await client.C("a4 ENABLE CONDSTORE")
    client.S("* ENABLED")
    client.OK("a4")


async def test_quota(client: Client, backend: MemoryBackend) -> None:
    await backend.append("INBOX", message(1, body="z" * 3000), frozenset(), None)
    await logged_in(client)
    await client.C("a1 GETQUOTAROOT INBOX")
    client.S('* QUOTAROOT "INBOX" ""', '* QUOTA "" (STORAGE 4 1048576)')
    client.OK("a1")
    await client.C('a2 GETQUOTA ""')
    client.S('* QUOTA "" (STORAGE 4 1048576)')
    client.OK("a2")
    await client.C("a3 GETQUOTA other")
    client.NO("a3", "NONEXISTENT")


async def test_backend_failure_is_serverbug_and_session_lives_on(
    client: Client, backend: MemoryBackend
) -> None:
    await logged_in(client)

    async def broken() -> list[object]:
        raise RuntimeError("disk on fire")

    backend.list_mailboxes = broken  # type: ignore[method-assign]
    await client.C('a1 LIST "" *')
    client.NO("a1", "SERVERBUG")
    await client.C("a2 NOOP")
    client.OK("a2")


async def test_list_multiple_patterns_and_children_return(client: Client) -> None:
    await logged_in(client)
    await client.C('a1 LIST "" (INBOX Sent) RETURN (CHILDREN)')
    client.S('* LIST (\\HasNoChildren) "/" "INBOX"', '* LIST (\\HasNoChildren \\Sent) "/" "Sent"')
    client.OK("a1")


async def test_id_before_login(client: Client) -> None:
    client.skip()
    await client.C("a1 ID NIL")
    client.S('* ID ("name" "graph-mail-bridge" "version" "0.1.0")')
    client.OK("a1")
