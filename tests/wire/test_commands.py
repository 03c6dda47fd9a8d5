"""Every command of the public API parses to the documented dataclass (three ways each)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from wire_helpers import parse, three_ways

from bridge.imap.wire import (
    Append,
    Authenticate,
    Capability,
    Check,
    Close,
    ContinuationNeeded,
    Copy,
    Create,
    Delete,
    Enable,
    Examine,
    Expunge,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    ListReturn,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    ProtocolError,
    QresyncParams,
    Rename,
    Select,
    SequenceSet,
    StartTls,
    Status,
    Store,
    Subscribe,
    Unselect,
    Unsubscribe,
)

S = SequenceSet.parse

CASES: list[tuple[bytes, object]] = [
    (b"a1 CAPABILITY\r\n", Capability("a1")),
    (b"a1 capability\r\n", Capability("a1")),
    (b"a1 NOOP\r\n", Noop("a1")),
    (b"a1 LOGOUT\r\n", Logout("a1")),
    (b"a1 STARTTLS\r\n", StartTls("a1")),
    (b"a1 CHECK\r\n", Check("a1")),
    (b"a1 CLOSE\r\n", Close("a1")),
    (b"a1 UNSELECT\r\n", Unselect("a1")),
    (b"a1 EXPUNGE\r\n", Expunge("a1")),
    (b"a1 UID EXPUNGE 3:5,9\r\n", Expunge("a1", S("3:5,9"))),
    (b"a1 IDLE\r\n", Idle("a1")),
    (b"a1 NAMESPACE\r\n", Namespace("a1")),
    (b"a1 AUTHENTICATE PLAIN\r\n", Authenticate("a1", "PLAIN", None)),
    (b"a1 authenticate plain =\r\n", Authenticate("a1", "PLAIN", b"")),
    (
        b"a1 AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n",
        Authenticate("a1", "PLAIN", b"\0user\0pass"),
    ),
    (b"a1 AUTHENTICATE XOAUTH2 dG9r\r\n", Authenticate("a1", "XOAUTH2", b"tok")),
    (b"a1 LOGIN bob secret\r\n", Login("a1", "bob", "secret")),
    (b'a1 LOGIN "bob@x" "p\\"a\\\\ss"\r\n', Login("a1", "bob@x", 'p"a\\ss')),
    (b'a1 LOGIN {3}\r\nbob {6+}\r\nse cr"\r\n', Login("a1", "bob", 'se cr"')),
    (b'a1 LOGIN "" ""\r\n', Login("a1", "", "")),
    (b'a1 LOGIN "j\xc3\xb6rg" pw\r\n', Login("a1", "j\u00f6rg", "pw")),
    (b"a1 SELECT INBOX\r\n", Select("a1", "INBOX")),
    (b"a1 SELECT inbox\r\n", Select("a1", "INBOX")),
    (b'a1 SELECT "InBoX"\r\n', Select("a1", "INBOX")),
    (b"a1 SELECT INBOX/Sub\r\n", Select("a1", "INBOX/Sub")),
    (b"a1 SELECT &ZeVnLIqe-\r\n", Select("a1", "\u65e5\u672c\u8a9e")),
    (b'a1 SELECT "Caf&AOk- &- Bar"\r\n', Select("a1", "Caf\u00e9 & Bar")),
    (b"a1 SELECT INBOX (CONDSTORE)\r\n", Select("a1", "INBOX", condstore=True)),
    (
        b"a1 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
        Select(
            "a1",
            "INBOX",
            qresync=QresyncParams(67890007, 20050715194045000, S("41,43:211,214:541")),
        ),
    ),
    (
        b"a1 SELECT INBOX (QRESYNC (1 2 1:9 (1:3 5:7)))\r\n",
        Select("a1", "INBOX", qresync=QresyncParams(1, 2, S("1:9"), (S("1:3"), S("5:7")))),
    ),
    (
        b"a1 SELECT INBOX (QRESYNC (1 2 (1:3 5:7)))\r\n",
        Select("a1", "INBOX", qresync=QresyncParams(1, 2, None, (S("1:3"), S("5:7")))),
    ),
    (b"a1 EXAMINE Archive\r\n", Examine("a1", "Archive")),
    (b"a1 EXAMINE Archive (CONDSTORE)\r\n", Examine("a1", "Archive", condstore=True)),
    (b"a1 CREATE Work/Reports\r\n", Create("a1", "Work/Reports")),
    (b"a1 DELETE {4}\r\nJunk\r\n", Delete("a1", "Junk")),
    (b'a1 RENAME "Old Name" New\r\n', Rename("a1", "Old Name", "New")),
    (b"a1 SUBSCRIBE Lists]x\r\n", Subscribe("a1", "Lists]x")),
    (b"a1 UNSUBSCRIBE Lists\r\n", Unsubscribe("a1", "Lists")),
    (b'a1 LIST "" *\r\n', List("a1", "", ("*",))),
    (b'a1 LIST "" %\r\n', List("a1", "", ("%",))),
    (b'a1 LIST "" "Work/%"\r\n', List("a1", "", ("Work/%",))),
    (b"a1 LIST Work &ZeVnLA-*\r\n", List("a1", "Work", ("\u65e5\u672c*",))),
    (
        b'a1 LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n',
        List(
            "a1",
            "",
            ("*",),
            frozenset({"SUBSCRIBED"}),
            ListReturn(frozenset({"CHILDREN", "SPECIAL-USE", "STATUS"}), ("MESSAGES", "UNSEEN")),
        ),
    ),
    (
        b'a1 LIST (SPECIAL-USE RECURSIVEMATCH) "" ("INBOX" "Sent*")\r\n',
        List("a1", "", ("INBOX", "Sent*"), frozenset({"SPECIAL-USE", "RECURSIVEMATCH"})),
    ),
    (b'a1 LIST () "" * RETURN ()\r\n', List("a1", "", ("*",))),
    (
        b'a1 LIST "" * RETURN (subscribed)\r\n',
        List("a1", "", ("*",), return_opts=ListReturn(frozenset({"SUBSCRIBED"}))),
    ),
    (b'a1 LSUB "" *\r\n', Lsub("a1", "", "*")),
    (b"a1 LSUB Work %\r\n", Lsub("a1", "Work", "%")),
    (
        b"a1 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT HIGHESTMODSEQ)\r\n",
        Status(
            "a1",
            "INBOX",
            ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "RECENT", "HIGHESTMODSEQ"),
        ),
    ),
    (b"a1 STATUS Sent (appendlimit size)\r\n", Status("a1", "Sent", ("APPENDLIMIT", "SIZE"))),
    (b"a1 APPEND INBOX {5}\r\nhello\r\n", Append("a1", "INBOX", frozenset(), None, b"hello")),
    (b"a1 APPEND INBOX {0}\r\n\r\n", Append("a1", "INBOX", frozenset(), None, b"")),
    (b"a1 APPEND INBOX {0+}\r\n\r\n", Append("a1", "INBOX", frozenset(), None, b"")),
    (
        b'a1 APPEND Sent (\\seen $Forwarded) " 7-Feb-1994 21:52:25 -0800" {7+}\r\nA\r\nB\r\nC\r\n',
        Append(
            "a1",
            "Sent",
            frozenset({"\\Seen", "$Forwarded"}),
            datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(-timedelta(hours=8))),
            b"A\r\nB\r\nC",
        ),
    ),
    (
        b'a1 APPEND Drafts () "17-Jul-1996 02:44:25 +0530" {2}\r\nhi\r\n',
        Append(
            "a1",
            "Drafts",
            frozenset(),
            datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            b"hi",
        ),
    ),
    (
        b"a1 STORE 2:4 +FLAGS (\\Deleted)\r\n",
        Store("a1", S("2:4"), "+FLAGS", False, frozenset({"\\Deleted"})),
    ),
    (
        b"a1 STORE 1 flags.silent \\seen \\FLAGGED kw\r\n",
        Store("a1", S("1"), "FLAGS", True, frozenset({"\\Seen", "\\Flagged", "kw"})),
    ),
    (b"a1 STORE 1 -FLAGS ()\r\n", Store("a1", S("1"), "-FLAGS", False, frozenset())),
    (
        b"a1 UID STORE 7,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT ($Junk)\r\n",
        Store("a1", S("7,9"), "+FLAGS", True, frozenset({"$Junk"}), True, 320162338),
    ),
    (b"a1 COPY 2:4 Archive\r\n", Copy("a1", S("2:4"), "Archive")),
    (b"a1 UID COPY 1:* &ZeVnLIqe-\r\n", Copy("a1", S("1:*"), "\u65e5\u672c\u8a9e", True)),
    (b"a1 MOVE 1 Trash\r\n", Move("a1", S("1"), "Trash")),
    (b"a1 uid move 4:2,7 Trash\r\n", Move("a1", S("4:2,7"), "Trash", True)),
    (b"a1 ID NIL\r\n", Id("a1", None)),
    (b"a1 ID ()\r\n", Id("a1", {})),
    (
        b'a1 ID ("name" "Thunderbird" "version" "115.0" "os" NIL)\r\n',
        Id("a1", {"name": "Thunderbird", "version": "115.0", "os": None}),
    ),
    (b"a1 ENABLE CONDSTORE qresync\r\n", Enable("a1", ("CONDSTORE", "QRESYNC"))),
    (b'a1 GETQUOTA ""\r\n', GetQuota("a1", "")),
    (b"a1 GETQUOTAROOT INBOX\r\n", GetQuotaRoot("a1", "INBOX")),
    (b"A.0001]x NOOP\r\n", Noop("A.0001]x")),
    (b"a1 NOOP\n", Noop("a1")),
]


@pytest.mark.parametrize(
    ("data", "expected"), CASES, ids=[c[0][:40].decode("latin-1") for c in CASES]
)
def test_command_parses(data: bytes, expected: object) -> None:
    assert parse(data) == expected


def test_sync_literal_reports_continuation_once_per_literal() -> None:
    events = three_ways(b"a1 LOGIN {3}\r\nbob {6}\r\nsecret\r\n")
    assert events == [
        ContinuationNeeded("a1", 3),
        ContinuationNeeded("a1", 6),
        Login("a1", "bob", "secret"),
    ]


def test_huge_numbers_are_bad_not_crashes() -> None:
    # Python refuses int() of > 4300 digits; the parser must answer BAD, not raise.
    for data in (
        b"a1 FETCH 1 BODY[]<" + b"9" * 5000 + b".1>\r\n",
        b"a1 FETCH " + b"9" * 5000 + b" FLAGS\r\n",
        b"a1 SEARCH LARGER " + b"9" * 5000 + b"\r\n",
    ):
        event = parse(data)
        assert isinstance(event, ProtocolError) and event.response.startswith(b"a1 BAD ")


def test_error_reply_stays_short_for_long_client_words() -> None:
    event = parse(b"a1 X" + b"Y" * 5000 + b"\r\n")
    assert isinstance(event, ProtocolError)
    assert event.response.startswith(b"a1 BAD Unknown command XYYY")
    assert len(event.response) < 140


def test_login_password_not_in_repr() -> None:
    assert "hunter2" not in repr(Login("a1", "bob", "hunter2"))


BAD_CASES: list[tuple[bytes, bytes]] = [
    (b"a1 FROB\r\n", b"a1 BAD Unknown command FROB\r\n"),
    (b"a1 UID FROB 1\r\n", b"a1 BAD Unknown UID command FROB\r\n"),
    (b"a1 NOOP extra\r\n", b"a1 BAD Unexpected extra arguments\r\n"),
    (b"a1 SELECT\r\n", b"a1 BAD Missing argument\r\n"),
    (b"a1 LOGIN bob\r\n", b"a1 BAD Missing argument\r\n"),
    (b"a1  NOOP\r\n", b"a1 BAD Invalid command\r\n"),
    (b"a1 SELECT &ZeVnLIqe\r\n", None),  # type: ignore[list-item]
    (b"a1 SELECT &AGE-\r\n", None),  # type: ignore[list-item]
    (b'a1 SELECT "caf\xc3\xa9"\r\n', None),  # type: ignore[list-item]
    (b'a1 LOGIN "bob pw\r\n', b"a1 BAD Unterminated quoted string\r\n"),
    (b'a1 LOGIN "b\\ob" pw\r\n', b"a1 BAD Invalid escape in quoted string\r\n"),
    (b"a1 STATUS INBOX ()\r\n", b"a1 BAD Empty STATUS item list\r\n"),
    (b"a1 STATUS INBOX (MESSAGES BOGUS)\r\n", b"a1 BAD Unknown STATUS item BOGUS\r\n"),
    (b"a1 STATUS INBOX (MESSAGES\r\n", None),  # type: ignore[list-item]
    (b'a1 LIST (BOGUS) "" *\r\n', b"a1 BAD Unknown LIST selection option BOGUS\r\n"),
    (
        b'a1 LIST (RECURSIVEMATCH) "" *\r\n',
        b"a1 BAD RECURSIVEMATCH needs another selection option\r\n",
    ),
    (b'a1 LIST "" * RETURN (BOGUS)\r\n', b"a1 BAD Unknown LIST return option BOGUS\r\n"),
    (b"a1 APPEND INBOX hello\r\n", b"a1 BAD APPEND message must be a literal\r\n"),
    (
        b'a1 APPEND INBOX "31-Feb-2020 00:00:00 +0000" {1+}\r\nx\r\n',
        b"a1 BAD Invalid date-time\r\n",
    ),
    (b'a1 APPEND INBOX "1-Foo-2020 00:00:00 +0000" {1+}\r\nx\r\n', b"a1 BAD Invalid date-time\r\n"),
    (b'a1 APPEND INBOX "1-Jan-2020 00:00:00 +0070" {1+}\r\nx\r\n', b"a1 BAD Invalid date-time\r\n"),
    (b'a1 APPEND INBOX "1-Jan-2020 24:00:00 +0000" {1+}\r\nx\r\n', b"a1 BAD Invalid date-time\r\n"),
    (
        b"a1 APPEND INBOX {1+}\r\nx {1+}\r\ny\r\n",
        b"a1 BAD MULTIAPPEND and CATENATE are not supported\r\n",
    ),
    (b"a1 APPEND INBOX ~{1+}\r\nx\r\n", b"a1 BAD literal8 (BINARY) is not supported\r\n"),
    (b"a1 STORE 1 FLAGZ (\\Seen)\r\n", b"a1 BAD Expected FLAGS, +FLAGS or -FLAGS\r\n"),
    (b"a1 STORE 0 FLAGS (\\Seen)\r\n", b"a1 BAD Invalid sequence set\r\n"),
    (b"a1 STORE 1 FLAGS (\\Seen\r\n", None),  # type: ignore[list-item]
    (b"a1 COPY 1:2:3 Trash\r\n", b"a1 BAD Invalid sequence set\r\n"),
    (b"a1 COPY 1, Trash\r\n", b"a1 BAD Invalid sequence set\r\n"),
    (b"a1 AUTHENTICATE PLAIN ab!c\r\n", None),  # type: ignore[list-item]
    (b"a1 AUTHENTICATE PLAIN abc\r\n", b"a1 BAD Invalid base64 initial response\r\n"),
    (b"a1 ENABLE\r\n", b"a1 BAD ENABLE needs at least one capability\r\n"),
    (b"a1 SELECT INBOX (BOGUS)\r\n", b"a1 BAD Unknown SELECT parameter BOGUS\r\n"),
    (b"a1 ID foo\r\n", b"a1 BAD Expected a string\r\n"),
    (b'a1 LOGIN "\xff" pw\r\n', b"a1 BAD User name is not valid UTF-8\r\n"),
]


@pytest.mark.parametrize(
    ("data", "reply"), BAD_CASES, ids=[c[0][:40].decode("latin-1") for c in BAD_CASES]
)
def test_malformed_command_gets_tagged_bad(data: bytes, reply: bytes | None) -> None:
    event = parse(data)
    assert isinstance(event, ProtocolError)
    assert event.tag == "a1"
    assert not event.fatal
    assert event.response.startswith(b"a1 BAD ")
    assert event.response.endswith(b"\r\n") and event.response.count(b"\r\n") == 1
    if reply is not None:
        assert event.response == reply


@pytest.mark.parametrize(
    "data",
    [b"NOOP\r\n", b" a1 NOOP\r\n", b"+tag NOOP\r\n", b"(x) NOOP\r\n", b"a1\r\n", b"*\r\n"],
)
def test_missing_tag_gets_untagged_bad(data: bytes) -> None:
    event = parse(data)
    assert isinstance(event, ProtocolError)
    assert event.tag is None
    assert event.response.startswith(b"* BAD ")
