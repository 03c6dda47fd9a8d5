"""IMAP conformance scenarios, written once and run against every backend.

Each scenario takes a :class:`Harness` (how to open a connection and log in) and drives
one or more connections through a transcript. The scenarios create their own mailboxes
and messages, compare only what RFC 3501 and its extensions fix (never a UIDVALIDITY
value or a server's free text), and cite the sentence they hold the server to. They
run over the session with the in-memory backend (``test_memory.py``) and over the whole
bridge, CachedBackend on the Graph simulator (``test_bridge.py``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tests.conformance.wire_client import Transcript, command
from tests.session.transcript import message


@dataclass(frozen=True, slots=True)
class Harness:
    connect: Callable[[], Awaitable[Transcript]]
    login: str
    password: str


async def open_session(h: Harness) -> Transcript:
    t = await h.connect()
    greeting = await t.response()
    assert greeting.startswith("* OK "), greeting
    _, done = await command(t, f'L1 LOGIN {h.login} "{h.password}"')
    assert done.startswith("L1 OK"), done
    return t


async def ok(t: Transcript, line: str) -> list[str]:
    untagged, done = await command(t, line)
    tag = line.split(" ", 1)[0]
    assert done.startswith(f"{tag} OK"), (line, done)
    return untagged


async def append(
    t: Transcript, mailbox: str, n: int, flags: str = "", date: str | None = None, **kw: object
) -> None:
    body = message(n, **kw).decode()  # type: ignore[arg-type]
    parts = [f"A{n} APPEND {mailbox}", f"({flags})"]
    if date is not None:
        parts.append(f'"{date}"')
    parts.append(f"{{{len(body)}+}}\r\n{body}")
    _, done = await command(t, " ".join(parts))
    assert done.startswith(f"A{n} OK [APPENDUID "), done


async def fresh_mailbox(t: Transcript, name: str, count: int, seen: tuple[int, ...] = ()) -> None:
    await ok(t, f"C1 CREATE {name}")
    for n in range(1, count + 1):
        await append(t, name, n, "\\Seen" if n in seen else "")


_UIDVALIDITY = re.compile(r"^\* OK \[UIDVALIDITY \d+\]")


async def select_examine_responses(h: Harness) -> None:
    t = await open_session(h)
    await fresh_mailbox(t, "Conf-select", 3, seen=(1,))
    untagged, done = await command(t, "s1 SELECT Conf-select")
    assert done.startswith("s1 OK [READ-WRITE]"), done
    assert untagged[0].startswith("* FLAGS (")
    assert untagged[1].startswith("* OK [PERMANENTFLAGS (")
    # RFC 3501 §7.1: "\*" says new keywords may be made; once, and last.
    assert untagged[1].count("\\*") == 1 and "\\*)]" in untagged[1], untagged[1]
    assert "* 3 EXISTS" in untagged
    # RFC 3501 §7.1: UNSEEN is the first unseen message's SEQUENCE number.
    assert "* OK [UNSEEN 2]" in [line.split("]")[0] + "]" for line in untagged]
    assert any(_UIDVALIDITY.match(line) for line in untagged)
    assert any(line.startswith("* OK [UIDNEXT ") for line in untagged)
    # RFC 7162 §3.2.11: re-selecting closes the old mailbox first, and says so.
    untagged, done = await command(t, "s2 EXAMINE Conf-select")
    assert untagged[0].startswith("* OK [CLOSED]"), untagged
    assert "* OK [PERMANENTFLAGS ()]" in [line.split("]")[0] + "]" for line in untagged]
    assert done.startswith("s2 OK [READ-ONLY]"), done
    # RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
    untagged, done = await command(t, "s3 SELECT Conf-nowhere")
    assert untagged == [untagged[0]] and untagged[0].startswith("* OK [CLOSED]"), untagged
    assert done.startswith("s3 NO"), done
    _, done = await command(t, "s4 FETCH 1 FLAGS")
    assert done.startswith("s4 BAD"), done
    await ok(t, "s5 LOGOUT")
    await t.close()


async def fetch_forms(h: Harness) -> None:
    t = await open_session(h)
    await ok(t, "C1 CREATE Conf-fetch")
    await append(t, "Conf-fetch", 1, "", "05-Nov-2026 10:00:00 +0100")
    await append(t, "Conf-fetch", 2, "")
    await append(t, "Conf-fetch", 3, "")
    await ok(t, "f0 SELECT Conf-fetch")
    # RFC 3501 §7.4.2: the section is echoed without .PEEK and with the client's field
    # names; a partial echoes only its origin.
    untagged = await ok(t, "f1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[]<0.4>)")
    assert untagged == [
        "* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {22}\r\nSubject: Message 1\r\n\r\n"
        " BODY[]<0> {4}\r\nFrom)"
    ]
    # RFC 3501 §6.4.5: a partial starting beyond the end is an empty string.
    untagged = await ok(t, "f2 FETCH 1 (BODY.PEEK[TEXT]<100000.10>)")
    assert untagged in (
        ['* 1 FETCH (BODY[TEXT]<100000> "")'],
        ["* 1 FETCH (BODY[TEXT]<100000> {0}\r\n)"],
    )
    # RFC 3501 §6.4.8: every UID FETCH response carries the UID.
    untagged = await ok(t, "f3 UID FETCH 1:* (INTERNALDATE)")
    assert len(untagged) == 3 and all(" FETCH (UID " in line for line in untagged), untagged
    stamp = re.search(r'INTERNALDATE "([^"]+)"', untagged[0])
    assert stamp is not None
    when = datetime.strptime(stamp.group(1), "%d-%b-%Y %H:%M:%S %z")
    assert when == datetime(2026, 11, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    # RFC 3501 §6.4.5: BODY[] sets \Seen and the response reports the new FLAGS.
    untagged = await ok(t, "f4 FETCH 2 (BODY[TEXT])")
    assert len(untagged) == 1 and untagged[0].startswith("* 2 FETCH (")
    assert "\\Seen" in untagged[0].split("FLAGS (")[1], untagged
    # RFC 3501 §6.3.2: nothing in an EXAMINEd mailbox sets \Seen.
    await ok(t, "f5 EXAMINE Conf-fetch")
    untagged = await ok(t, "f6 FETCH 3 (BODY[TEXT])")
    assert untagged == ["* 3 FETCH (BODY[TEXT] {8}\r\nHello.\r\n)"], untagged
    await ok(t, "f7 SELECT Conf-fetch")
    untagged = await ok(t, "f8 FETCH 3 (FLAGS)")
    assert len(untagged) == 1 and "\\Seen" not in untagged[0], untagged
    # RFC 3501 §6.4.8: "559:*" includes the last message even when 559 is past it.
    untagged = await ok(t, "f9 UID FETCH 4000000:* (FLAGS)")
    assert len(untagged) == 1 and untagged[0].startswith("* 3 FETCH (UID "), untagged
    await ok(t, "fz LOGOUT")
    await t.close()


async def read_only_mailbox(h: Harness) -> None:
    t = await open_session(h)
    await fresh_mailbox(t, "Conf-ro", 2)
    await ok(t, "r1 SELECT Conf-ro")
    await ok(t, "r2 STORE 1 +FLAGS.SILENT (\\Deleted)")
    await ok(t, "r3 EXAMINE Conf-ro")
    for tag, line in (("r4", "STORE 2 +FLAGS (\\Seen)"), ("r5", "EXPUNGE")):
        _, done = await command(t, f"{tag} {line}")
        assert done.startswith(f"{tag} NO"), done
    # RFC 3501 §6.4.2: CLOSE of a read-only mailbox expunges nothing.
    untagged = await ok(t, "r6 CLOSE")
    assert untagged == []
    untagged = await ok(t, "r7 SELECT Conf-ro")
    assert "* 2 EXISTS" in untagged, untagged
    untagged = await ok(t, "r8 FETCH 1:2 (FLAGS)")
    assert "\\Deleted" in untagged[0] and "\\Seen" not in untagged[1], untagged
    await ok(t, "rz LOGOUT")
    await t.close()


async def expunge_numbering(h: Harness) -> None:
    t = await open_session(h)
    await fresh_mailbox(t, "Conf-expunge", 5)
    await ok(t, "e1 SELECT Conf-expunge")
    uids = [int(n) for n in (await ok(t, "e2 UID SEARCH ALL"))[0].split()[2:]]
    await ok(t, "e3 STORE 1:2,4 +FLAGS.SILENT (\\Deleted)")
    # RFC 3501 §7.4.1: each EXPUNGE renumbers at once, so the numbers a client sees must
    # remove exactly messages 1, 2 and 4 of its view.
    untagged = await ok(t, "e4 EXPUNGE")
    view = list(uids)
    for line in untagged:
        match = re.fullmatch(r"\* (\d+) EXPUNGE", line)
        assert match is not None, line
        del view[int(match.group(1)) - 1]
    assert view == [uids[2], uids[4]], (untagged, uids)
    # RFC 4315 §2.1: UID EXPUNGE removes only the named \Deleted messages.
    await ok(t, "e5 STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    untagged = await ok(t, f"e6 UID EXPUNGE {uids[4]}")
    assert untagged == ["* 2 EXPUNGE"], untagged
    untagged = await ok(t, "e7 UID SEARCH ALL")
    assert untagged == [f"* SEARCH {uids[2]}"], untagged
    await ok(t, "ez LOGOUT")
    await t.close()


async def copy_and_move(h: Harness) -> None:
    t = await open_session(h)
    await fresh_mailbox(t, "Conf-src", 3)
    await ok(t, "m0 CREATE Conf-dst")
    await ok(t, "m1 SELECT Conf-src")
    # RFC 3501 §6.4.7 / §6.3.11: TRYCREATE for a destination that does not exist.
    _, done = await command(t, "m2 COPY 1 Conf-missing")
    assert done.startswith("m2 NO [TRYCREATE]"), done
    _, done = await command(t, "m3 APPEND Conf-missing {1+}\r\nx")
    assert done.startswith("m3 NO [TRYCREATE]"), done
    uids = [int(n) for n in (await ok(t, "m4 UID SEARCH ALL"))[0].split()[2:]]
    _, done = await command(t, "m5 COPY 2 Conf-dst")
    # RFC 4315 §3: COPYUID <uidvalidity> <source uids> <dest uids>.
    assert re.fullmatch(rf"m5 OK \[COPYUID \d+ {uids[1]} \d+\] .*", done), done
    # RFC 6851 §4.3: the untagged OK [COPYUID] comes before the EXPUNGE responses.
    untagged, done = await command(t, f"m6 UID MOVE {uids[0]},{uids[2]} Conf-dst")
    assert done.startswith("m6 OK"), done
    assert re.fullmatch(rf"\* OK \[COPYUID \d+ {uids[0]},{uids[2]} \d+:\d+\] .*", untagged[0])
    assert untagged[1:] == ["* 1 EXPUNGE", "* 2 EXPUNGE"], untagged
    untagged = await ok(t, "m7 STATUS Conf-dst (MESSAGES)")
    assert untagged == ['* STATUS "Conf-dst" (MESSAGES 3)'], untagged
    await ok(t, "mz LOGOUT")
    await t.close()


async def search_forms(h: Harness) -> None:
    t = await open_session(h)
    await ok(t, "C1 CREATE Conf-search")
    await append(t, "Conf-search", 1, "\\Seen")
    await append(t, "Conf-search", 2, "", subject="Invoice March")
    await append(t, "Conf-search", 3, "", extra_headers=["X-Tag: yes"], body="x" * 2000)
    await ok(t, "q0 SELECT Conf-search")
    uids = [int(n) for n in (await ok(t, "q1 UID SEARCH ALL"))[0].split()[2:]]
    cases = [
        ('q2 SEARCH HEADER X-Tag ""', "* SEARCH 3"),  # RFC 3501 §6.4.4: presence
        ("q3 SEARCH NOT OR SEEN 3", "* SEARCH 2"),
        ("q4 SEARCH LARGER 1500", "* SEARCH 3"),
        ("q5 SEARCH SUBJECT invoice", "* SEARCH 2"),
        ("q6 SEARCH 2:* UNSEEN", "* SEARCH 2 3"),
        (f"q7 SEARCH UID {uids[1]}:*", "* SEARCH 2 3"),
        ("q8 SEARCH CHARSET UTF-8 SUBJECT march", "* SEARCH 2"),
        ("q9 SEARCH SUBJECT nothing-like-this", "* SEARCH"),
        # RFC 3501 §6.4.4: SENT* compare the Date: header's date.
        ("qe SEARCH SENTON 2-Nov-2026", "* SEARCH 1 2 3"),
        ("qf SEARCH OR SENTBEFORE 2-Nov-2026 SENTSINCE 3-Nov-2026", "* SEARCH"),
        # RFC 4731 §3.1: no MIN/MAX/ALL when nothing matches; COUNT 0 stays.
        (
            "qa UID SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nothing-like-this",
            '* ESEARCH (TAG "qa") UID COUNT 0',
        ),
        (
            "qb SEARCH RETURN (MIN MAX COUNT) UNSEEN",
            '* ESEARCH (TAG "qb") MIN 2 MAX 3 COUNT 2',
        ),
        ("qc SEARCH RETURN () SEEN", '* ESEARCH (TAG "qc") ALL 1'),
    ]
    for line, want in cases:
        untagged = await ok(t, line)
        assert untagged == [want], (line, untagged)
    _, done = await command(t, "qd SEARCH CHARSET KOI8-R SUBJECT x")
    assert done.startswith("qd NO [BADCHARSET"), done
    await ok(t, "qz LOGOUT")
    await t.close()


async def list_and_status(h: Harness) -> None:
    t = await open_session(h)
    # RFC 3501 §6.3.8: LIST "" "" asks for the delimiter.
    assert await ok(t, 'l1 LIST "" ""') == ['* LIST (\\Noselect) "/" ""']
    # RFC 3501 §5.1: INBOX in any case, wildcards included.
    for n, pattern in enumerate(("inbox", "InBoX*", "Inbox%")):
        untagged = await ok(t, f'l2{n} LIST "" {pattern}')
        assert untagged == ['* LIST (\\HasNoChildren) "/" "INBOX"'], (pattern, untagged)
    await ok(t, "l3 CREATE Conf-parent/child")
    untagged = await ok(t, 'l4 LIST "" Conf-parent%')
    assert untagged == ['* LIST (\\HasChildren) "/" "Conf-parent"'], untagged
    untagged = await ok(t, 'l5 LIST "Conf-parent/" %')
    assert untagged == ['* LIST (\\HasNoChildren) "/" "Conf-parent/child"'], untagged
    # RFC 5819 §2: LIST-STATUS.
    await append(t, "Conf-parent/child", 1)
    untagged = await ok(t, 'l6 LIST "" Conf-parent/* RETURN (STATUS (MESSAGES UNSEEN))')
    assert untagged == [
        '* LIST (\\HasNoChildren) "/" "Conf-parent/child"',
        '* STATUS "Conf-parent/child" (MESSAGES 1 UNSEEN 1)',
    ], untagged
    # RFC 3501 §6.3.10 on the selected mailbox: the \Recent this session owns counts.
    selected = await ok(t, "l7 SELECT Conf-parent/child")
    assert "* 1 RECENT" in selected, selected
    untagged = await ok(t, "l8 STATUS Conf-parent/child (MESSAGES RECENT)")
    assert untagged == ['* STATUS "Conf-parent/child" (MESSAGES 1 RECENT 1)'], untagged
    # Modified UTF-7 both ways (RFC 3501 §5.1.3).
    await ok(t, "l9 CREATE &AOQ-pfel")
    untagged = await ok(t, 'la LIST "" &AOQ-pfel')
    assert untagged == ['* LIST (\\HasNoChildren) "/" "&AOQ-pfel"'], untagged
    await ok(t, "lz LOGOUT")
    await t.close()


async def two_sessions(h: Harness) -> None:
    a = await open_session(h)
    b = await open_session(h)
    await fresh_mailbox(a, "Conf-multi", 3)
    await ok(a, "a1 SELECT Conf-multi")
    await ok(b, "b1 SELECT Conf-multi")
    await ok(b, "b2 STORE 2 +FLAGS.SILENT (\\Deleted)")
    await ok(b, "b3 EXPUNGE")
    # RFC 3501 §7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH; the message
    # keeps its number until the client is told.
    untagged, done = await command(a, "a2 FETCH 1:3 (FLAGS)")
    assert not any("EXPUNGE" in line for line in untagged), untagged
    assert [line.split(" ")[1] for line in untagged if " FETCH " in line] == ["1", "3"]
    assert done.startswith(("a2 OK", "a2 NO")), done  # RFC 2180 §4.1.2 allows either
    untagged = await ok(a, "a3 SEARCH ALL")
    assert "* SEARCH 1 3" in untagged and not any("EXPUNGE" in x for x in untagged)
    # ... and NOOP is the moment to tell it.
    untagged = await ok(a, "a4 NOOP")
    assert "* 2 EXPUNGE" in untagged, untagged
    untagged = await ok(a, "a5 FETCH 2 (FLAGS)")
    assert len(untagged) == 1 and untagged[0].startswith("* 2 FETCH ("), untagged
    # RFC 2177: IDLE pushes what happens in another session until DONE.
    await a.send("a6 IDLE")
    assert (await a.response()).startswith("+ ")
    await append(b, "Conf-multi", 9)
    pushed = await a.response()
    assert pushed == "* 3 EXISTS", pushed
    await a.send("DONE")
    rest: list[str] = []
    while not (line := await a.response()).startswith("a6 "):
        rest.append(line)
    assert line.startswith("a6 OK"), line
    assert all(x.startswith("* ") for x in rest), rest
    for t, tag in ((a, "az"), (b, "bz")):
        await ok(t, f"{tag} LOGOUT")
        await t.close()


async def expunged_under_a_session(h: Harness) -> None:
    # RFC 2180 §4: what a session may do with a message another session expunged and
    # it has not been told about yet.
    a = await open_session(h)
    b = await open_session(h)
    await fresh_mailbox(a, "Conf-ghost", 4)
    await ok(a, "a0 CREATE Conf-ghost-dst")
    await ok(a, "a1 SELECT Conf-ghost")
    await ok(b, "b1 SELECT Conf-ghost")
    await ok(b, "b2 STORE 2 +FLAGS.SILENT (\\Deleted)")
    await ok(b, "b3 EXPUNGE")
    # §4.2.1: a .SILENT STORE over it SHOULD be OK, and carries no EXPUNGE (§7.4.1).
    untagged = await ok(a, "a2 STORE 1:3 +FLAGS.SILENT (\\Flagged)")
    assert not any("EXPUNGE" in line for line in untagged), untagged
    # §4.4.2 with RFC 3501 §6.4.7: COPY copies what exists, answers OK and returns the
    # pending EXPUNGE; the destination holds exactly the live messages.
    untagged, done = await command(a, "a3 COPY 1:3 Conf-ghost-dst")
    assert "* 2 EXPUNGE" in untagged, untagged
    assert re.fullmatch(r"a3 OK \[COPYUID \d+ \d+,\d+ \d+:\d+\] .*", done), done
    untagged = await ok(a, "a4 STATUS Conf-ghost-dst (MESSAGES)")
    assert untagged == ['* STATUS "Conf-ghost-dst" (MESSAGES 2)'], untagged
    for t, tag in ((a, "az"), (b, "bz")):
        await ok(t, f"{tag} LOGOUT")
        await t.close()


async def idle_without_a_mailbox(h: Harness) -> None:
    # RFC 2177 §3 / RFC 3501 state rules: IDLE is valid in the authenticated state.
    t = await open_session(h)
    await t.send("i1 IDLE")
    assert (await t.response()).startswith("+ ")
    await t.send("DONE")
    assert (await t.response()).startswith("i1 OK")
    await ok(t, "iz LOGOUT")
    await t.close()


async def condstore(h: Harness) -> None:
    t = await open_session(h)
    await fresh_mailbox(t, "Conf-condstore", 2)
    await ok(t, "c1 SELECT Conf-condstore")
    untagged = await ok(t, "c2 ENABLE CONDSTORE")
    assert untagged[0] == "* ENABLED CONDSTORE", untagged
    # RFC 7162 §3.1: the first enabling command with a mailbox selected reports
    # HIGHESTMODSEQ; from then on every FETCH with flags carries MODSEQ.
    assert re.fullmatch(r"\* OK \[HIGHESTMODSEQ \d+\].*", untagged[1]), untagged
    untagged = await ok(t, "c3 FETCH 1 (FLAGS)")
    assert re.fullmatch(r"\* 1 FETCH \(FLAGS \([^)]*\) MODSEQ \(\d+\)\)", untagged[0]), untagged
    untagged = await ok(t, "c4 FETCH 2 (BODY[TEXT])")
    assert re.search(r"FLAGS \([^)]*\\Seen[^)]*\) MODSEQ \(\d+\)\)$", untagged[0]), untagged
    await ok(t, "cz LOGOUT")
    await t.close()


async def authenticate(h: Harness) -> None:
    t = await h.connect()
    await t.response()
    # RFC 4616 §2 / RFC 4959: a different authzid is refused.
    sasl = base64.b64encode(f"intruder\0{h.login}\0{h.password}".encode()).decode()
    _, done = await command(t, f"u1 AUTHENTICATE PLAIN {sasl}")
    assert done.startswith("u1 NO [AUTHENTICATIONFAILED]"), done
    # RFC 3501 §6.2.2: "*" cancels, answered BAD.
    await t.send("u2 AUTHENTICATE PLAIN")
    assert (await t.response()).startswith("+")
    await t.send("*")
    assert (await t.response()).startswith("u2 BAD")
    # The LOGIN mechanism's prompts, base64 "Username:" and "Password:".
    await t.send("u3 AUTHENTICATE LOGIN")
    assert await t.response() == "+ VXNlcm5hbWU6"
    await t.send(base64.b64encode(h.login.encode()).decode())
    assert await t.response() == "+ UGFzc3dvcmQ6"
    await t.send(base64.b64encode(h.password.encode()).decode())
    assert (await t.response()).startswith("u3 OK [CAPABILITY ")
    await ok(t, "uz LOGOUT")
    await t.close()


async def permanent_flags_are_permanent(h: Harness) -> None:
    # RFC 3501 §7.1: PERMANENTFLAGS is "a list of message flags that the client can
    # change permanently". Every flag listed must be settable and clearable by STORE,
    # and the change must still be there in a new session.
    t = await open_session(h)
    await fresh_mailbox(t, "Conf-perm", 1)
    untagged = await ok(t, "p1 SELECT Conf-perm")
    perm = next(line for line in untagged if line.startswith("* OK [PERMANENTFLAGS ("))
    flags = [f for f in perm.split("(", 1)[1].split(")", 1)[0].split() if f != "\\*"]
    assert "\\Seen" in flags and "\\Deleted" in flags, perm
    refused: list[str] = []
    for n, flag in enumerate(flags):
        added = await ok(t, f"p2{n} STORE 1 +FLAGS ({flag})")
        again = await open_session(h)
        await ok(again, "x1 EXAMINE Conf-perm")
        kept = await ok(again, "x2 FETCH 1 (FLAGS)")
        await ok(again, "xz LOGOUT")
        await again.close()
        removed = await ok(t, f"p3{n} STORE 1 -FLAGS ({flag})")
        if not (
            flag in added[0].split("FLAGS (")[1]
            and flag in kept[0].split("FLAGS (")[1]
            and flag not in removed[0].split("FLAGS (")[1]
        ):
            refused.append(flag)
    assert refused == [], f"listed in PERMANENTFLAGS but not changeable: {refused}"
    await ok(t, "pz LOGOUT")
    await t.close()


SCENARIOS: dict[str, Callable[[Harness], Awaitable[None]]] = {
    "select_examine_responses": select_examine_responses,
    "fetch_forms": fetch_forms,
    "read_only_mailbox": read_only_mailbox,
    "expunge_numbering": expunge_numbering,
    "copy_and_move": copy_and_move,
    "search_forms": search_forms,
    "list_and_status": list_and_status,
    "two_sessions": two_sessions,
    "expunged_under_a_session": expunged_under_a_session,
    "idle_without_a_mailbox": idle_without_a_mailbox,
    "condstore": condstore,
    "authenticate": authenticate,
    "permanent_flags_are_permanent": permanent_flags_are_permanent,
}
