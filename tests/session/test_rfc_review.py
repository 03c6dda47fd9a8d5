"""Transcripts from the RFC conformance review of the session layer.

Each test names the RFC sentence it holds the session to. The first group pins the
findings that were fixed (CLOSED on re-SELECT, MODSEQ with FLAGS under CONDSTORE,
HIGHESTMODSEQ on the first enabling command, INBOX patterns, STATUS RECENT of the
selected mailbox, COPYUID pairing); the rest pin behaviour real clients rely on that was
already right and must stay so.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.backend.types import CopyResult, MailboxSnapshot
from bridge.imap.session.copymove import copyuid_code

from .conftest import deliver
from .transcript import Client, message


@pytest.fixture
async def inbox(client: Client, backend: MemoryBackend) -> Client:
    """Three messages (UIDs 1-3); message 1 is \\Seen; the client has INBOX selected."""
    await backend.append(
        "INBOX", message(1), frozenset({"\\Seen"}), datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    )
    await backend.append(
        "INBOX", message(2), frozenset(), datetime(2026, 11, 3, 23, 30, tzinfo=UTC)
    )
    await backend.append("INBOX", message(3, extra_headers=["X-Tag: "]), frozenset(), None)
    client.skip()
    await client.login()
    await client.select()
    return client


# -- findings -------------------------------------------------------------------------


async def test_reselect_sends_closed_first(inbox: Client, backend: MemoryBackend) -> None:
    # RFC 7162 §3.2.11: a CONDSTORE server "must return the CLOSED response code" when
    # SELECT/EXAMINE implicitly closes the selected mailbox, before the new mailbox's
    # responses; CLOSE and UNSELECT need none.
    await inbox.C("a1 EXAMINE Trash")
    untagged, done = inbox.responses_until("a1")
    assert untagged[0] == "* OK [CLOSED] Previous mailbox closed"
    assert untagged[1].startswith("* FLAGS (")
    assert done.startswith("a1 OK [READ-ONLY]")
    await inbox.C("a2 CLOSE")
    inbox.OK("a2")
    await inbox.C("a3 SELECT INBOX")
    untagged, _ = inbox.responses_until("a3")
    assert not any("CLOSED" in line for line in untagged)


async def test_condstore_fetch_flags_carry_modseq(inbox: Client, backend: MemoryBackend) -> None:
    # RFC 7162 §3.1: after a CONDSTORE enabling command "the server MUST then include
    # mod-sequence data in all subsequent untagged FETCH responses".
    snap = await backend.select("INBOX", read_only=True)
    modseq = {m.uid: m.modseq for m in snap.messages}
    await inbox.C("a1 ENABLE CONDSTORE")
    inbox.S("* ENABLED CONDSTORE")
    # RFC 7162 §3.1: the first enabling command with a mailbox selected reports it.
    inbox.S(f"* OK [HIGHESTMODSEQ {snap.highestmodseq}] Highest")
    inbox.OK("a1")
    await inbox.C("a2 FETCH 1 FLAGS")
    inbox.S(f"* 1 FETCH (FLAGS (\\Recent \\Seen) MODSEQ ({modseq[1]}))")
    inbox.OK("a2")
    # The implicit \Seen of a BODY[] fetch is a flag change: FLAGS and its new MODSEQ.
    await inbox.C("a3 FETCH 2 BODY[TEXT]")
    after = {m.uid: m.modseq for m in (await backend.select("INBOX", True)).messages}
    assert after[2] > modseq[2]
    inbox.S(
        f"* 2 FETCH (BODY[TEXT] {{8}}\r\nHello.\r\n FLAGS (\\Recent \\Seen) MODSEQ ({after[2]}))"
    )
    inbox.OK("a3")
    # A second enabling command says nothing more.
    await inbox.C("a4 STATUS INBOX (HIGHESTMODSEQ)")
    inbox.S(f'* STATUS "INBOX" (HIGHESTMODSEQ {after[2]})')
    inbox.OK("a4")


async def test_without_condstore_fetch_has_no_modseq(inbox: Client) -> None:
    await inbox.C("a1 FETCH 2 (FLAGS BODY[TEXT])")
    inbox.S("* 2 FETCH (FLAGS (\\Recent \\Seen) BODY[TEXT] {8}\r\nHello.\r\n)")
    inbox.OK("a1")


@pytest.mark.parametrize("pattern", ["inbox", "InBoX*", "inbox%", "Inbox"])
async def test_inbox_pattern_is_case_insensitive(client: Client, pattern: str) -> None:
    # RFC 3501 §5.1: "The case-insensitive mailbox name INBOX"; §6.3.8 patterns.
    client.skip()
    await client.login()
    await client.C(f'a1 LIST "" {pattern}')
    client.S('* LIST (\\HasNoChildren) "/" "INBOX"')
    client.OK("a1")
    await client.C(f'a2 LIST "" "{pattern}/*"')
    client.OK("a2")  # INBOX has no children


async def test_status_recent_of_the_selected_mailbox(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    # RFC 3501 §6.3.10: RECENT is "the number of messages with the \Recent flag set";
    # messages this session claimed at SELECT still carry \Recent for it.
    await deliver(backend, 2)
    a = new_client()
    a.skip()
    await a.login()
    untagged = await a.select()
    assert "* 2 RECENT" in untagged
    await a.C("a1 STATUS INBOX (MESSAGES RECENT)")
    a.S('* STATUS "INBOX" (MESSAGES 2 RECENT 2)')
    a.OK("a1")
    await a.C('a2 LIST "" INBOX RETURN (STATUS (RECENT))')
    a.S('* LIST (\\HasNoChildren) "/" "INBOX"', '* STATUS "INBOX" (RECENT 2)')
    a.OK("a2")
    # Another session sees them as somebody else's: not \Recent for it.
    b = new_client()
    b.skip()
    await b.login()
    await b.C("b1 STATUS INBOX (RECENT)")
    b.S('* STATUS "INBOX" (RECENT 0)')
    b.OK("b1")


def test_copyuid_keeps_the_pairing_when_dest_uids_are_not_in_source_order() -> None:
    # RFC 4315 §3: "the destination UID set corresponds to the source UID set and is in
    # the same order"; a range is a set (12:10 is 10:12), so a side may use a range only
    # where its UIDs run upwards in the pairing order.
    result = CopyResult(uidvalidity=7, source_uids=(1, 2, 3, 5), dest_uids=(12, 10, 11, 13))
    assert copyuid_code(result) == "COPYUID 7 1:3,5 12,10:11,13"
    monotonic = CopyResult(uidvalidity=7, source_uids=(3, 1, 2), dest_uids=(22, 20, 21))
    assert copyuid_code(monotonic) == "COPYUID 7 1:3 20:22"
    assert copyuid_code(CopyResult(uidvalidity=7, source_uids=(), dest_uids=())) is None


# -- behaviour clients rely on --------------------------------------------------------


async def test_fetch_response_item_names(inbox: Client) -> None:
    # RFC 3501 §7.4.2: the section is echoed without .PEEK; a partial echoes only its
    # origin; a partial beyond the end is an empty string.
    await inbox.C("a1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject MESSAGE-ID)] BODY.PEEK[]<0.4>)")
    inbox.S(
        "* 1 FETCH (BODY[HEADER.FIELDS (subject MESSAGE-ID)] {53}\r\n"
        "Subject: Message 1\r\nMessage-ID: <m1@example.test>\r\n\r\n"
        " BODY[]<0> {4}\r\nFrom)"
    )
    inbox.OK("a1")
    await inbox.C("a2 FETCH 1 (BODY.PEEK[1]<100000.10> BODY.PEEK[1.MIME] BODY.PEEK[HEADER])")
    untagged, _ = inbox.responses_until("a2")
    assert untagged[0].startswith("* 1 FETCH (BODY[1]<100000> {0}\r\n BODY[1.MIME] {")
    # RFC 3501 §6.4.5: a non-multipart message has only part 1, whose MIME header is
    # the message header.
    mime, header = untagged[0].removesuffix(")").split(" BODY[1.MIME] ")[1].split(" BODY[HEADER] ")
    assert mime == header and mime.endswith("charset=utf-8\r\n\r\n")
    # RFC 3501 §6.4.8: UID is in every UID FETCH response, even unasked.
    await inbox.C("a3 UID FETCH 2 (RFC822.SIZE INTERNALDATE)")
    untagged, _ = inbox.responses_until("a3")
    assert untagged[0].startswith("* 2 FETCH (UID 2 RFC822.SIZE ")
    assert untagged[0].endswith(' INTERNALDATE "03-Nov-2026 23:30:00 +0000")')


async def test_uid_range_past_the_highest_uid_names_the_last_message(inbox: Client) -> None:
    # RFC 3501 §6.4.8: "a UID range of 559:* always includes the UID of the last message
    # in the mailbox, even if 559 is higher than any assigned UID value".
    await inbox.C("a1 UID FETCH 900:* (FLAGS)")
    inbox.S("* 3 FETCH (UID 3 FLAGS (\\Recent))")
    inbox.OK("a1")
    await inbox.C("a2 UID SEARCH UID 900:*")
    inbox.S("* SEARCH 3")
    inbox.OK("a2")


async def test_examine_is_read_only_end_to_end(inbox: Client, backend: MemoryBackend) -> None:
    await inbox.C("a0 STORE 2 +FLAGS.SILENT (\\Deleted)")
    inbox.OK("a0")
    await inbox.C("a1 EXAMINE INBOX")
    untagged, _ = inbox.responses_until("a1")
    assert "* OK [PERMANENTFLAGS ()] Read-only mailbox" in untagged
    # RFC 3501 §6.3.2: no implicit \Seen in a read-only mailbox, and no FLAGS item.
    await inbox.C("a2 FETCH 3 (BODY[TEXT])")
    inbox.S("* 3 FETCH (BODY[TEXT] {8}\r\nHello.\r\n)")
    inbox.OK("a2")
    # RFC 3501 §6.4.6 / §6.4.3: no flag change and no EXPUNGE.
    await inbox.C("a3 STORE 3 +FLAGS (\\Seen)")
    inbox.NO("a3", "READ-ONLY")
    await inbox.C("a4 EXPUNGE")
    inbox.NO("a4", "READ-ONLY")
    # RFC 3501 §6.4.2: CLOSE of an EXAMINEd mailbox expunges nothing.
    await inbox.C("a5 CLOSE")
    inbox.OK("a5")
    snap = await backend.select("INBOX", read_only=True)
    assert [m.uid for m in snap.messages] == [1, 2, 3]
    assert "\\Seen" not in snap.messages[2].flags


async def test_expunge_numbers_decrease_as_messages_go(inbox: Client) -> None:
    # RFC 3501 §7.4.1: each EXPUNGE renumbers the messages after it at once.
    await inbox.C("a1 STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    inbox.OK("a1")
    await inbox.C("a2 EXPUNGE")
    inbox.S("* 1 EXPUNGE", "* 1 EXPUNGE", "* 1 EXPUNGE")
    inbox.OK("a2")
    await inbox.C("a3 FETCH * FLAGS")  # RFC 9051 §6.4.8: '*' in an empty mailbox
    inbox.OK("a3")
    await inbox.C("a4 UID FETCH 1:* FLAGS")
    inbox.OK("a4")


async def test_move_reports_copyuid_before_expunges(inbox: Client) -> None:
    # RFC 6851 §4.3: the untagged OK [COPYUID] comes before the EXPUNGE responses.
    await inbox.C("a1 UID MOVE 1,3 Archive")
    untagged, done = inbox.responses_until("a1")
    assert untagged[0].startswith("* OK [COPYUID ") and untagged[0].endswith(" 1,3 1:2] Moved")
    assert untagged[1:] == ["* 1 EXPUNGE", "* 2 EXPUNGE"]
    assert done == "a1 OK MOVE completed"
    await inbox.C("a2 MOVE 1 Nowhere")
    inbox.NO("a2", "TRYCREATE")
    await inbox.C("a3 APPEND Nowhere {1+}\r\nx")
    inbox.NO("a3", "TRYCREATE")


async def test_search_forms(inbox: Client) -> None:
    # RFC 3501 §6.4.4: HEADER with an empty string tests presence.
    await inbox.C('a1 SEARCH HEADER X-Tag ""')
    inbox.S("* SEARCH 3")
    inbox.OK("a1")
    await inbox.C("a2 SEARCH NOT OR SEEN UID 3")
    inbox.S("* SEARCH 2")
    inbox.OK("a2")
    # RFC 3501 §6.4.4: dates are the INTERNALDATE's date, "disregarding time and timezone".
    await inbox.C("a3 SEARCH ON 3-Nov-2026")
    inbox.S("* SEARCH 2")
    inbox.OK("a3")
    # RFC 4731 §3.1: MIN/MAX/ALL are left out when nothing matches; COUNT 0 is not.
    await inbox.C("a4 UID SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nothing-like-this")
    inbox.S('* ESEARCH (TAG "a4") UID COUNT 0')
    inbox.OK("a4")
    await inbox.C("a5 UID SEARCH RETURN (MIN MAX COUNT ALL) 1:*")
    inbox.S('* ESEARCH (TAG "a5") UID MIN 1 MAX 3 COUNT 3 ALL 1:3')
    inbox.OK("a5")


async def test_list_delimiter_query(client: Client) -> None:
    # RFC 3501 §6.3.8: an empty pattern returns the delimiter and the root.
    client.skip()
    await client.login()
    await client.C('a1 LIST "" ""')
    client.S('* LIST (\\Noselect) "/" ""')
    client.OK("a1")


async def test_authenticate_edge_cases(client: Client) -> None:
    client.skip()
    # RFC 4616 §2: an authzid other than the authcid is a proxy login we never allow.
    other = base64.b64encode(b"someone\0user\0secret").decode()
    await client.C(f"a1 AUTHENTICATE PLAIN {other}")
    client.NO("a1", "AUTHENTICATIONFAILED")
    # RFC 3501 §6.2.2: "*" cancels with BAD; bad base64 is BAD too.
    await client.C("a2 AUTHENTICATE PLAIN")
    client.S("+ ")
    await client.C("*")
    client.BAD("a2")
    await client.C("a3 AUTHENTICATE LOGIN")
    client.S("+ VXNlcm5hbWU6")
    await client.C("not base64!")
    client.BAD("a3")
    # RFC 4959 §3: "=" is an empty initial response; LOGIN then asks for the username.
    await client.C("a4 AUTHENTICATE LOGIN =")
    client.S("+ VXNlcm5hbWU6")
    await client.C(base64.b64encode(b"user").decode())
    client.S("+ UGFzc3dvcmQ6")
    await client.C(base64.b64encode(b"secret").decode())
    client.OK("a4", "CAPABILITY")


async def test_wrong_state_and_unknown_commands_are_bad(client: Client) -> None:
    client.skip()
    for tag, line in (("a1", "FETCH 1 FLAGS"), ("a2", "SELECT INBOX"), ("a3", "XYZZY")):
        await client.C(f"{tag} {line}")
        client.BAD(tag)
    await client.login()
    for tag, line in (("b1", "FETCH 1 FLAGS"), ("b2", "LOGIN a b"), ("b3", "XYZZY")):
        await client.C(f"{tag} {line}")
        client.BAD(tag)
    await client.select()
    for tag, line in (("c1", "AUTHENTICATE PLAIN"), ("c2", "XYZZY")):
        await client.C(f"{tag} {line}")
        client.BAD(tag)


async def test_permanentflags_lists_the_wildcard_once() -> None:
    # RFC 3501 §7.1: "\*" in PERMANENTFLAGS says new keywords may be created; a backend
    # that lists it among its permanent flags (CachedBackend does) must not make the
    # session send it twice, and FLAGS (§7.2.6) names every flag that can be kept.
    class StarBackend(MemoryBackend):
        async def select(self, name: str, read_only: bool) -> MailboxSnapshot:
            snap = await super().select(name, read_only)
            flags = snap.permanent_flags | {"$Forwarded", "\\*"}
            return dataclasses.replace(snap, permanent_flags=flags)

    backend = StarBackend()
    client = Client(MemoryAuthenticator({"user": ("secret", backend)}))
    client.skip()
    await client.login()
    untagged = await client.select()
    assert untagged[:2] == [
        "* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Forwarded)",
        "* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Forwarded \\*)]"
        " Limited",
    ]


async def _output(client: Client) -> None:
    for _ in range(1000):
        if client.buffer:
            return
        await asyncio.sleep(0)
    raise AssertionError("no output from the session")


async def test_idle_keepalive_after_a_quiet_interval(new_client: Callable[..., Client]) -> None:
    # A quiet IDLE still says something every interval (Dovecot: "* OK Still here"), so a
    # NAT box never sees a silent flow and a vanished peer is noticed; RFC 3501 §7.1.1
    # lets a client ignore an untagged OK. Interval 0: every turn is a quiet interval.
    client = new_client(idle_poke_interval=0.0)
    client.skip()
    await client.login()
    await client.select()
    await client.C("a1 IDLE")
    client.S("+ idling")
    await _output(client)
    client.S("* OK Still here")
    await client.C("DONE")
    untagged, done = client.responses_until("a1")
    assert set(untagged) <= {"* OK Still here"}
    assert done == "a1 OK IDLE terminated"


async def test_idle_writer_ends_the_session_quietly_when_the_peer_is_gone(
    new_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    client = new_client(idle_poke_interval=0.0)
    client.skip()
    await client.login()
    await client.C("a1 IDLE")  # authenticated state: RFC 2177 allows it
    client.S("+ idling")

    async def broken(data: bytes) -> None:
        raise ConnectionResetError("peer went away")

    client.session._send = broken
    for _ in range(1000):
        if client.session.closed:
            break
        await asyncio.sleep(0)
    assert client.session.closed
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_move_into_the_selected_mailbox_renumbers(
    inbox: Client, backend: MemoryBackend
) -> None:
    # RFC 6851 does not forbid MOVE into the mailbox itself (Dovecot and CachedBackend
    # allow it): the message gets a new UID, the old one is expunged.
    validity = (await backend.status("INBOX")).uidvalidity
    await inbox.C("a1 MOVE 2 INBOX")
    inbox.S(f"* OK [COPYUID {validity} 2 4] Moved", "* 2 EXPUNGE", "* 3 EXISTS", "* 3 RECENT")
    inbox.OK("a1")
    await inbox.C("a2 UID SEARCH ALL")
    inbox.S("* SEARCH 1 3 4")
    inbox.OK("a2")


async def test_vanished_without_qresync_is_bad(inbox: Client) -> None:
    # RFC 7162 §3.2.3: VANISHED without "ENABLE QRESYNC" is a tagged BAD; QRESYNC is not
    # offered, so ENABLE does not turn it on and the modifier stays BAD.
    await inbox.C("a1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    inbox.BAD("a1")
    await inbox.C("a2 ENABLE QRESYNC")
    inbox.S("* ENABLED")
    inbox.OK("a2")
    await inbox.C("a3 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    inbox.BAD("a3")
    # A BAD command never ran: INBOX is still selected.
    await inbox.C("a4 FETCH 1 (UID)")
    inbox.S("* 1 FETCH (UID 1)")
    inbox.OK("a4")


async def _two_with_a_ghost(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> tuple[Client, Client]:
    """Sessions a and b on INBOX (UIDs 1-3); a expunged message 2, b not yet told."""
    await deliver(backend, 3)
    a, b = new_client(), new_client()
    for c in (a, b):
        c.skip()
        await c.login()
        await c.select()
    await a.C("a1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.OK("a1")
    await a.C("a2 EXPUNGE")
    a.S("* 2 EXPUNGE")
    a.OK("a2")
    return a, b


async def test_copy_with_an_expunged_message_copies_the_rest_and_says_ok(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    # RFC 3501 §6.4.7: a failed COPY must leave the destination unchanged, so a NO after
    # a partial copy would make a client copy twice. RFC 2180 §4.4.2: copy what exists,
    # answer OK, and return the pending EXPUNGE with the COPY.
    _, b = await _two_with_a_ghost(new_client, backend)
    trash = (await backend.status("Trash")).uidvalidity
    await b.C("b1 COPY 1:3 Trash")
    b.S("* 2 EXPUNGE")
    b.S(f"b1 OK [COPYUID {trash} 1,3 1:2] COPY completed")
    assert (await backend.status("Trash")).messages == 2


async def test_silent_store_with_an_expunged_message_is_ok(
    new_client: Callable[..., Client], backend: MemoryBackend
) -> None:
    # RFC 2180 §4.2.1: with .SILENT, a STORE that succeeded on every live message
    # SHOULD return OK; without it (§4.2.3) the live ones are reported and the NO says
    # some were gone. Neither may carry the EXPUNGE (RFC 3501 §7.4.1).
    _, b = await _two_with_a_ghost(new_client, backend)
    await b.C("b1 STORE 1:3 +FLAGS.SILENT (\\Flagged)")
    b.OK("b1")
    await b.C("b2 STORE 1:3 +FLAGS (\\Seen)")
    b.S("* 1 FETCH (FLAGS (\\Flagged \\Seen))", "* 3 FETCH (FLAGS (\\Flagged \\Seen))")
    b.NO("b2", "EXPUNGEISSUED")
    await b.C("b3 NOOP")
    b.S("* 2 EXPUNGE")
    b.OK("b3")


async def test_status_recent_of_an_examined_mailbox_is_not_counted_twice(
    client: Client, backend: MemoryBackend
) -> None:
    # RFC 3501 §6.3.2: EXAMINE claims no \Recent; STATUS counts them once.
    await deliver(backend, 2)
    client.skip()
    await client.login()
    await client.C("a1 EXAMINE INBOX")
    untagged, _ = client.responses_until("a1")
    assert "* 2 RECENT" in untagged
    await client.C("a2 STATUS INBOX (RECENT)")
    client.S('* STATUS "INBOX" (RECENT 2)')
    client.OK("a2")


async def test_list_status_skips_noselect_and_append_ignores_recent(
    client: Client, backend: MemoryBackend
) -> None:
    client.skip()
    await client.login()
    await client.C("a1 CREATE P/c")
    client.OK("a1")
    await client.C("a2 DELETE P")  # P has an inferior: it stays as \Noselect
    client.OK("a2")
    # RFC 5819 §2: no STATUS for a mailbox that cannot be selected.
    await client.C('a3 LIST "" P* RETURN (STATUS (MESSAGES))')
    client.S(
        '* LIST (\\Noselect \\HasChildren) "/" "P"',
        '* LIST (\\HasNoChildren) "/" "P/c"',
        '* STATUS "P/c" (MESSAGES 0)',
    )
    client.OK("a3")
    # RFC 3501 §2.3.2: \Recent is the server's; an APPEND naming it does not store it.
    await client.C("a4 APPEND P/c (\\Recent \\Seen) {1+}\r\nx")
    client.OK("a4", "APPENDUID")
    snap = await backend.select("P/c", read_only=True)
    assert snap.messages[0].flags == frozenset({"\\Seen"})


async def test_a_failed_write_is_not_a_serverbug(
    inbox: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # A client that vanished mid-answer is the transport's business: the session lets
    # the ConnectionError reach the server instead of answering NO [SERVERBUG].
    async def broken(data: bytes) -> None:
        raise ConnectionResetError("peer went away")

    inbox.session._send = broken
    with pytest.raises(ConnectionError):
        await inbox.C("a1 FETCH 1:3 (FLAGS)")
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
