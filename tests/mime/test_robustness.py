"""Nothing in bridge.mime raises, whatever the bytes (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.mime import (
    PartKind,
    extract_section,
    find_part,
    header_values,
    parse_structure,
    searchable_text,
    summarize,
)
from bridge.mime.structure import MessagePart
from tests.corpus import KINDS, corpus_message

SEEDS = [corpus_message(kind, seed=5) for kind in KINDS if kind != "large"]

# Bytes that make MIME parsers interesting, so random input hits the tricky paths.
_ALPHABET = st.sampled_from(
    [
        b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b"=", b'"', b"(", b")", b"<", b">",
        b"@", b",", b"--", b"--b", b"--b--", b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: message/rfc822", b"Content-Type: multipart/digest; boundary=b",
        b"Content-Transfer-Encoding: base64", b"Content-Disposition: attachment; filename*0*=",
        b"From: ", b"To: g: a@b;", b"Subject: =?utf-8?B?", b"?=", b"\xff", b"\x00", b"x",
    ]
)  # fmt: skip
mime_bytes = st.lists(_ALPHABET, max_size=80).map(b"".join)


def _check(message: bytes) -> None:
    summary = summarize(message)
    assert summary.size == len(message)
    root = parse_structure(message)
    header = extract_section(message, (), "HEADER", structure=root)
    assert header + extract_section(message, (), "TEXT", structure=root) == message
    for path in ((1,), (1, 1), (2,), (2, 1), (1, 2, 3)):
        for text in (None, "MIME", "HEADER", "TEXT", "HEADER.FIELDS"):
            extract_section(message, path, text, ("From", "Subject"), structure=root)
    header_values(message, "Subject")
    searchable_text(message, root)
    _check_offsets(root, len(message))
    assert type(summary).from_json(summary.to_json()) == summary


def _check_offsets(part: MessagePart, size: int) -> None:
    assert 0 <= part.start <= part.body_start <= part.end <= size
    for child in part.children:
        assert part.body_start <= child.start and child.end <= part.end
        _check_offsets(child, size)
    if part.kind is PartKind.MULTIPART:
        assert part.children  # RFC 3501 body-type-mpart needs at least one part
        assert find_part(part, (1,)) is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(message: bytes) -> None:
    _check(message)


@settings(max_examples=300, deadline=None)
@given(mime_bytes)
def test_mime_shaped_bytes_never_raise(message: bytes) -> None:
    _check(message)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(0, 40), mime_bytes),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_corpus_messages_never_raise(
    seed_message: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    message = bytearray(seed_message)
    for position, delete, insert in edits:
        at = position % (len(message) + 1)
        message[at : at + delete] = insert
    _check(bytes(message))


def test_bare_lf_variants_of_the_corpus() -> None:
    for message in SEEDS:
        lf = message.replace(b"\r\n", b"\n")
        summary = summarize(lf)
        crlf_summary = summarize(message)
        # same structure, only sizes differ
        assert _shape(summary.bodystructure) == _shape(crlf_summary.bodystructure)
        _check(lf)


def _shape(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(_shape(v) for v in value)
    return None if isinstance(value, int) else value
