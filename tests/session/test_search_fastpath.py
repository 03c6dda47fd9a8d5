"""SEARCH's fast paths give the answers of the plain, parse-every-message evaluation.

The session answers flag keys from its own view, keeps INTERNALDATE/RFC822.SIZE/sent
dates/decoded header values/text-part layouts per UID, and narrows by session keys
first (bridge.imap.session.search). Here an oracle written the obvious way — every
message fetched from the backend with every need, its body parsed with
``mime.parse_structure`` and matched with ``mime.text`` — is compared with what the
session answers, over the realistic corpus of tests/corpus.py (RFC 2047 names, groups,
forwarded and malformed messages), cold (nothing cached) and warm, and while another
session's changes are still queued (not yet reported to this client).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.backend.types import FetchNeed, MessageData
from bridge.imap.session.fetch import _render
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import render_fetch
from bridge.imap.wire.serialize import Raw
from bridge.mime.structure import header_end, parse_structure
from bridge.mime.text import contains_ci, header_values, searchable_text
from tests.corpus import build_corpus

from .transcript import Client

COUNT = 120
BASE = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
KEYWORDS = ("$Work", "$Later", "Junk")


def _flags(i: int) -> frozenset[str]:
    flags = set()
    if i % 3:
        flags.add("\\Seen")
    if i % 7 == 0:
        flags.add("\\Flagged")
    if i % 5 == 0:
        flags.add("\\Answered")
    if i % 11 == 0:
        flags.add("\\Deleted")
    if i % 13 == 0:
        flags.add("\\Draft")
    if i % 4 == 0:
        flags.add(KEYWORDS[i % 3])
    return frozenset(flags)


async def _backend() -> MemoryBackend:
    backend = MemoryBackend()
    for i, body in enumerate(build_corpus(COUNT, seed=7)):
        # Two messages a day, some days apart, so SINCE/BEFORE/ON split the mailbox.
        when = BASE + timedelta(hours=12 * i + (i % 5))
        await backend.append("INBOX", body, _flags(i), when)
    return backend


def _sent(data: MessageData) -> date | None:
    value = getattr(data.summary, "sent_date", None)
    return datetime.fromisoformat(value).date() if value else None


def _date_cmp(op: str, value: date, wanted: Any) -> bool:
    if op == "BEFORE":
        return bool(value < wanted)
    if op == "ON":
        return bool(value == wanted)
    return bool(value >= wanted)


_FLAG = {"ANSWERED": "Answered", "DELETED": "Deleted", "DRAFT": "Draft", "FLAGGED": "Flagged"}
_FLAG |= {"SEEN": "Seen"}
_HEADER = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}


def oracle_matches(
    key: c.SearchKey, data: MessageData, seq: int, exists: int, largest: int, recent: bool
) -> bool:
    """RFC 3501 §6.4.4, evaluated the slow, obvious way on one fully loaded message."""
    op, args = key.op, key.args
    flags = data.flags or frozenset()
    body = data.body or b""

    def sub(k: object) -> bool:
        assert isinstance(k, c.SearchKey)
        return oracle_matches(k, data, seq, exists, largest, recent)

    if op == "AND":
        return all(sub(k) for k in args)
    if op == "OR":
        return sub(args[0]) or sub(args[1])
    if op == "NOT":
        return not sub(args[0])
    if op == "ALL":
        return True
    if op in _FLAG:
        return "\\" + _FLAG[op] in flags
    if op.startswith("UN") and op[2:] in _FLAG:
        return "\\" + _FLAG[op[2:]] not in flags
    if op == "RECENT":
        return recent
    if op == "OLD":
        return not recent
    if op == "NEW":
        return recent and "\\Seen" not in flags
    if op in ("KEYWORD", "UNKEYWORD"):
        present = any(f.lower() == str(args[0]).lower() for f in flags)
        return present if op == "KEYWORD" else not present
    if op == "LARGER":
        return len(body) > int(str(args[0]))
    if op == "SMALLER":
        return len(body) < int(str(args[0]))
    if op in ("BEFORE", "ON", "SINCE"):
        assert data.internaldate is not None
        return _date_cmp(op, data.internaldate.date(), args[0])
    if op.startswith("SENT"):
        sent = _sent(data)
        return sent is not None and _date_cmp(op[4:], sent, args[0])
    root = parse_structure(body)
    if op in _HEADER:
        return any(contains_ci(v, str(args[0])) for v in header_values(body, _HEADER[op], root))
    if op == "HEADER":
        return any(contains_ci(v, str(args[1])) for v in header_values(body, str(args[0]), root))
    if op == "BODY":
        return contains_ci(searchable_text(body, root), str(args[0]))
    if op == "TEXT":
        head = body[: root.body_start].decode("utf-8", "replace")
        needle = str(args[0])
        return contains_ci(head, needle) or contains_ci(searchable_text(body, root), needle)
    if op == "UID":
        uidset = args[0]
        assert isinstance(uidset, c.SequenceSet)
        return uidset.contains(data.uid, largest)
    if op == "SEQ":
        seqset = args[0]
        assert isinstance(seqset, c.SequenceSet)
        return seqset.contains(seq, exists)
    if op == "MODSEQ":
        return data.modseq >= int(str(args[0]))
    raise AssertionError(op)


async def oracle(backend: MemoryBackend, client: Client, key: c.SearchKey) -> list[int]:
    """UIDs the slow evaluation finds, over what the backend has now."""
    selected = client.session.selected
    assert selected is not None
    view = selected.uids
    everything = FetchNeed.FLAGS | FetchNeed.INTERNALDATE | FetchNeed.SIZE
    everything |= FetchNeed.SUMMARY | FetchNeed.BODY
    datas = await backend.fetch(selected.mailbox_id, view, everything)
    recent = selected.recent_uids
    return [
        d.uid
        for d in datas
        if oracle_matches(
            key, d, view.index(d.uid) + 1, len(view), view[-1] if view else 0, d.uid in recent
        )
    ]


def _hits(client: Client, tag: str) -> list[int]:
    untagged, tagged = client.responses_until(tag)
    assert tagged.startswith(f"{tag} OK"), tagged
    lines = [u for u in untagged if u.startswith("* SEARCH")]
    assert len(lines) == 1, untagged
    numbers = re.sub(r" \(MODSEQ \d+\)$", "", lines[0].removeprefix("* SEARCH"))
    return [int(n) for n in numbers.split()]


async def session_hits(client: Client, key: c.SearchKey, tag: str) -> list[int]:
    await client.C(f"{tag} UID SEARCH CHARSET UTF-8 {key}")
    return _hits(client, tag)


def k(op: str, *args: object) -> c.SearchKey:
    return c.SearchKey(op, tuple(args))


def _set(text: str) -> c.SequenceSet:
    ranges: list[tuple[int | None, int | None]] = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        lo = None if a == "*" else int(a)
        hi = lo if not b else (None if b == "*" else int(b))
        ranges.append((lo, hi))
    return c.SequenceSet(tuple(ranges))


DAY = (BASE + timedelta(days=20)).date()
SENT_DAY = date(2024, 6, 1)
NEEDLES = ("alice", "ALICE", "Müller", "report", "migration", "@", "<", "contoso", "", "Ü")
NEEDLES += ("re:", "undisclosed", "田中", "café", "x-none-such")

TABLE: list[c.SearchKey] = [
    *(k(op) for op in ("ALL", "SEEN", "UNSEEN", "FLAGGED", "UNFLAGGED", "ANSWERED")),
    *(k(op) for op in ("UNANSWERED", "DELETED", "UNDELETED", "DRAFT", "UNDRAFT")),
    *(k(op) for op in ("NEW", "OLD", "RECENT")),
    k("KEYWORD", "$work"),
    k("UNKEYWORD", "$Later"),
    k("KEYWORD", "Junk"),
    k("UID", _set("5:20,40,100:*")),
    k("SEQ", _set("3:10,*")),
    k("MODSEQ", 50, None, None),
    *(k("SINCE", DAY), k("BEFORE", DAY), k("ON", DAY)),
    *(k("SENTSINCE", SENT_DAY), k("SENTBEFORE", SENT_DAY), k("SENTON", SENT_DAY)),
    k("LARGER", 4000),
    k("SMALLER", 1500),
    *(k(op, needle) for op in ("FROM", "TO", "CC", "BCC", "SUBJECT") for needle in NEEDLES),
    k("HEADER", "Subject", "report"),
    k("HEADER", "from", "ALICE"),
    k("HEADER", "Content-Type", "multipart"),
    k("HEADER", "Message-ID", ""),
    k("HEADER", "X-None-Such", ""),
    *(k("BODY", needle) for needle in ("migration", "MIGRATION", "ü", "hello", "")),
    *(k("TEXT", needle) for needle in ("migration", "From:", "contoso", "田中", "zzzz")),
    k("AND", k("UNSEEN"), k("FROM", "alice")),
    k("AND", k("FLAGGED"), k("SINCE", DAY), k("TEXT", "report")),
    k("OR", k("FROM", "alice"), k("SUBJECT", "report")),
    k("OR", k("SEEN"), k("BODY", "migration")),
    k("NOT", k("TEXT", "migration")),
    k("AND", k("NOT", k("SEEN")), k("OR", k("LARGER", 3000), k("HEADER", "To", "bob"))),
    k("AND", k("UID", _set("1:60")), k("SEQ", _set("20:*")), k("SUBJECT", "re")),
]


async def _setup() -> tuple[MemoryBackend, Client, Client]:
    # MemoryBackend mailbox ids are never reused, so nothing of this mailbox is cached yet.
    backend = await _backend()
    auth = MemoryAuthenticator({"user": ("secret", backend)})
    first, other = Client(auth), Client(auth)
    for client in (first, other):
        client.skip()
        await client.login()
        await client.select()
    return backend, first, other


async def test_table_cold_and_warm_match_the_oracle() -> None:
    backend, client, _ = await _setup()
    for n, key in enumerate(TABLE):
        expected = await oracle(backend, client, key)
        assert await session_hits(client, key, f"c{n}") == expected, str(key)
    # Everything is cached now: the same answers without parsing a single message.
    for n, key in enumerate(TABLE):
        expected = await oracle(backend, client, key)
        assert await session_hits(client, key, f"w{n}") == expected, str(key)


async def test_the_table_is_not_trivial() -> None:
    """Each kind of key finds some messages and misses others over this corpus."""
    backend, client, _ = await _setup()
    for key in (k("UNSEEN"), k("FROM", "alice"), k("SINCE", DAY), k("TEXT", "migration")):
        hits = await oracle(backend, client, key)
        assert 0 < len(hits) < COUNT, str(key)


async def test_queued_changes_of_another_session_count() -> None:
    """Flags stored and messages expunged by another session are searched as the backend
    has them, although this client has not been told yet (RFC 3501 §7.4.1 forbids
    EXPUNGE during SEARCH; the old code read the backend, the fast path its queue)."""
    backend, client, other = await _setup()
    await other.C("o1 UID STORE 1:30 +FLAGS.SILENT (\\Flagged $Later)")
    other.responses_until("o1")
    await other.C("o2 UID STORE 31:60 -FLAGS.SILENT (\\Seen)")
    other.responses_until("o2")
    await other.C("o3 UID EXPUNGE 1:120")  # the \Deleted ones
    other.responses_until("o3")
    selected = client.session.selected
    assert selected is not None and selected.has_pending
    keys = [
        k("FLAGGED"),
        k("UNSEEN"),
        k("KEYWORD", "$later"),
        k("ALL"),
        k("MODSEQ", 1, None, None),
        k("DELETED"),
        k("AND", k("FLAGGED"), k("FROM", "a")),
        k("SEQ", _set("1:*")),
    ]
    for n, key in enumerate(keys):
        expected = await oracle(backend, client, key)
        assert await session_hits(client, key, f"q{n}") == expected, str(key)
    # The ghosts are still numbered: a plain SEARCH reports sequence numbers of the
    # client's view, which has not lost them yet.
    await client.C("s1 SEARCH UNSEEN")
    seqs = _hits(client, "s1")
    uids = await oracle(backend, client, k("UNSEEN"))
    assert seqs == [selected.seq_of(uid) for uid in uids]


_LEAVES = st.sampled_from(
    [
        *[key for key in TABLE if key.op not in ("AND", "OR", "NOT")][::3],
        *(k("UNSEEN"), k("FROM", "alice"), k("TEXT", "migration"), k("SINCE", DAY)),
    ]
)
_KEYS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.builds(lambda a: k("NOT", a), inner),
        st.builds(lambda a, b: k("OR", a, b), inner, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda ks: k("AND", *ks)),
    ),
    max_leaves=5,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_random_programs_match_the_oracle(data: st.DataObject) -> None:
    backend, client, _ = await _setup()
    for n in range(3):
        key = data.draw(_KEYS)
        expected = await oracle(backend, client, key)
        assert await session_hits(client, key, f"h{n}") == expected, str(key)


_FETCH_LINE = re.compile(
    r"^\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\) INTERNALDATE \"([^\"]+)\" RFC822\.SIZE (\d+)"
)


async def test_fetch_from_view_and_cache_matches_the_backend() -> None:
    """FETCH of flags and cached items makes no backend call, yet answers what the
    backend has: another session's queued flag changes included, its expunged messages
    (ghosts here) left out, and RFC 2180 §4.1.2's NO for a sequence FETCH of a ghost."""
    backend, client, other = await _setup()
    command = "UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"
    await client.C(f"f1 {command}")  # fills the cache
    client.responses_until("f1")
    await other.C("o1 UID STORE 2:40 +FLAGS.SILENT (\\Flagged)")
    other.responses_until("o1")
    await other.C("o2 UID EXPUNGE 1:120")
    other.responses_until("o2")
    selected = client.session.selected
    assert selected is not None
    calls: list[FetchNeed] = []
    real = backend.fetch

    async def counting(mailbox_id: str, uids: Any, need: FetchNeed) -> list[MessageData]:
        calls.append(need)
        return await real(mailbox_id, uids, need)

    backend.fetch = counting  # type: ignore[method-assign]
    ghost = next(uid for uid in selected.uids if selected.is_expunged(uid))
    await client.C(f"f3 FETCH {selected.seq_of(ghost)} (FLAGS)")
    _, tagged = client.responses_until("f3")
    assert tagged.startswith("f3 NO [EXPUNGEISSUED]")
    seq_of = {uid: selected.seq_of(uid) for uid in selected.uids}  # UID FETCH then expunges
    view = selected.uids
    await client.C(f"f2 {command}")
    untagged, tagged = client.responses_until("f2")
    assert tagged.startswith("f2 OK")
    assert calls == []
    backend.fetch = real  # type: ignore[method-assign]
    everything = FetchNeed.FLAGS | FetchNeed.INTERNALDATE | FetchNeed.SIZE
    truth = {d.uid: d for d in await backend.fetch(selected.mailbox_id, view, everything)}
    got = {}
    for line in untagged:
        match = _FETCH_LINE.match(line)
        if match is not None:
            got[int(match.group(2))] = match
    assert sorted(got) == sorted(truth)  # ghosts left out
    for uid, match in got.items():
        data = truth[uid]
        expected = set(data.flags or ()) | ({"\\Recent"} if uid in selected.recent_uids else set())
        assert set(match.group(3).split()) == expected, uid
        assert int(match.group(5)) == data.size
        assert int(match.group(1)) == seq_of[uid]


