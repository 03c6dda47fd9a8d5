"""MessageSummary: contents, JSON/pickle round trips, speed."""

from __future__ import annotations

import pickle
import time

import pytest

from bridge.mime import MessageSummary, body_structures, envelope, extract_section, summarize
from tests.corpus import build_corpus, corpus_message

from .messages import NESTED


def test_summary_fields() -> None:
    summary = summarize(NESTED)
    basic, ext = body_structures(NESTED)
    assert summary.envelope == envelope(NESTED).to_imap()
    assert (summary.body, summary.bodystructure) == (basic, ext)
    assert summary.size == len(NESTED)  # RFC822.SIZE is the length of BODY[]
    assert summary.header_size == len(extract_section(NESTED, (), "HEADER"))
    assert summary.body_size == len(extract_section(NESTED, (), "TEXT"))
    assert summary.lines == NESTED.count(b"\n")
    assert summary.message_id == "<1234@local.machine.example>"
    assert summary.sent_date == "1994-02-07T21:52:25-08:00"


@pytest.mark.parametrize("message", [NESTED, *build_corpus(30, seed=3)])
def test_json_round_trip_is_exact(message: bytes) -> None:
    summary = summarize(message)
    text = summary.to_json()
    assert isinstance(text, str)
    assert MessageSummary.from_json(text) == summary


def test_pickle_round_trip() -> None:
    summary = summarize(corpus_message("forward", seed=5))
    assert pickle.loads(pickle.dumps(summary)) == summary


def test_from_json_rejects_other_versions() -> None:
    with pytest.raises(ValueError):
        MessageSummary.from_json('{"v": 999}')


def test_summary_of_a_50kb_multipart_is_fast() -> None:
    # the brief: "< 1 ms-ish"; the bound here is loose so a busy CI box stays green
    message = next(
        m for m in build_corpus(400, seed=9) if 45_000 < len(m) < 80_000 and b"multipart" in m
    )
    summarize(message)
    rounds = 50
    start = time.perf_counter()
    for _ in range(rounds):
        summarize(message)
    per_message = (time.perf_counter() - start) / rounds
    assert per_message < 0.005, f"{per_message * 1000:.2f} ms for {len(message)} bytes"
