"""Sequence sets: parsing, resolution rules for '*' and formatting (RFC 3501 §9, §6.4.8)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.imap.wire import SequenceSet, format_sequence_set

S = SequenceSet.parse


@pytest.mark.parametrize(
    ("text", "largest", "numbers"),
    [
        ("1", 5, [1]),
        ("4:2,7,9:*", 10, [2, 3, 4, 7, 9, 10]),
        ("*", 5, [5]),
        ("*:3", 5, [3, 4, 5]),
        ("1:*", 0, []),  # '*' in an empty mailbox matches nothing
        ("*", 0, []),
        ("559:*", 500, [500]),  # RFC 3501 §6.4.8: includes the last UID
        ("600", 500, []),  # non-existent UIDs are ignored
        ("1:4294967295", 3, [1, 2, 3]),  # never expands beyond largest
        ("3,1,2,3", 5, [1, 2, 3]),
    ],
)
def test_resolve(text: str, largest: int, numbers: list[int]) -> None:
    seq = S(text)
    assert seq.resolve(largest) == numbers
    for n in range(0, largest + 3):
        assert seq.contains(n, largest) == (n in numbers)
    assert str(seq) == text


def test_exceeds_and_ranges() -> None:
    assert S("1:7").exceeds(5) and not S("1:*").exceeds(5) and not S("5").exceeds(5)
    assert S("9:7,1,2,3:4").iter_ranges(10) == [(1, 4), (7, 9)]
    assert S("1:*").has_star and not S("1:2").has_star


@pytest.mark.parametrize(
    "text", ["", "0", "1:0", "a", "1,,2", "1:2:3", "-1", "01", "4294967296", " 1"]
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ValueError):
        S(text)


def test_format_sequence_set() -> None:
    assert format_sequence_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert format_sequence_set([5, 3, 4, 4]) == "3:5"
    assert format_sequence_set([]) == ""
    assert str(SequenceSet.of([2, 1, 8])) == "1:2,8"
    with pytest.raises(ValueError):
        format_sequence_set([0])


_endpoint = st.one_of(st.none(), st.integers(1, 4294967295))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_endpoint, _endpoint), min_size=1, max_size=6))
def test_str_parse_round_trip(ranges: list[tuple[int | None, int | None]]) -> None:
    seq = SequenceSet(tuple(ranges))
    assert S(str(seq)) == seq


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(1, 300), max_size=60), st.integers(0, 300))
def test_format_then_resolve(numbers: set[int], largest: int) -> None:
    if not numbers:
        return
    seq = S(format_sequence_set(numbers))
    assert seq.resolve(largest) == sorted(n for n in numbers if n <= largest)
