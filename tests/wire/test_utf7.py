"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_helpers import parse

from bridge.imap.wire import Select, Utf7Error, decode_mailbox, encode_mailbox

VECTORS = [
    ("INBOX", "INBOX"),
    ("", ""),
    ("&", "&-"),
    ("A&B", "A&-B"),
    ("\u65e5\u672c\u8a9e", "&ZeVnLIqe-"),
    # RFC 3501 §5.1.3 example
    ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Caf\u00e9", "Caf&AOk-"),
    ("\U0001f600", "&2D3eAA-"),
    ("tab\there", "tab&AAk-here"),
]


@pytest.mark.parametrize(("text", "wire"), VECTORS)
def test_vectors(text: str, wire: str) -> None:
    assert encode_mailbox(text) == wire
    assert decode_mailbox(wire) == text
    assert decode_mailbox(wire.encode("ascii")) == text


@pytest.mark.parametrize(
    "wire",
    [
        "&ZeVnLIqe",  # unterminated
        "&AGE-",  # encodes "a", which must represent itself
        "&ZeVnLA-&Iqe-",  # adjacent shifted sequences are not canonical
        "&AOl-",  # non-zero padding bits
        "&2D0-",  # unpaired high surrogate
        "&Ze!-",  # not base64
        "&Z-",  # impossible length
        "caf\u00e9",  # 8-bit must be encoded
        "a\x01b",  # control characters must be encoded
    ],
)
def test_strict_decoding(wire: str) -> None:
    with pytest.raises(Utf7Error):
        decode_mailbox(wire)


def test_encode_refuses_lone_surrogate() -> None:
    with pytest.raises(Utf7Error):
        encode_mailbox("\ud800")


def test_decode_refuses_8bit_bytes() -> None:
    with pytest.raises(Utf7Error):
        decode_mailbox(b"caf\xc3\xa9")


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_round_trip(text: str) -> None:
    wire = encode_mailbox(text)
    assert wire.isascii()
    assert decode_mailbox(wire) == text


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20))
def test_select_parses_encoded_names(text: str) -> None:
    wire = encode_mailbox(text).encode("ascii")
    quoted = b'"' + wire.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    event = parse(b"a1 SELECT " + quoted + b"\r\n")
    expected = "INBOX" if text.upper() == "INBOX" else text
    assert event == Select("a1", expected)
