"""Byte-level header reading and splicing: every byte not edited stays as sent."""

from __future__ import annotations

import pytest

from bridge.smtp.headers import (
    HeaderProblem,
    add_bcc,
    addresses,
    insert_field,
    parse_header_block,
    replace_field,
    valid_message_id,
)

MSG = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>,\r\n"
    b'  "Carol, C" <carol@example.com>\r\n'
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"\r\n"
    b"Body line\r\n"
    b"From: not a header\r\n"
)


def test_fields_spans_and_folding() -> None:
    block = parse_header_block(MSG)
    assert [f.name for f in block.fields] == ["From", "To", "Subject"]
    to = block.first("to")
    assert to is not None
    assert (
        MSG[to.start : to.end]
        == b'To: Bob <bob@example.com>,\r\n  "Carol, C" <carol@example.com>\r\n'
    )
    assert to.value == 'Bob <bob@example.com>,  "Carol, C" <carol@example.com>'
    assert MSG[block.end : block.end + 2] == b"\r\n"
    assert block.eol == b"\r\n"


def test_body_lines_that_look_like_headers_are_not_fields() -> None:
    block = parse_header_block(MSG)
    assert len(block.get_all("From")) == 1


def test_addresses_groups_and_display_names() -> None:
    raw = (
        b'To: friends: a@x.example, "B, b" <b@y.example>;, c@z.example\r\n'
        b"Cc: undisclosed-recipients:;\r\n\r\n"
    )
    block = parse_header_block(raw)
    found = addresses([*block.get_all("To"), *block.get_all("Cc")])
    assert found == ["a@x.example", "b@y.example", "c@z.example"]


def test_utf8_header_addresses() -> None:
    raw = "To: Jörg <jörg@bücher.example>\r\n\r\nx".encode()
    block = parse_header_block(raw)
    assert addresses(block.get_all("To")) == ["jörg@bücher.example"]


def test_address_without_domain_is_a_problem() -> None:
    block = parse_header_block(b"To: bob\r\n\r\n")
    with pytest.raises(HeaderProblem, match="without a domain"):
        addresses(block.get_all("To"))


def test_add_bcc_inserts_a_new_field_and_keeps_every_other_byte() -> None:
    block = parse_header_block(MSG)
    out = add_bcc(MSG, block, ["dave@example.com", "erin@example.com"])
    assert (
        out
        == MSG[: block.end] + b"Bcc: dave@example.com,\r\n erin@example.com\r\n" + MSG[block.end :]
    )
    new = parse_header_block(out)
    assert addresses(new.get_all("Bcc")) == ["dave@example.com", "erin@example.com"]


def test_add_bcc_appends_to_an_existing_bcc() -> None:
    raw = b"From: a@x.example\r\nBcc: old@x.example\r\nSubject: s\r\n\r\nbody"
    out = add_bcc(raw, parse_header_block(raw), ["new@x.example"])
    assert (
        out
        == b"From: a@x.example\r\nBcc: old@x.example,\r\n new@x.example\r\nSubject: s\r\n\r\nbody"
    )
    assert addresses(parse_header_block(out).get_all("Bcc")) == ["old@x.example", "new@x.example"]


def test_add_bcc_fills_an_empty_bcc() -> None:
    raw = b"From: a@x.example\r\nBcc:\r\n\r\nbody"
    out = add_bcc(raw, parse_header_block(raw), ["new@x.example"])
    assert addresses(parse_header_block(out).get_all("Bcc")) == ["new@x.example"]
    assert out.endswith(b"\r\n\r\nbody")


def test_bare_lf_messages_keep_lf() -> None:
    raw = b"From: a@x.example\nTo: b@x.example\n\nbody\n"
    block = parse_header_block(raw)
    assert block.eol == b"\n"
    out = insert_field(raw, block, "Message-ID", "<1@x.example>")
    assert out == b"From: a@x.example\nTo: b@x.example\nMessage-ID: <1@x.example>\n\nbody\n"


def test_header_only_message_without_final_newline() -> None:
    raw = b"From: a@x.example\r\nSubject: s"
    block = parse_header_block(raw)
    assert block.end == len(raw)
    out = insert_field(raw, block, "Message-ID", "<1@x.example>")
    assert out == b"From: a@x.example\r\nSubject: s\r\nMessage-ID: <1@x.example>\r\n"


def test_replace_invalid_message_id() -> None:
    raw = b"Message-ID: garbage\r\nFrom: a@x.example\r\n\r\nb"
    block = parse_header_block(raw)
    field = block.first("Message-ID")
    assert field is not None and not valid_message_id(field.value)
    out = replace_field(raw, field, block.eol, "Message-ID", "<ok@x.example>")
    assert out == b"Message-ID: <ok@x.example>\r\nFrom: a@x.example\r\n\r\nb"
    assert valid_message_id("<ok@x.example>")


def test_eight_bit_body_bytes_untouched() -> None:
    body = bytes(range(128, 256)) + b"\r\n"
    raw = b"From: a@x.example\r\nTo: b@x.example\r\n\r\n" + body
    out = add_bcc(raw, parse_header_block(raw), ["c@x.example"])
    assert out.endswith(b"\r\n\r\n" + body)
