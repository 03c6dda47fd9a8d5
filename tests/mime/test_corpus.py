"""The shared corpus (tests/corpus.py): deterministic, varied, well-formed where meant."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from bridge.mime import PartKind, parse_structure, summarize
from tests.corpus import KINDS, build_corpus, corpus_message


def test_deterministic() -> None:
    assert build_corpus(40, seed=3) == build_corpus(40, seed=3)
    assert build_corpus(40, seed=3) != build_corpus(40, seed=4)
    assert corpus_message("mixed", 8) == corpus_message("mixed", 8)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError):
        corpus_message("nope")


def test_crlf_only_and_sizes() -> None:
    corpus = build_corpus(120, seed=1, large_every=40)
    for message in corpus:
        assert b"\n" not in message.replace(b"\r\n", b"")  # CRLF line endings only
        assert 1_000 <= len(message) <= 210_000
    large = [m for m in corpus if len(m) > 140_000]
    assert len(large) == 3
    assert max(len(line) for m in corpus for line in m.split(b"\r\n")) >= 400


def test_every_kind_appears_in_a_small_corpus() -> None:
    corpus = build_corpus(len(KINDS) - 1)
    forms = {
        "alternative": b"multipart/alternative",
        "related": b"multipart/related",
        "rfc822": b"Content-Type: message/rfc822",
        "rfc2231": b"filename*0*=utf-8''",
        "b-word": b"?B?",
        "q-word": b"?Q?",
        "latin1": b"=?ISO-8859-1?",
        "group": b"Project Team:",
        "8bit": "Привет".encode(),
    }
    joined = b"".join(build_corpus(60))
    for name, needle in forms.items():
        assert needle in joined, name
    assert len(corpus) == len(KINDS) - 1


def test_threads_reference_earlier_messages() -> None:
    corpus = build_corpus(80, seed=2)
    ids: list[bytes] = []
    replies = 0
    for message in corpus:
        header = message.split(b"\r\n\r\n", 1)[0]
        reply = re.search(rb"In-Reply-To: (<[^>]+>)", header)
        if reply:
            replies += 1
            assert reply.group(1) in ids
            assert b"References: " in header
        ids.append(re.search(rb"Message-ID: (<[^>]+>)", header).group(1))  # type: ignore[union-attr]
    assert replies >= 10


@pytest.mark.parametrize("kind", KINDS)
def test_kinds_parse_as_intended(kind: str) -> None:
    message = corpus_message(kind, seed=4)
    root = parse_structure(message)
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    assert parsed["From"] and parsed["Message-ID"] and parsed["Date"]
    summary = summarize(message)
    if kind == "forward":
        assert root.children[1].kind is PartKind.MESSAGE
        assert summary.bodystructure[1][0:2] == ("message", "rfc822")
    if kind in ("mixed", "related", "alternative", "large", "rfc2231"):
        assert root.kind is PartKind.MULTIPART
    if kind == "malformed_no_end":
        assert not message.rstrip().endswith(b"--")
    if kind == "groups":
        assert summary.envelope[5][0][3] is None  # a group start