def _header_end_reference(data: bytes, start: int, end: int) -> int:
    """mime.structure.header_end as it was before it stopped scanning past the header."""
    if start >= end:
        return end
    if data[start] == 0x0A:
        return start + 1
    if data.startswith(b"\r\n", start, end):
        return start + 2
    lf = data.find(b"\n\n", start, end)
    crlf = data.find(b"\n\r\n", start, end)
    if lf < 0 and crlf < 0:
        return end
    if crlf < 0 or (0 <= lf < crlf):
        return lf + 2
    return crlf + 3


@given(st.lists(st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b" ", b":"]), max_size=40))
def test_header_end_is_unchanged(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    for start in range(len(data) + 1):
        for end in (len(data), max(start, len(data) - 3)):
            assert header_end(data, start, end) == _header_end_reference(data, start, end)


def test_fetch_fast_rendering_equals_render_fetch() -> None:
    envelope = Raw(b'("date" "subj" NIL NIL NIL NIL NIL NIL NIL "<id@x>")')
    cases: list[list[tuple[str, Any]]] = [
        [("UID", 7), ("FLAGS", Raw(b"(\\Seen)")), ("ENVELOPE", envelope), ("RFC822.SIZE", 0)],
        [("MODSEQ", Raw(b"(12)")), ("BODYSTRUCTURE", Raw(b'("text" "plain" NIL NIL NIL)'))],
        [("UID", 1), ("INTERNALDATE", BASE), ("BODY[]", b"abc\r\n")],
        [("UID", 2), ("FLAGS", ["\\Seen", "$X"])],
        [],
    ]
    for items in cases:
        assert _render(12, items) == render_fetch(12, items)
