"""Python's ``imaplib`` as a realistic client of the whole bridge over the corpus.

One session per test, run in a worker thread (the bridge serves in the test's loop); IDLE
is driven over a raw asyncio connection so that delivery and ``sync_now`` happen while
the client waits.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import email.policy
import email.utils
import imaplib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from tests.corpus import corpus_message
from tests.e2e.conftest import RunningBridge

from .helpers import PASSWORD, message_id, seed_corpus


@contextmanager
def _session(port: int, login: str = "alice") -> Iterator[imaplib.IMAP4]:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        typ, data = imap.login(login, PASSWORD)
        assert typ == "OK", data
        yield imap
    finally:
        imap.logout()


def _ok(result: tuple[str, list[object]]) -> list[object]:
    typ, data = result
    assert typ == "OK", data
    return data


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def _literals(data: list[object]) -> dict[int, tuple[bytes, bytes]]:
    """UID -> (response prefix, literal) from an imaplib FETCH answer with one literal
    per message."""
    out: dict[int, tuple[bytes, bytes]] = {}
    for item in data:
        if isinstance(item, tuple):
            prefix, literal = item
            found = _UID.search(prefix)
            assert found is not None, prefix
            out[int(found.group(1))] = (prefix, literal)
    return out


def _search(imap: imaplib.IMAP4, *criteria: str, literal: bytes | None = None) -> set[int]:
    if literal is not None:
        imap.literal = literal  # imaplib sends it as the last argument, as a literal
    data = _ok(imap.uid("SEARCH", *criteria))
    return {int(u) for u in data[0].split()}  # type: ignore[union-attr]


def _decoded_subject(raw: bytes) -> str:
    msg = email.message_from_bytes(raw)
    return str(email.header.make_header(email.header.decode_header(msg.get("Subject", ""))))


def _text_parts(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text" and not part.is_multipart():
            try:
                texts.append(str(part.get_content()))
            except (LookupError, UnicodeError, AssertionError):
                continue
    return "\n".join(texts)


async def test_imaplib_session_over_the_corpus(running_bridge: RunningBridge) -> None:
    bridge = running_bridge
    sim, alice = bridge.sim, bridge.tenant.alice.id
    seeded = seed_corpus(bridge, alice, ["inbox"], count=30, seed=3, spacing=timedelta(days=1))
    corpus = {message_id(m): m for m in seeded["inbox"]}
    await bridge.sync_now("alice")
    outlook = {m["internetMessageId"]: m for m in sim.messages(alice, "inbox")}

    def client() -> None:
        with _session(bridge.imap_port) as imap:
            # LIST with SPECIAL-USE (RFC 6154 §2, LIST-EXTENDED RETURN option).
            listing = _ok(imap.list('""', "*"))
            typ, data = imap._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
            assert typ == "OK", data
            special = b"\n".join(imap.untagged_responses.pop("LIST", []))
            for attr, name in (
                (rb"\Sent", b'"Sent Items"'),
                (rb"\Drafts", b'"Drafts"'),
                (rb"\Trash", b'"Deleted Items"'),
                (rb"\Junk", b'"Junk Email"'),
                (rb"\Archive", b'"Archive"'),
            ):
                assert re.search(re.escape(attr) + rb"[^)]*\) \"/\" " + re.escape(name), special)
            assert any(b'"INBOX"' in line for line in listing)  # type: ignore[operator]

            # STATUS agrees with Outlook, and with SELECT.
            status = _ok(imap.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"))[0]
            assert isinstance(status, bytes)
            counts = dict(re.findall(rb"(MESSAGES|UNSEEN|UIDNEXT|UIDVALIDITY) (\d+)", status))
            assert int(counts[b"MESSAGES"]) == len(corpus)
            assert int(counts[b"UNSEEN"]) == sum(not m["isRead"] for m in outlook.values())
            exists = _ok(imap.select("INBOX"))[0]
            assert int(exists) == len(corpus)  # type: ignore[arg-type]
            assert imap.untagged_responses["UIDVALIDITY"] == [counts[b"UIDVALIDITY"]]

            # The whole corpus: BODY[] is what was delivered, RFC822.SIZE its length.
            bodies = _literals(_ok(imap.uid("FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK[])")))
            assert len(bodies) == len(corpus)
            by_uid: dict[int, bytes] = {}
            for uid, (prefix, body) in bodies.items():
                size = _SIZE.search(prefix)
                assert size is not None and int(size.group(1)) == len(body), uid
                assert body == corpus[message_id(body)]
                by_uid[uid] = body

            headers = _literals(_ok(imap.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER])")))
            texts = _literals(_ok(imap.uid("FETCH", "1:*", "(UID BODY.PEEK[TEXT])")))
            firsts = _literals(_ok(imap.uid("FETCH", "1:*", "(UID BODY.PEEK[1])")))
            for uid, body in by_uid.items():
                header, text = headers[uid][1], texts[uid][1]
                assert header + text == body, uid  # RFC 3501 §6.4.5: byte-exact slices
                assert header.endswith(b"\r\n\r\n"), uid
                parsed = email.message_from_bytes(body)
                if not parsed.is_multipart():
                    assert firsts[uid][1] == text, uid  # non-multipart: [1] is the body
                elif parsed.get_boundary():
                    assert firsts[uid][1] in text, uid

            # ENVELOPE and BODYSTRUCTURE for every message, in one go.
            structure = _ok(imap.uid("FETCH", "1:*", "(UID ENVELOPE BODYSTRUCTURE)"))
            blob = b"".join(
                b"".join(i) if isinstance(i, tuple) else i  # type: ignore[arg-type]
                for i in structure
            )
            assert blob.count(b"BODYSTRUCTURE (") == len(corpus)
            for mid in corpus:
                assert f'"{mid}"'.encode() in blob, mid
            mixed = [m for m in corpus.values() if b"multipart/mixed;" in m.split(b"\r\n\r\n")[0]]
            assert mixed and blob.upper().count(b'"MIXED"') >= len(mixed)

            uid_of = {message_id(b): uid for uid, b in by_uid.items()}

            def uids(pred: object) -> set[int]:
                return {uid_of[mid] for mid, raw in corpus.items() if pred(raw)}  # type: ignore[operator]

            # SEARCH: FROM, SUBJECT on decoded RFC 2047 text, TEXT on decoded bodies,
            # UNSEEN, SINCE.
            assert _search(imap, "FROM", '"support@contoso.example"') == uids(
                lambda raw: (
                    "support@contoso.example"
                    in email.utils.parseaddr(email.message_from_bytes(raw)["From"])[1]
                )
            )
            word = next(
                max((w for w in _decoded_subject(raw).split() if not w.isascii()), key=len)
                for raw in corpus.values()
                if not _decoded_subject(raw).isascii()
            )
            hits = _search(imap, "CHARSET", "UTF-8", "SUBJECT", literal=word.encode())
            expected = uids(lambda raw: word.casefold() in _decoded_subject(raw).casefold())
            assert hits == expected and expected, "SUBJECT on RFC 2047 text"
            hits = _search(imap, "CHARSET", "UTF-8", "TEXT", literal="München".encode())
            expected = uids(lambda raw: "münchen" in _text_parts(raw).casefold())
            assert hits == expected and expected, "TEXT on quoted-printable bodies"
            unread = {uid_of[mid] for mid, m in outlook.items() if not m["isRead"]}
            assert _search(imap, "UNSEEN") == unread
            since = _search(imap, "SINCE", "15-Oct-2026")
            # Received at 08:00 UTC on consecutive days: the date is the same in any zone
            # the server might use for INTERNALDATE (RFC 3501 §6.4.4).
            late = {mid for mid, m in outlook.items() if m["receivedDateTime"] >= "2026-10-15"}
            assert since == {uid_of[mid] for mid in late} and 0 < len(late) < len(corpus)
            assert _search(imap, "UNSEEN", "SINCE", "15-Oct-2026") == since & unread

    await asyncio.to_thread(client)
    # Only PEEK was used: nothing became read in Outlook.
    assert {m["internetMessageId"]: m["isRead"] for m in sim.messages(alice, "inbox")} == {
        mid: m["isRead"] for mid, m in outlook.items()
    }


_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


async def test_imaplib_append_copy_move(running_bridge: RunningBridge) -> None:
    bridge = running_bridge
    sim, alice = bridge.sim, bridge.tenant.alice.id
    seeded = seed_corpus(bridge, alice, ["inbox"], count=6, seed=4)
    await bridge.sync_now("alice")
    sent_mail = corpus_message("mixed", seed=77)

    def client() -> dict[str, object]:
        got: dict[str, object] = {}
        with _session(bridge.imap_port) as imap:
            data = _ok(
                imap.append('"Sent Items"', r"(\Seen)", imaplib.Time2Internaldate(0), sent_mail)
            )
            found = _APPENDUID.search(data[0])  # type: ignore[arg-type]
            assert found is not None, data
            validity, uid = int(found.group(1)), int(found.group(2))
            _ok(imap.select('"Sent Items"'))
            assert imap.untagged_responses["UIDVALIDITY"] == [str(validity).encode()]
            back = _literals(_ok(imap.uid("FETCH", str(uid), "(UID FLAGS BODY.PEEK[])")))
            assert back[uid][1] == sent_mail  # byte-identical read-back
            assert rb"\Seen" in back[uid][0]

            _ok(imap.select("INBOX"))
            inbox = _literals(_ok(imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")))
            first, second = sorted(inbox)[:2]
            # imaplib files the tagged OK's response code under its name.
            _ok(imap.uid("COPY", str(first), "Archive"))
            codes = imap.untagged_responses.pop("COPYUID", [])
            assert len(codes) == 1, codes
            fields = codes[0].split()
            assert fields[1] == str(first).encode()
            copied_to = int(fields[2])
            # MOVE answers COPYUID in an untagged OK before the EXPUNGE (RFC 6851 §4.3).
            _ok(imap.uid("MOVE", str(second), "Archive"))
            codes = imap.untagged_responses.pop("COPYUID", [])
            assert len(codes) == 1, codes
            fields = codes[0].split()
            assert fields[1] == str(second).encode()
            moved_to = int(fields[2])
            expunged = imap.untagged_responses.pop("EXPUNGE", [])
            assert len(expunged) == 1
            remaining = _search(imap, "ALL")
            assert second not in remaining and first in remaining

            _ok(imap.select("Archive"))
            archive = _literals(
                _ok(imap.uid("FETCH", f"{copied_to},{moved_to}", "(UID BODY.PEEK[])"))
            )
            assert archive[copied_to][1] == inbox[first][1]
            assert archive[moved_to][1] == inbox[second][1]
            got["copied"] = message_id(inbox[first][1])
            got["moved"] = message_id(inbox[second][1])
        return got

    got = await asyncio.to_thread(client)
    sent_items = [m for m in sim.messages(alice, "sentitems")]
    assert [m["internetMessageId"] for m in sent_items] == [message_id(sent_mail)]
    assert sent_items[0]["isDraft"] is False and sent_items[0]["isRead"] is True
    inbox_ids = [m["internetMessageId"] for m in sim.messages(alice, "inbox")]
    archive_ids = [m["internetMessageId"] for m in sim.messages(alice, "archive")]
    assert got["copied"] in inbox_ids and got["copied"] in archive_ids
    assert got["moved"] not in inbox_ids and got["moved"] in archive_ids
    assert len(inbox_ids) == len(seeded["inbox"]) - 1


async def _line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), 20)


async def _until(reader: asyncio.StreamReader, pattern: bytes) -> list[bytes]:
    lines = []
    while True:
        line = await _line(reader)
        assert line, f"connection closed waiting for {pattern!r}: {lines}"
        lines.append(line)
        if re.match(pattern, line):
            return lines


async def test_idle_sees_new_mail(running_bridge: RunningBridge) -> None:
    bridge = running_bridge
    sim, alice = bridge.sim, bridge.tenant.alice.id
    seed_corpus(bridge, alice, ["inbox"], count=3, seed=8)
    await bridge.sync_now("alice")
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.imap_port)
    try:
        await _until(reader, rb"\* OK")
        writer.write(f'a1 LOGIN alice "{PASSWORD}"\r\n'.encode())
        await _until(reader, rb"a1 OK")
        writer.write(b"a2 SELECT INBOX\r\n")
        selected = await _until(reader, rb"a2 OK")
        assert any(re.match(rb"\* 3 EXISTS", line) for line in selected), selected
        writer.write(b"a3 IDLE\r\n")
        await _until(reader, rb"\+ ")
        # While the client idles: new mail arrives in Outlook and the bridge syncs.
        sim.deliver(alice, corpus_message("utf8_8bit", seed=81))
        await bridge.sync_now("alice")
        pushed = await _until(reader, rb"\* \d+ EXISTS")
        assert pushed[-1].strip() == b"* 4 EXISTS"
        # Outlook marks a message read: the flag change is pushed as FETCH (FLAGS).
        first = min(sim.messages(alice, "inbox"), key=lambda m: m["receivedDateTime"])
        sim.set_flag(alice, first["id"], True)
        await bridge.sync_now("alice")
        pushed = await _until(reader, rb"\* 1 FETCH \(")
        assert rb"\Flagged" in pushed[-1]
        writer.write(b"DONE\r\n")
        await _until(reader, rb"a3 OK")
        writer.write(b"a4 UID FETCH 1:* (FLAGS)\r\n")
        fetched = await _until(reader, rb"a4 OK")
        assert sum(line.startswith(b"* ") for line in fetched) == 4
        writer.write(b"a5 LOGOUT\r\n")
        await _until(reader, rb"a5 OK")
    finally:
        writer.close()


async def test_isolation_between_accounts(running_bridge: RunningBridge) -> None:
    bridge = running_bridge
    sim, tenant = bridge.sim, bridge.tenant
    private = sim.create_folder(tenant.alice.id, "Alice Private")
    seeded = seed_corpus(bridge, tenant.alice.id, ["inbox", private], count=10, seed=9)
    bob_mail = corpus_message("plain", seed=90)
    sim.deliver(tenant.bob.id, bob_mail)
    await bridge.sync_now("alice")
    await bridge.sync_now("bob")
    probe = corpus_message("plain", seed=91)

    def as_bob() -> None:
        with _session(bridge.imap_port, "bob") as imap:
            names = b"\n".join(_ok(imap.list('""', "*")))  # type: ignore[arg-type]
            assert b"Alice Private" not in names
            for command in (
                lambda: imap.select('"Alice Private"'),
                lambda: imap.select('"Alice Private"', readonly=True),
                lambda: imap.status('"Alice Private"', "(MESSAGES)"),
                lambda: imap.append('"Alice Private"', "", None, probe),
                lambda: imap.select(f'"{tenant.alice.mail}/INBOX"'),
                lambda: imap.select('"Other Users/alice/INBOX"'),
                lambda: imap.select('"../alice/INBOX"'),
            ):
                typ, data = command()
                assert typ == "NO", data
            # Bob's INBOX holds one message: alice's UIDs name nothing here.
            _ok(imap.select("INBOX"))
            data = _ok(imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])"))
            bodies = _literals(data)
            assert [b for _, b in bodies.values()] == [bob_mail]
            data = _ok(imap.uid("FETCH", "2:50", "(UID BODY.PEEK[HEADER])"))
            assert _literals(data) == {}  # no '*' in the range: UID 1 is not in 2:50
            assert _search(imap, "ALL") == set(bodies)

    await asyncio.to_thread(as_bob)
    assert len(sim.messages(tenant.alice.id, private)) == len(seeded[private])
    assert all(f["displayName"] != "Alice Private" for f in sim.folders(tenant.bob.id))
    assert [m["internetMessageId"] for m in sim.messages(tenant.bob.id, "inbox")] == [
        message_id(bob_mail)
    ]
