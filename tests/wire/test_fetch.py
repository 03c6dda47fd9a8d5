"""FETCH grammar (RFC 3501 §6.4.5, RFC 7162 modifiers) and response names (§7.4.2)."""

from __future__ import annotations

import pytest
from wire_helpers import parse

from bridge.imap.wire import Fetch, FetchAttribute, ProtocolError, Section, SequenceSet

F = FetchAttribute
FAST = (F("FLAGS"), F("INTERNALDATE"), F("RFC822.SIZE"))


def fetch(args: bytes, *, uid: bool = False) -> Fetch:
    prefix = b"a1 UID FETCH " if uid else b"a1 FETCH "
    event = parse(prefix + args + b"\r\n")
    assert isinstance(event, Fetch), event
    assert event.tag == "a1" and event.uid is uid
    return event


@pytest.mark.parametrize(
    ("args", "attributes"),
    [
        (b"1 ALL", (*FAST, F("ENVELOPE"))),
        (b"1 fast", FAST),
        (b"1 FULL", (*FAST, F("ENVELOPE"), F("BODY"))),
        (b"1 FLAGS", (F("FLAGS"),)),
        (b"1 (UID FLAGS MODSEQ)", (F("UID"), F("FLAGS"), F("MODSEQ"))),
        (b"1 (uid uid)", (F("UID"),)),
        (b"1 BODYSTRUCTURE", (F("BODYSTRUCTURE"),)),
        (b"1 BODY", (F("BODY"),)),
        (
            b"1 (RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE ENVELOPE INTERNALDATE)",
            tuple(
                F(n)
                for n in (
                    "RFC822",
                    "RFC822.HEADER",
                    "RFC822.TEXT",
                    "RFC822.SIZE",
                    "ENVELOPE",
                    "INTERNALDATE",
                )
            ),
        ),
        (b"1 BODY[]", (F("BODY", Section()),)),
        (b"1 BODY.PEEK[]", (F("BODY", Section(), peek=True),)),
        (b"1 body.peek[]<0.2048>", (F("BODY", Section(), True, (0, 2048)),)),
        (b"1 BODY[TEXT]<100.50>", (F("BODY", Section((), "TEXT"), False, (100, 50)),)),
        (b"1 BODY[HEADER]", (F("BODY", Section((), "HEADER")),)),
        (b"1 BODY[1]", (F("BODY", Section((1,))),)),
        (b"1 BODY[1.2.3]", (F("BODY", Section((1, 2, 3))),)),
        (b"1 BODY[1.2.MIME]", (F("BODY", Section((1, 2), "MIME")),)),
        (b"1 BODY[4.2.header]", (F("BODY", Section((4, 2), "HEADER")),)),
        (b"1 BODY[3.TEXT]", (F("BODY", Section((3,), "TEXT")),)),
        (
            b"1 BODY.PEEK[HEADER.FIELDS (From To Subject)]",
            (F("BODY", Section((), "HEADER.FIELDS", ("From", "To", "Subject")), True),),
        ),
        (
            b'1 BODY[HEADER.FIELDS.NOT ("X-Spam" {4+}\r\nDate)]',
            (F("BODY", Section((), "HEADER.FIELDS.NOT", ("X-Spam", "Date"))),),
        ),
        (
            b"1 BODY[2.HEADER.FIELDS (CONTENT-TYPE)]<0.10>",
            (F("BODY", Section((2,), "HEADER.FIELDS", ("CONTENT-TYPE",)), False, (0, 10)),),
        ),
    ],
)
def test_fetch_attributes(args: bytes, attributes: tuple[FetchAttribute, ...]) -> None:
    assert fetch(args).attributes == attributes


def test_fetch_sequence_and_modifiers() -> None:
    got = fetch(b"300:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)", uid=True)
    assert got.sequence == SequenceSet.parse("300:*")
    assert got.changed_since == 12345 and got.vanished
    got = fetch(b"1:3 (FLAGS) (CHANGEDSINCE 7)")
    assert got.changed_since == 7 and not got.vanished


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"a1 FETCH 1 (FLAGS) (VANISHED CHANGEDSINCE 5)",
            b"VANISHED is only allowed with UID FETCH",
        ),
        (b"a1 UID FETCH 1 (FLAGS) (VANISHED)", b"VANISHED requires CHANGEDSINCE"),
        (b"a1 FETCH 1 (FLAGS) (BOGUS)", b"Unknown FETCH modifier BOGUS"),
        (b"a1 FETCH 1 BOGUS", b"Unknown fetch attribute BOGUS"),
        (b"a1 FETCH 1 (FLAGS", b"Unbalanced parentheses: missing ')'"),
        (b"a1 FETCH 1 BODY.PEEK", b"BODY.PEEK needs a section"),
        (b"a1 FETCH 1 BODY[MIME]", b"MIME needs a part number"),
        (b"a1 FETCH 1 BODY[0]", b"Number out of range"),
        (b"a1 FETCH 1 BODY[1.BOGUS]", b"Invalid section BOGUS"),
        (b"a1 FETCH 1 BODY[HEADER", b"Expected ']' closing the section"),
        (b"a1 FETCH 1 BODY[]<1.0>", b"Number out of range"),
        (b"a1 FETCH 1 BODY[]<1>", b"Expected '.' in partial"),
        (b"a1 FETCH 1 BODY[HEADER.FIELDS ()]", b"Invalid header name"),
        (b"a1 FETCH 1 (FLAGS)(UID)", b"Expected a space"),
        (b"a1 FETCH x FLAGS", b"Invalid sequence set"),
    ],
)
def test_fetch_errors(data: bytes, reason: bytes) -> None:
    event = parse(data + b"\r\n")
    assert isinstance(event, ProtocolError)
    assert event.response == b"a1 BAD " + reason + b"\r\n"


@pytest.mark.parametrize(
    ("attribute", "response_name", "text"),
    [
        (F("BODY", Section(), peek=True), "BODY[]", "BODY.PEEK[]"),
        (F("BODY", Section(), False, (0, 100)), "BODY[]<0>", "BODY[]<0.100>"),
        (
            F("BODY", Section((), "HEADER.FIELDS", ("FROM", "TO")), True, (0, 5)),
            "BODY[HEADER.FIELDS (FROM TO)]<0>",
            "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.5>",
        ),
        (F("BODY", Section((1, 2), "MIME")), "BODY[1.2.MIME]", "BODY[1.2.MIME]"),
        (F("BODY", Section((3,))), "BODY[3]", "BODY[3]"),
        (
            F("BODY", Section((), "HEADER.FIELDS", ("X Odd",))),
            'BODY[HEADER.FIELDS ("X Odd")]',
            'BODY[HEADER.FIELDS ("X Odd")]',
        ),
        (F("RFC822.HEADER"), "RFC822.HEADER", "RFC822.HEADER"),
        (F("BODY"), "BODY", "BODY"),
    ],
)
def test_response_name(attribute: FetchAttribute, response_name: str, text: str) -> None:
    assert attribute.response_name() == response_name
    assert str(attribute) == text
    # the serialised request parses back to the same attribute
    assert fetch(b"1 " + text.encode()).attributes == (attribute,)


def test_sets_seen() -> None:
    assert F("BODY", Section()).sets_seen
    assert not F("BODY", Section(), peek=True).sets_seen
    assert F("RFC822").sets_seen and F("RFC822.TEXT").sets_seen
    assert not F("RFC822.HEADER").sets_seen and not F("BODY").sets_seen
