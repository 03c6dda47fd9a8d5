"""Selected state, one session: SELECT/EXAMINE, FETCH, STORE, SEARCH, COPY, MOVE,
EXPUNGE, CLOSE, UNSELECT and CONDSTORE."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.backend.memory import MemoryBackend
from bridge.backend.types import FetchNeed

from .conftest import deliver
from .transcript import Client, message


@pytest.fixture
async def inbox(client: Client, backend: MemoryBackend) -> Client:
    """Three messages (UIDs 1-3); message 1 is \\Seen; the client has INBOX selected."""
    await backend.append(
        "INBOX", message(1), frozenset({"\\Seen"}), datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    )
    await backend.append(
        "INBOX",
        message(2, body="Needle in the body."),
        frozenset(),
        datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
    )
    await backend.append(
        "INBOX",
        message(3, subject="Invoice March"),
        frozenset({"$Work"}),
        datetime(2026, 11, 4, 10, 0, tzinfo=UTC),
    )
    client.skip()
    await client.login()
    await client.select()
    return client


async def test_select_responses(client: Client, backend: MemoryBackend) -> None:
    await backend.append("INBOX", message(1), frozenset({"\\Seen"}), None)
    await backend.append("INBOX", message(2), frozenset({"$Work"}), None)
    status = await backend.status("INBOX")
    client.skip()
    await client.login()
    await client.C("a1 SELECT INBOX")
    client.S(
        "* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Work)",
        "* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Work \\*)] Limited",
        "* 2 EXISTS",
        "* 2 RECENT",
        "* OK [UNSEEN 2] First unseen",
        f"* OK [UIDVALIDITY {status.uidvalidity}] UIDs valid",
        "* OK [UIDNEXT 3] Predicted next UID",
        f"* OK [HIGHESTMODSEQ {status.highestmodseq}] Highest",
    )
    client.OK("a1", "READ-WRITE")
    await client.C("a2 EXAMINE INBOX")
    untagged, done = client.responses_until("a2")
    assert "* OK [PERMANENTFLAGS ()] Read-only mailbox" in untagged
    assert "* 0 RECENT" in untagged  # the first SELECT took \Recent
    assert done.startswith("a2 OK [READ-ONLY]")
    await client.C("a3 SELECT Nowhere")
    # RFC 7162 §3.2.11: the previous mailbox is closed even when the new SELECT fails.
    client.S("* OK [CLOSED] Previous mailbox closed")
    client.NO("a3", "NONEXISTENT")
    # RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
    await client.C("a4 FETCH 1 FLAGS")
    client.BAD("a4")


async def test_fetch_flags_uid_size_date(inbox: Client) -> None:
    await inbox.C("a1 FETCH 1:2 (UID FLAGS RFC822.SIZE INTERNALDATE)")
    size1, size2 = len(message(1)), len(message(2, body="Needle in the body."))
    inbox.S(
        f"* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen) RFC822.SIZE {size1} "
        f'INTERNALDATE "02-Nov-2026 10:00:00 +0000")',
        f"* 2 FETCH (UID 2 FLAGS (\\Recent) RFC822.SIZE {size2} "
        f'INTERNALDATE "03-Nov-2026 10:00:00 +0000")',
    )
    inbox.OK("a1")
    await inbox.C("a2 UID FETCH 3:* FLAGS")
    inbox.S("* 3 FETCH (UID 3 FLAGS (\\Recent $Work))")
    inbox.OK("a2")
    await inbox.C("a3 FETCH 4 FLAGS")
    inbox.BAD("a3")
    await inbox.C("a4 UID FETCH 99 FLAGS")
    inbox.OK("a4")


async def test_fetch_envelope_and_bodystructure(inbox: Client) -> None:
    await inbox.C("a1 FETCH 3 (ENVELOPE BODYSTRUCTURE BODY)")
    inbox.S(
        '* 3 FETCH (ENVELOPE ("Mon, 2 Nov 2026 10:03:00 +0000" "Invoice March" '
        '(("Alice" NIL "alice" "example.test")) (("Alice" NIL "alice" "example.test")) '
        '(("Alice" NIL "alice" "example.test")) (("Bob" NIL "bob" "example.test")) '
        'NIL NIL NIL "<m3@example.test>") '
        'BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 8 1 NIL NIL NIL NIL) '
        'BODY ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 8 1))'
    )
    inbox.OK("a1")


async def test_body_fetch_sets_seen_and_peek_does_not(
    inbox: Client, backend: MemoryBackend
) -> None:
    body = message(2, body="Needle in the body.")
    header_end = body.index(b"\r\n\r\n") + 4
    await inbox.C("a1 FETCH 2 BODY.PEEK[HEADER.FIELDS (Subject)]")
    inbox.S("* 2 FETCH (BODY[HEADER.FIELDS (Subject)] {22}\r\nSubject: Message 2\r\n\r\n)")
    inbox.OK("a1")
    await inbox.C("a2 FETCH 2 BODY[TEXT]")
    text = body[header_end:].decode()
    inbox.S(f"* 2 FETCH (BODY[TEXT] {{{len(text)}}}\r\n{text} FLAGS (\\Recent \\Seen))")
    inbox.OK("a2")
    await inbox.C("a3 FETCH 2 BODY[]<0.4>")
    inbox.S("* 2 FETCH (BODY[]<0> {4}\r\nFrom)")
    inbox.OK("a3")
    await inbox.C("a4 NOOP")
    inbox.OK("a4")  # the \Seen change was already reported, not repeated
    snap = await backend.select("INBOX", read_only=True)
    assert "\\Seen" in snap.messages[1].flags


async def test_rfc822_items(inbox: Client) -> None:
    body = message(3, subject="Invoice March")
    header = body[: body.index(b"\r\n\r\n") + 4].decode()
    await inbox.C("a1 UID FETCH 3 (RFC822.HEADER)")
    inbox.S(f"* 3 FETCH (UID 3 RFC822.HEADER {{{len(header)}}}\r\n{header})")
    inbox.OK("a1")
    await inbox.C("a2 UID FETCH 3 RFC822")
    inbox.S(
        f"* 3 FETCH (UID 3 RFC822 {{{len(body)}}}\r\n{body.decode()} FLAGS (\\Recent \\Seen $Work))"
    )
    inbox.OK("a2")


async def test_fetch_in_examined_mailbox_never_sets_seen(
    client: Client, backend: MemoryBackend
) -> None:
    await deliver(backend, 1)
    client.skip()
    await client.login()
    await client.C("a1 EXAMINE INBOX")
    client.responses_until("a1")
    await client.C("a2 FETCH 1 BODY[]")
    untagged, _ = client.responses_until("a2")
    assert "FLAGS" not in untagged[0]
    assert (await backend.status("INBOX")).unseen == 1
    await client.C("a3 STORE 1 +FLAGS (\\Seen)")
    client.NO("a3", "READ-ONLY")


async def test_fetch_macros(inbox: Client) -> None:
    await inbox.C("a1 FETCH 1 FAST")
    got = inbox.responses_until("a1")[0][0]
    assert got.startswith("* 1 FETCH (FLAGS (\\Recent \\Seen) INTERNALDATE ")
    assert "RFC822.SIZE" in got
    await inbox.C("a2 FETCH 1 FULL")
    got = inbox.responses_until("a2")[0][0]
    assert "ENVELOPE" in got and "BODY (" in got


async def test_store_variants(inbox: Client) -> None:
    await inbox.C("a1 STORE 1:2 +FLAGS (\\Flagged)")
    inbox.S(
        "* 1 FETCH (FLAGS (\\Flagged \\Recent \\Seen))", "* 2 FETCH (FLAGS (\\Flagged \\Recent))"
    )
    inbox.OK("a1")
    await inbox.C("a2 UID STORE 2 -FLAGS (\\Flagged)")
    inbox.S("* 2 FETCH (UID 2 FLAGS (\\Recent))")
    inbox.OK("a2")
    await inbox.C("a3 STORE 3 FLAGS.SILENT (\\Answered Custom)")
    inbox.OK("a3")
    await inbox.C("a4 NOOP")
    inbox.OK("a4")  # silent STORE is known to the client: no FETCH on NOOP
    await inbox.C("a5 FETCH 3 FLAGS")
    inbox.S("* 3 FETCH (FLAGS (\\Answered \\Recent Custom))")
    inbox.OK("a5")


async def test_search_keys(inbox: Client) -> None:
    cases = {
        "ALL": "1 2 3",
        "SEEN": "1",
        "UNSEEN": "2 3",
        "NEW": "2 3",
        "OLD": "",
        "RECENT": "1 2 3",
        "KEYWORD $work": "3",
        "UNKEYWORD $Work": "1 2",
        "SUBJECT invoice": "3",
        "FROM alice": "1 2 3",
        "TO bob@example.test": "1 2 3",
        "CC anyone": "",
        'HEADER Message-ID "<m2@"': "2",
        "BODY needle": "2",
        "TEXT march": "3",
        "TEXT NEEDLE": "2",
        "BEFORE 3-Nov-2026": "1",
        "ON 3-Nov-2026": "2",
        "SINCE 3-Nov-2026": "2 3",
        "SENTON 2-Nov-2026": "1 2 3",
        "SENTBEFORE 2-Nov-2026": "",
        "LARGER 230": "2",
        f"SMALLER {len(message(1))}": "",
        "UID 2:*": "2 3",
        "2,3": "2 3",
        "NOT SEEN": "2 3",
        "OR SEEN KEYWORD $Work": "1 3",
        "(SEEN) (FROM alice)": "1",
        "UNANSWERED UNDELETED UNDRAFT UNFLAGGED": "1 2 3",
        "ANSWERED": "",
        "CHARSET UTF-8 SUBJECT March": "3",
    }
    for n, (criteria, expected) in enumerate(cases.items()):
        await inbox.C(f"s{n} SEARCH {criteria}")
        inbox.S(("* SEARCH " + expected).rstrip())
        inbox.OK(f"s{n}")


async def test_search_badcharset_and_uid_search(inbox: Client) -> None:
    await inbox.C("a1 SEARCH CHARSET KOI8-R SUBJECT x")
    inbox.NO("a1", "BADCHARSET")
    await inbox.C("a2 UID SEARCH UNSEEN")
    inbox.S("* SEARCH 2 3")
    inbox.OK("a2")


async def test_esearch(inbox: Client) -> None:
    await inbox.C("a1 SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    inbox.S('* ESEARCH (TAG "a1") MIN 2 MAX 3 COUNT 2 ALL 2:3')
    inbox.OK("a1")
    await inbox.C("a2 UID SEARCH RETURN () ALL")
    inbox.S('* ESEARCH (TAG "a2") UID ALL 1:3')
    inbox.OK("a2")
    await inbox.C("a3 SEARCH RETURN (COUNT MIN) DELETED")
    inbox.S('* ESEARCH (TAG "a3") COUNT 0')
    inbox.OK("a3")


async def test_copy_and_move_with_copyuid(inbox: Client, backend: MemoryBackend) -> None:
    archive = await backend.status("Archive")
    await inbox.C("a1 COPY 1:2 Archive")
    inbox.OK("a1", f"COPYUID {archive.uidvalidity} 1:2 1:2")
    await inbox.C("a2 COPY 1 Nowhere")
    inbox.NO("a2", "TRYCREATE")
    trash = await backend.status("Trash")
    await inbox.C("a3 UID MOVE 2:3 Trash")
    inbox.S(f"* OK [COPYUID {trash.uidvalidity} 2:3 1:2] Moved", "* 2 EXPUNGE", "* 2 EXPUNGE")
    inbox.OK("a3")
    await inbox.C("a4 MOVE 1 Trash")
    inbox.S(f"* OK [COPYUID {trash.uidvalidity} 1 3] Moved", "* 1 EXPUNGE")
    inbox.OK("a4")
    assert (await backend.status("Trash")).messages == 3


async def test_expunge_and_uid_expunge(inbox: Client, backend: MemoryBackend) -> None:
    await inbox.C("a1 STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    inbox.OK("a1")
    await inbox.C("a2 UID EXPUNGE 2")
    inbox.S("* 2 EXPUNGE")
    inbox.OK("a2")
    await inbox.C("a3 EXPUNGE")
    # Sequence numbers shift after each EXPUNGE response (RFC 3501 §7.4.1).
    inbox.S("* 1 EXPUNGE", "* 1 EXPUNGE")
    inbox.OK("a3")
    assert (await backend.status("INBOX")).messages == 0


async def test_close_expunges_silently_and_unselect_does_not(
    inbox: Client, backend: MemoryBackend
) -> None:
    await inbox.C("a1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    inbox.OK("a1")
    await inbox.C("a2 UNSELECT")
    inbox.OK("a2")
    assert (await backend.status("INBOX")).messages == 3
    await inbox.select(tag="a3")
    await inbox.C("a4 CLOSE")
    inbox.OK("a4")
    assert (await backend.status("INBOX")).messages == 2
    await inbox.C("a5 FETCH 1 FLAGS")
    inbox.BAD("a5")


async def test_condstore(inbox: Client, backend: MemoryBackend) -> None:
    snap = await backend.select("INBOX", read_only=True)
    modseq = {m.uid: m.modseq for m in snap.messages}
    await inbox.C("a1 FETCH 1 (FLAGS MODSEQ)")
    # RFC 7162 §3.1: the first CONDSTORE enabling command with a mailbox selected
    # reports HIGHESTMODSEQ.
    inbox.S(f"* OK [HIGHESTMODSEQ {snap.highestmodseq}] Highest")
    inbox.S(f"* 1 FETCH (FLAGS (\\Recent \\Seen) MODSEQ ({modseq[1]}))")
    inbox.OK("a1")
    await inbox.C("a2 STORE 2 +FLAGS (\\Flagged)")
    untagged, _ = inbox.responses_until("a2")
    new = (await backend.select("INBOX", read_only=True)).messages[1].modseq
    assert untagged == [f"* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ ({new}))"]
    await inbox.C(f"a3 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq[3]})")
    inbox.S(f"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ ({new}))")
    inbox.OK("a3")
    await inbox.C(f"a4 STORE 1,2 (UNCHANGEDSINCE {modseq[3]}) +FLAGS (\\Answered)")
    untagged, done = inbox.responses_until("a4")
    assert done.startswith("a4 OK [MODIFIED 2]")
    assert len(untagged) == 1 and untagged[0].startswith("* 1 FETCH (FLAGS (\\Answered")
    await inbox.C(f"a5 SEARCH MODSEQ {new}")
    inbox.S(f"* SEARCH 1 2 (MODSEQ {new + 1})")  # a4 changed message 1 after message 2
    inbox.OK("a5")
    await inbox.C(f"a6 SEARCH MODSEQ {new + 1}")
    inbox.S(f"* SEARCH 1 (MODSEQ {new + 1})")
    inbox.OK("a6")


async def test_fetch_large_mailbox_streams_in_chunks(
    client: Client, backend: MemoryBackend
) -> None:
    for n in range(450):
        await backend.append("INBOX", message(n), frozenset(), None)
    calls: list[tuple[int, FetchNeed]] = []
    real_fetch = backend.fetch

    async def counting(mailbox_id: str, uids: list[int], need: FetchNeed) -> list[object]:
        calls.append((len(uids), need))
        return await real_fetch(mailbox_id, uids, need)  # type: ignore[return-value]

    backend.fetch = counting  # type: ignore[assignment]
    writes: list[int] = []
    client.skip()
    await client.login()
    await client.select()
    original = client.session._send

    async def recording(data: bytes) -> None:
        writes.append(len(data))
        await original(data)

    client.session._send = recording
    await client.C("a1 UID FETCH 1:* (FLAGS)")
    untagged, _ = client.responses_until("a1")
    assert len(untagged) == 450
    # Flags only: the session's view has them, the backend is not asked.
    assert calls == []
    await client.C("a9 UID FETCH 1:* (FLAGS INTERNALDATE)")
    untagged, _ = client.responses_until("a9")
    assert len(untagged) == 450
    # No body needed: one large call (META_CHUNK), not one per CHUNK.
    assert calls == [(450, FetchNeed.FLAGS | FetchNeed.INTERNALDATE)]
    calls.clear()
    await client.C("a8 UID FETCH 1:* (FLAGS INTERNALDATE)")
    client.responses_until("a8")
    assert calls == []  # INTERNALDATE never changes for a UID: cached
    await client.C("a0 UID FETCH 1:* (BODY.PEEK[])")
    untagged, _ = client.responses_until("a0")
    assert len(untagged) == 450
    # Bodies: CHUNK at a time, so that only that many are held at once.
    assert [n for n, _ in calls] == [200, 200, 50]
    assert all(FetchNeed.BODY in need for _, need in calls)
    calls.clear()
    writes.clear()
    await client.C("a2 UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    client.responses_until("a2")
    assert len(writes) > 2  # streamed in chunks, not one giant write
    calls.clear()
    await client.C("a3 UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    client.responses_until("a3")
    # The rendered summaries are cached: the second time the backend is not asked.
    assert all(FetchNeed.SUMMARY not in need for _, need in calls)


MULTIPART = (
    b"From: a@example.test\r\n"
    b"Subject: parts\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"first part\r\n"
    b"--B\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"--B--\r\n"
)


async def test_fetch_body_parts(client: Client, backend: MemoryBackend) -> None:
    await backend.append("INBOX", MULTIPART, frozenset({"\\Seen"}), None)
    client.skip()
    await client.login()
    await client.select()
    await client.C("a1 FETCH 1 (BODY[1] BODY[2.MIME] BODY[2]<1.2>)")
    mime = "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    client.S(
        "* 1 FETCH (BODY[1] {10}\r\nfirst part "
        f"BODY[2.MIME] {{{len(mime)}}}\r\n{mime} "
        "BODY[2]<1> {2}\r\nAE)"
    )
    client.OK("a1")
    await client.C("a2 FETCH 1 BODY.PEEK[3]")
    client.S("* 1 FETCH (BODY[3] {0}\r\n)")
    client.OK("a2")


async def test_check_and_syntax_errors(inbox: Client) -> None:
    await inbox.C("a1 CHECK")
    inbox.OK("a1")
    await inbox.C("a2 FETCH")
    inbox.BAD("a2")
    await inbox.C("a3 BOGUS")
    inbox.BAD("a3")
    await inbox.C("a4 NOOP")
    inbox.OK("a4")


async def test_sequence_ranges_in_an_empty_mailbox(client: Client) -> None:
    client.skip()
    await client.login()
    await client.select()
    await client.C("a1 FETCH 1:* FLAGS")
    client.OK("a1")
    await client.C("a2 FETCH 1 FLAGS")
    client.BAD("a2")
    await client.C("a3 SEARCH ALL")
    client.S("* SEARCH")
    client.OK("a3")
