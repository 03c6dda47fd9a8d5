"""Decoded text for SEARCH, RFC 2047/2231 decoding, Date/Message-ID/addresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bridge.mime import (
    addresses,
    contains_ci,
    decode_transfer,
    decode_words,
    header_values,
    message_id,
    searchable_text,
    sent_date,
)
from bridge.mime.text import decode_rfc2231
from tests.corpus import corpus_message

from .messages import NESTED, crlf


def test_rfc2047_b_and_q_in_two_charsets() -> None:
    assert decode_words("=?ISO-8859-1?Q?caf=E9?= test") == "café test"
    assert decode_words("=?UTF-8?B?SsO2cmc=?= <j@x>") == "Jörg <j@x>"
    assert decode_words("=?utf-8?q?a_b?=") == "a b"


def test_rfc2047_whitespace_between_adjacent_words_is_dropped() -> None:
    # RFC 2047 §8 examples
    assert decode_words("(=?ISO-8859-1?Q?a?= b)") == "(a b)"
    assert decode_words("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)") == "(ab)"
    assert decode_words("(=?ISO-8859-1?Q?a?=\t  =?ISO-8859-1?Q?b?=)") == "(ab)"


def test_rfc2047_multibyte_character_split_across_words() -> None:
    assert decode_words("=?UTF-8?B?w6k=?= =?UTF-8?Q?=C3?= =?UTF-8?Q?=A9?=") == "éé"


def test_rfc2047_broken_words_never_raise() -> None:
    assert decode_words("=?x-unknown?B?!!!?=") == ""
    assert decode_words("=?utf-8?B?w6?=") is not None
    assert decode_words("=?utf-8*en?Q?hi?=") == "hi"  # RFC 2231 §5 language tag


def test_rfc2231_decoding() -> None:
    assert decode_rfc2231("filename*", "utf-8''%E2%82%ACrest.pdf") == ("filename", "€rest.pdf")
    assert decode_rfc2231("title*", "iso-8859-1'en'%A3 rates") == ("title", "£ rates")
    assert decode_rfc2231("name", "=?utf-8?q?R=C3=A9sum=C3=A9?=") == ("name", "Résumé")


def test_header_values_decode_and_unfold() -> None:
    assert header_values(NESTED, "subject") == ["café test folded"]
    assert header_values(NESTED, "From") == ["Jörg <jorg@example.com>"]
    assert header_values(NESTED, "X-None") == []
    message = crlf("X: one\nx: two\n\n")
    assert header_values(message, "X") == ["one", "two"]


def test_header_values_decode_rfc2231_parameters() -> None:
    message = corpus_message("rfc2231", seed=3)
    # the attachment's headers are not top-level; build a message whose header has one
    disposition = crlf(
        "Content-Disposition: attachment;\n"
        " filename*0*=utf-8''R%C3%A9sum;\n filename*1*=%C3%A9.pdf\n\n"
    )
    assert header_values(disposition, "content-disposition") == [
        'attachment; filename="Résumé.pdf"'
    ]
    assert header_values(message, "Content-Type")[0].startswith("multipart/mixed; boundary=")


def test_searchable_text_decodes_transfer_encoding_charset_and_html() -> None:
    message = crlf(
        "Content-Type: multipart/alternative; boundary=b\n\n--b\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\ncaf=E9 cr=E8me\n--b\nContent-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\nPHA+aGVsbG8gPGI+d29ybGQ8L2I+ICZhbXA7IG1vcmU8L3A+\n"
        "--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\naGlkZGVu\n--b--\n"
    )
    text = searchable_text(message)
    assert "café crème" in text
    assert "hello world & more" in " ".join(text.split())
    assert "hidden" not in text  # not a text part


def test_searchable_text_includes_forwarded_messages_and_8bit() -> None:
    assert "implicit text" in searchable_text(NESTED)
    assert "Привет" in searchable_text(corpus_message("utf8_8bit", seed=2))
    assert "München" in searchable_text(corpus_message("encoded_headers", seed=2))


def test_decode_transfer_is_lenient() -> None:
    assert decode_transfer(b"aGVsbG8", "BASE64") == b"hello"  # missing padding
    assert decode_transfer(b"aGVs\r\nbG8=\r\n", "base64") == b"hello"
    assert decode_transfer(b"a=\r\nb=3D", "quoted-printable") == b"ab="
    assert decode_transfer(b"x", "x-uuencode") == b"x"
    assert decode_transfer(b"!!!!a", "base64") == b""


def test_contains_ci_casefolds() -> None:
    assert contains_ci("Hello WORLD", "o wor")
    assert contains_ci("Straße", "STRASSE")
    assert not contains_ci("Hello", "help")


def test_sent_date_lenient() -> None:
    assert sent_date(NESTED) == datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=timezone(-timedelta(hours=8))
    )
    assert sent_date(crlf("Date: 7 Feb 94 21:52 -0000\n\n")) == datetime(
        1994, 2, 7, 21, 52, tzinfo=UTC
    )
    assert sent_date(crlf("Date: not a date\n\n")) is None
    assert sent_date(crlf("Subject: none\n\n")) is None


def test_message_id_and_addresses() -> None:
    assert message_id(NESTED) == "<1234@local.machine.example>"
    assert message_id(crlf("Message-ID:  junk <a@b> more\n\n")) == "<a@b>"
    assert message_id(crlf("Subject: x\n\n")) is None
    assert addresses(NESTED, "To") == ["a@b.c", "bob@x.org", "c@d.e"]
    assert addresses(NESTED, "cc") == ["q@e.f", "plain@host", "rt@host"]
    assert addresses(crlf("To: foo, <>\n\n"), "To") == []
