"""Command lines as real clients send them (Thunderbird, Apple Mail, Outlook, mbsync,
offlineimap, Evolution, iOS) parse to the expected commands, three ways each."""

from __future__ import annotations

import pytest
from wire_helpers import parse

from bridge.imap.wire import (
    Append,
    Examine,
    Fetch,
    Id,
    List,
    ListReturn,
    Lsub,
    Search,
    Select,
    Status,
    Store,
)

LINES: list[tuple[bytes, type]] = [
    (
        b"5 UID fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date "
        b"Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type "
        b"Reply-To)])\r\n",
        Fetch,
    ),
    (b"7 UID fetch 1:* (FLAGS) (CHANGEDSINCE 0)\r\n", Fetch),
    (b'4 select "INBOX" (CONDSTORE)\r\n', Select),
    (b'2 LIST "" ""\r\n', List),
    (b'3 LSUB "" "*"\r\n', Lsub),
    (b"A10 UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-TUID)])\r\n", Fetch),
    (b"A11 UID FETCH 3,5:7 (UID BODY.PEEK[])\r\n", Fetch),
    (b"A12 UID STORE 3 +FLAGS.SILENT (\\Deleted)\r\n", Store),
    (b'A13 APPEND "INBOX" (\\Seen) "26-Nov-2026 10:00:00 +0000" {3+}\r\nabc\r\n', Append),
    (b"A14 UID SEARCH 1:* NOT DELETED\r\n", Search),
    (b"A15 UID SEARCH SINCE 26-Nov-2026\r\n", Search),
    (b'A16 EXAMINE "Sent Items"\r\n', Examine),
    (b"A17 FETCH 1:* (FLAGS UID INTERNALDATE RFC822.SIZE)\r\n", Fetch),
    (b'A18 STATUS "INBOX" (UIDNEXT MESSAGES UNSEEN)\r\n', Status),
    (
        b'A19 ID ("name" "iPhone Mail" "version" "20A362" "os" "iOS" "os-version" "16.0")\r\n',
        Id,
    ),
    (b'A20 LIST "" "*" RETURN (SPECIAL-USE)\r\n', List),
    (b"A21 UID FETCH 8 (BODY.PEEK[1.MIME] BODY.PEEK[1]<0.4096> BODYSTRUCTURE)\r\n", Fetch),
    (b"A22 UID SEARCH RETURN (ALL) UNDELETED UNSEEN\r\n", Search),
    (b"A23 SEARCH CHARSET UTF-8 OR SUBJECT report FROM {4}\r\nb\xc3\xb6b\r\n", Search),
]


@pytest.mark.parametrize(("data", "kind"), LINES, ids=[d[:30].decode("latin-1") for d, _ in LINES])
def test_real_client_lines(data: bytes, kind: type) -> None:
    event = parse(data)
    assert isinstance(event, kind), event


def test_evolution_delimiter_probe() -> None:
    assert parse(b'2 LIST "" ""\r\n') == List("2", "", ("",))


def test_list_special_use_return() -> None:
    event = parse(b'A20 LIST "" "*" RETURN (SPECIAL-USE)\r\n')
    assert event == List("A20", "", ("*",), frozenset(), ListReturn(frozenset({"SPECIAL-USE"})))
