"""SEARCH grammar (RFC 3501 §6.4.4, RFC 4731 RETURN, RFC 7162 MODSEQ) and round trips."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_helpers import collect, parse

from bridge.imap.wire import (
    ContinuationNeeded,
    ProtocolError,
    Search,
    SearchKey,
    SequenceSet,
)

K = SearchKey


def search(args: bytes, *, uid: bool = False, **kwargs: object) -> Search:
    prefix = b"a1 UID SEARCH " if uid else b"a1 SEARCH "
    event = parse(prefix + args + b"\r\n", **kwargs)  # type: ignore[arg-type]
    assert isinstance(event, Search), event
    return event


FLAG_KEYS = [
    "ALL",
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "NEW",
    "OLD",
    "RECENT",
    "SEEN",
    "UNANSWERED",
    "UNDELETED",
    "UNDRAFT",
    "UNFLAGGED",
    "UNSEEN",
]


@pytest.mark.parametrize("name", FLAG_KEYS)
def test_flag_keys(name: str) -> None:
    assert search(name.lower().encode()).criteria == K(name)


@pytest.mark.parametrize("name", ["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"])
def test_string_keys(name: str) -> None:
    assert search(name.encode() + b' "hello world"').criteria == K(name, ("hello world",))
    assert search(name.encode() + b" atom").criteria == K(name, ("atom",))


@pytest.mark.parametrize("name", ["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"])
def test_date_keys(name: str) -> None:
    assert search(name.encode() + b" 1-Feb-1994").criteria == K(name, (date(1994, 2, 1),))
    assert search(name.encode() + b' "29-feb-2024"').criteria == K(name, (date(2024, 2, 29),))


@pytest.mark.parametrize(
    ("args", "criteria"),
    [
        (b"KEYWORD $Junk", K("KEYWORD", ("$Junk",))),
        (b"UNKEYWORD foo", K("UNKEYWORD", ("foo",))),
        (b"HEADER Message-ID <a@b>", K("HEADER", ("Message-ID", "<a@b>"))),
        (b'HEADER "X-Thing" ""', K("HEADER", ("X-Thing", ""))),
        (b"LARGER 1000", K("LARGER", (1000,))),
        (b"SMALLER 5", K("SMALLER", (5,))),
        (b"UID 1:5,9", K("UID", (SequenceSet.parse("1:5,9"),))),
        (b"4:2,7,9:*", K("SEQ", (SequenceSet.parse("4:2,7,9:*"),))),
        (b"NOT SEEN", K("NOT", (K("SEEN"),))),
        (b"OR SEEN FLAGGED", K("OR", (K("SEEN"), K("FLAGGED")))),
        (b"(SEEN)", K("SEEN")),
        (b"SEEN FLAGGED", K("AND", (K("SEEN"), K("FLAGGED")))),
        (
            b"OR (FROM a SINCE 1-Jan-2020) NOT (TO b)",
            K(
                "OR",
                (
                    K("AND", (K("FROM", ("a",)), K("SINCE", (date(2020, 1, 1),)))),
                    K("NOT", (K("TO", ("b",)),)),
                ),
            ),
        ),
        (b"MODSEQ 620162338", K("MODSEQ", (620162338, None, None))),
        (
            b'MODSEQ "/flags/\\\\draft" all 620162338',
            K("MODSEQ", (620162338, "/flags/\\draft", "all")),
        ),
        (b"SUBJECT {5+}\r\nhi)(x", K("SUBJECT", ("hi)(x",))),
        (b"SUBJECT {6}\r\nj\xc3\xb6rg!", K("SUBJECT", ("j\u00f6rg!",))),
    ],
)
def test_search_keys(args: bytes, criteria: SearchKey) -> None:
    assert search(args).criteria == criteria


def test_charset_and_return_and_uid() -> None:
    got = search(b"RETURN (MIN COUNT) CHARSET utf-8 SUBJECT {6}\r\nj\xc3\xb6rg!", uid=True)
    assert got.uid and got.charset == "UTF-8" and got.return_opts == ("MIN", "COUNT")
    assert got.criteria == K("SUBJECT", ("j\u00f6rg!",))
    assert search(b"RETURN () ALL").return_opts == ()
    assert search(b"CHARSET US-ASCII ALL").charset == "US-ASCII"
    assert search(b"ALL").charset is None and search(b"ALL").return_opts is None


def test_unknown_charset_is_no_badcharset() -> None:
    event = parse(b"a1 SEARCH CHARSET KOI8-R SUBJECT x\r\n")
    assert isinstance(event, ProtocolError)
    assert event.response == b"a1 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"BOGUS", b"Unknown search key BOGUS"),
        (b"(SEEN", b"Unbalanced parentheses: missing ')'"),
        (b"SEEN)", b"Expected a space"),
        (b"((SEEN)", b"Unbalanced parentheses: missing ')'"),
        (b"OR SEEN", b"Missing argument"),
        (b"SINCE 31-Feb-2020", b"Invalid date"),
        (b"SINCE 1-Foo-2020", b"Invalid date"),
        (b"SINCE 2020-01-01", b"Invalid date"),
        (b"LARGER x", b"Invalid number"),
        (b"RETURN (BOGUS) ALL", b"Unknown SEARCH return option BOGUS"),
        (b"SUBJECT {2+}\r\n\xff\xfe", b"Search string is not valid UTF-8"),
        (b'MODSEQ "/flags/x" bogus 1', b"Invalid MODSEQ entry type"),
        (b'MODSEQ "bogus" all 1', b"Invalid MODSEQ entry name"),
        (b"", b"Missing argument"),
    ],
)
def test_search_errors(args: bytes, reason: bytes) -> None:
    event = parse(b"a1 SEARCH " + args + b"\r\n" if args else b"a1 SEARCH\r\n")
    assert isinstance(event, ProtocolError)
    assert event.response == b"a1 BAD " + reason + b"\r\n"


def test_nesting_limit() -> None:
    ok = b"(" * 30 + b"SEEN" + b")" * 30
    assert search(ok, max_nesting=32).criteria == K("SEEN")
    deep = b"(" * 40 + b"SEEN" + b")" * 40
    event = parse(b"a1 SEARCH " + deep + b"\r\n", max_nesting=32)
    assert isinstance(event, ProtocolError)
    assert event.response == b"a1 BAD Too deeply nested\r\n"
    # NOT/OR chains count too, so no Python recursion limit can be reached
    event = parse(b"a1 SEARCH " + b"NOT " * 5000 + b"SEEN\r\n")
    assert isinstance(event, ProtocolError) and b"Too deeply nested" in event.response


# ---------------------------------------------------------------- round trip property

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
_seqsets = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(1, 10**6)), st.one_of(st.none(), st.integers(1, 10**6))
    ),
    min_size=1,
    max_size=4,
).map(lambda rs: SequenceSet(tuple(rs)))
_leaf = st.one_of(
    st.sampled_from(FLAG_KEYS).map(K),
    st.tuples(st.sampled_from(["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"]), _text).map(
        lambda t: K(t[0], (t[1],))
    ),
    st.tuples(st.sampled_from(["BEFORE", "ON", "SINCE", "SENTON"]), _dates).map(
        lambda t: K(t[0], (t[1],))
    ),
    st.tuples(st.sampled_from(["LARGER", "SMALLER"]), st.integers(0, 2**40)).map(
        lambda t: K(t[0], (t[1],))
    ),
    st.tuples(_text, _text).map(lambda t: K("HEADER", t)),
    st.from_regex(r"\A[A-Za-z$][A-Za-z0-9$_-]{0,8}\Z").map(lambda s: K("KEYWORD", (s,))),
    _seqsets.map(lambda s: K("UID", (s,))),
    _seqsets.map(lambda s: K("SEQ", (s,))),
    st.integers(0, 2**62).map(lambda n: K("MODSEQ", (n, None, None))),
)


def _extend(children: st.SearchStrategy[SearchKey]) -> st.SearchStrategy[SearchKey]:
    return st.one_of(
        children.map(lambda k: K("NOT", (k,))),
        st.tuples(children, children).map(lambda t: K("OR", t)),
        st.lists(children, min_size=2, max_size=3).map(lambda ks: K("AND", tuple(ks))),
    )


search_keys = st.recursive(_leaf, _extend, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(search_keys)
def test_search_key_round_trip(key: SearchKey) -> None:
    wire = b"a1 SEARCH CHARSET UTF-8 " + str(key).encode("utf-8") + b"\r\n"
    events = [e for e in collect([wire]) if not isinstance(e, ContinuationNeeded)]
    assert len(events) == 1
    got = events[0]
    assert isinstance(got, Search), (wire, got)
    assert got.criteria == key


def test_a_lone_tilde_is_an_atom_not_literal8() -> None:
    # RFC 3501 §9: "~" is an ATOM-CHAR; only "~{" opens a literal8 (RFC 3516).
    events = [e for e in collect([b"a1 SEARCH BCC ~\r\n"]) if not isinstance(e, ContinuationNeeded)]
    assert len(events) == 1 and isinstance(events[0], Search)
    assert events[0].criteria == SearchKey("BCC", ("~",))
    refused = collect([b"a2 SEARCH BCC ~{3}\r\nabc\r\n"])
    assert any(isinstance(e, ProtocolError) and b"literal8" in e.response for e in refused)
