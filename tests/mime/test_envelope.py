"""ENVELOPE (RFC 3501 §7.4.2): raw values, address structures, groups, defaults."""

from __future__ import annotations

from bridge.mime import Address, envelope, parse_address_list, parse_structure

from .messages import NESTED, RFC3501_ENVELOPE_MESSAGE, crlf


def test_rfc3501_example_envelope() -> None:
    gray = (("Terry Gray", None, "gray", "cac.washington.edu"),)
    assert envelope(RFC3501_ENVELOPE_MESSAGE).to_imap() == (
        "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
        "IMAP4rev1 WG mtg summary and minutes",
        gray,
        gray,  # Sender defaults to From
        gray,  # Reply-To defaults to From
        ((None, None, "imap", "cac.washington.edu"),),
        (
            (None, None, "minutes", "CNRI.Reston.VA.US"),
            ("John Klensin", None, "KLENSIN", "MIT.EDU"),
        ),
        None,
        None,
        "<B27397-0100000@cac.washington.edu>",
    )


def test_encoded_words_stay_encoded_and_folding_is_removed() -> None:
    env = envelope(NESTED)
    assert env.subject == "=?ISO-8859-1?Q?caf=E9?= test folded"
    assert env.from_ == (Address("=?UTF-8?B?SsO2cmc=?=", None, "jorg", "example.com"),)
    assert env.in_reply_to == "<a@b> <c@d>"
    assert env.date == "Mon, 7 Feb 1994 21:52:25 -0800 (PST)"


def test_group_syntax() -> None:
    # RFC 3501 §7.4.2: group start (NIL NIL name NIL), group end (NIL NIL NIL NIL)
    assert envelope(NESTED).to_imap()[5] == (
        (None, None, "undisclosed-recipients", None),
        (None, None, None, None),
        (None, None, "Friends", None),
        (None, None, "a", "b.c"),
        ("Bob X", None, "bob", "x.org"),
        (None, None, None, None),
        (None, None, "c", "d.e"),
    )


def test_quoted_names_comments_and_source_routes() -> None:
    assert envelope(NESTED).to_imap()[6] == (
        ('quoted "name"', None, "q", "e.f"),
        (None, None, "plain", "host"),  # a leading comment is not a name (Dovecot)
        (None, "@route1,@route2", "rt", "host"),
    )


def test_missing_headers_are_nil_and_empty_ones_are_empty_strings() -> None:
    env = envelope(crlf("Subject:\nX-Other: 1\n\nbody\n"))
    # RFC 3501 §7.4.2: absent → NIL, present but empty → empty string
    assert env.to_imap() == (None, "") + (None,) * 8


def test_no_header_at_all_gives_all_nil() -> None:
    assert envelope(crlf("No header here at all\nand some more text\n")).to_imap() == (None,) * 10


def test_sender_and_reply_to_default_to_from_only_when_absent_or_empty() -> None:
    env = envelope(crlf("From: a@b.c\nSender:\nReply-To: Grp: ;\nTo: x@y.z\n\nb\n"))
    assert env.sender == env.from_ == (Address(None, None, "a", "b.c"),)
    assert env.reply_to == (Address(None, None, "Grp", None), Address(None, None, None, None))


def test_last_occurrence_wins_like_dovecot() -> None:
    env = envelope(crlf("Subject: first\nSubject: second\n\nb\n"))
    assert env.subject == "second"


def test_odd_addresses_match_dovecot() -> None:
    parsed = parse_address_list(
        '<>, a@, @b, "john smith"@x.y, John Q. Public <jqp@x>, a@b (Name Here), '
        '=?utf-8?q?x?= <a@b>, foo, "", Bare Phrase'
    )
    assert [a.to_imap() for a in parsed] == [
        (None, None, "MISSING_MAILBOX", "MISSING_DOMAIN"),
        (None, None, "a", "MISSING_DOMAIN"),
        (None, None, "MISSING_MAILBOX", "b"),
        (None, None, "john smith", "x.y"),
        ("John Q. Public", None, "jqp", "x"),
        ("Name Here", None, "a", "b"),
        ("=?utf-8?q?x?=", None, "a", "b"),
        (None, None, "foo", "MISSING_DOMAIN"),
        ("", None, "MISSING_MAILBOX", "MISSING_DOMAIN"),
        ("Bare Phrase", None, "MISSING_MAILBOX", "MISSING_DOMAIN"),
    ]


def test_domain_literal_and_unterminated_things_do_not_raise() -> None:
    parsed = parse_address_list('x@[127.0.0.1], "open quote <a@b>, (open comment')
    assert parsed[0].to_imap() == (None, None, "x", "[127.0.0.1]")
    assert parse_address_list("") == ()
    assert parse_address_list(",,;:<>@") is not None


def test_envelope_of_an_encapsulated_message() -> None:
    root = parse_structure(NESTED)
    inner = root.children[2].encapsulated
    assert inner is not None
    inner_from = ((None, None, "inner", "x.y"),)
    assert envelope(NESTED, inner).to_imap() == (
        None, "fwd", inner_from, inner_from, inner_from, None, None, None, None, None,
    )  # fmt: skip


def test_raw_utf8_header_survives_and_invalid_bytes_are_replaced() -> None:
    message = "Subject: Grüße\r\nFrom: Jörg <j@x.de>\r\n\r\n".encode() + b"x"
    env = envelope(message)
    assert env.subject == "Grüße"
    assert env.from_ == (Address("Jörg", None, "j", "x.de"),)
    bad = envelope(b"Subject: caf\xe9\r\n\r\n")
    assert bad.subject == "caf\ufffd"
    assert bad.subject.encode("utf-8")  # every string encodes for the serialiser
