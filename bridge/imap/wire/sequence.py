"""Sequence sets (RFC 3501 §9 ``sequence-set``) and their compact formatting.

Owns: :class:`SequenceSet` and :func:`format_sequence_set`. Imports only the standard
library; it must not import anything from ``bridge``.

Semantics chosen for ``*`` and out-of-range numbers (documented because RFC 3501 and
RFC 9051 leave the caller some latitude):

* ``*`` stands for ``largest`` — the number of messages for message sequence numbers, the
  highest UID in use for UID sets.  RFC 3501 §6.4.8: "a UID range of 559:* always
  includes the UID of the last message in the mailbox, even if 559 is higher than any
  assigned UID value."  ``4:*`` with ``largest == 2`` therefore means ``2:4``.
* In an EMPTY mailbox (``largest == 0``) a range that mentions ``*`` matches nothing
  (RFC 9051 §6.4.8 behaviour: there is no last message to stand for).
* :meth:`SequenceSet.resolve` returns only numbers in ``1..largest``.  That is exactly right
  for UID sets (non-existent UIDs are silently ignored, RFC 3501 §6.4.8) and keeps a set
  such as ``1:4294967295`` from allocating billions of integers.  For MESSAGE SEQUENCE
  numbers RFC 3501 §9 says numbers above the mailbox size are invalid ("a sequence set
  ... is invalid if it includes a message sequence number greater than the number of
  messages"): the caller checks :meth:`SequenceSet.exceeds` and answers BAD.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: RFC 3501 §9: nz-number is a 32-bit unsigned value.
MAX_NUMBER = 4294967295


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """Ranges as written by the client, ``None`` standing for ``*``.

    A single number ``n`` is ``(n, n)``; ``*`` alone is ``(None, None)``; ``4:2`` stays
    ``(4, 2)`` so that ``str()`` gives back what the client wrote.
    """

    ranges: tuple[tuple[int | None, int | None], ...]

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """Parse ``4:2,7,9:*``; raises ``ValueError`` on anything else."""
        if not text:
            raise ValueError("empty sequence set")
        ranges: list[tuple[int | None, int | None]] = []
        for item in text.split(","):
            first, sep, second = item.partition(":")
            a = _parse_seq_number(first)
            b = _parse_seq_number(second) if sep else a
            ranges.append((a, b))
        return cls(tuple(ranges))

    @classmethod
    def of(cls, numbers: Iterable[int]) -> SequenceSet:
        """A compact set holding exactly ``numbers`` (which must be ≥ 1)."""
        return cls(tuple((lo, hi) for lo, hi in _runs(numbers)))

    def __str__(self) -> str:
        parts: list[str] = []
        for a, b in self.ranges:
            sa = "*" if a is None else str(a)
            if a == b:
                parts.append(sa)
            else:
                parts.append(sa + ":" + ("*" if b is None else str(b)))
        return ",".join(parts)

    def iter_ranges(self, largest: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ``(lo, hi)`` ranges clipped to ``1..largest``."""
        spans: list[tuple[int, int]] = []
        for a, b in self.ranges:
            if (a is None or b is None) and largest <= 0:
                continue  # RFC 9051 §6.4.8: '*' in an empty mailbox matches nothing
            x = largest if a is None else a
            y = largest if b is None else b
            lo, hi = (x, y) if x <= y else (y, x)
            hi = min(hi, largest)
            if lo <= hi:
                spans.append((lo, hi))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def resolve(self, largest: int) -> list[int]:
        """Sorted unique numbers in ``1..largest`` that the set names."""
        out: list[int] = []
        for lo, hi in self.iter_ranges(largest):
            out.extend(range(lo, hi + 1))
        return out

    def contains(self, n: int, largest: int) -> bool:
        """True when ``n`` would be in :meth:`resolve` ``(largest)``."""
        if n < 1 or n > largest:
            return False
        for a, b in self.ranges:
            x = largest if a is None else a
            y = largest if b is None else b
            if (x <= n <= y) or (y <= n <= x):
                return True
        return False

    def exceeds(self, largest: int) -> bool:
        """True when an explicit number is above ``largest`` (invalid for seq numbers)."""
        return any(
            (a is not None and a > largest) or (b is not None and b > largest)
            for a, b in self.ranges
        )

    @property
    def has_star(self) -> bool:
        return any(a is None or b is None for a, b in self.ranges)


def _parse_seq_number(text: str) -> int | None:
    if text == "*":
        return None
    # RFC 3501 §9: nz-number = digit-nz *DIGIT (no sign, no leading zero, no spaces)
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit() or text[0] == "0":
        raise ValueError(f"bad sequence number {text!r}")
    value = int(text)
    if value > MAX_NUMBER:
        raise ValueError("sequence number out of range")
    return value


def _runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    ordered = sorted(set(numbers))
    runs: list[tuple[int, int]] = []
    for n in ordered:
        if n < 1:
            raise ValueError("sequence numbers start at 1")
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def format_sequence_set(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` → ``"1:3,7,9:10"`` (COPYUID, APPENDUID, ESEARCH ALL)."""
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in _runs(numbers))
