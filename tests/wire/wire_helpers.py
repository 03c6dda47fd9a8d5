"""Drive a ServerConnection the h11 way: whole input, byte by byte, and with trailing data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge.imap.wire import (
    NEED_DATA,
    ContinuationNeeded,
    Noop,
    ServerConnection,
)

TRAILER = b"zz9 NOOP\r\n"


def collect(chunks: Iterable[bytes], **kwargs: Any) -> list[object]:
    """Feed ``chunks`` one by one, accepting every synchronising literal."""
    conn = ServerConnection(**kwargs)
    events: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, ContinuationNeeded):
                assert conn.accept_literal() == b"+ Ready for literal data\r\n"
            events.append(event)
    return events


def three_ways(data: bytes, **kwargs: Any) -> list[object]:
    """Events for ``data``; asserts all three feeding strategies agree."""
    whole = collect([data], **kwargs)
    bytewise = collect([data[i : i + 1] for i in range(len(data))], **kwargs)
    trailing = collect([data + TRAILER], **kwargs)
    assert bytewise == whole
    assert trailing[:-1] == whole
    assert trailing[-1] == Noop("zz9")
    return whole


def parse(data: bytes, **kwargs: Any) -> object:
    """The single command (or error) ``data`` produces, skipping ContinuationNeeded."""
    events = [e for e in three_ways(data, **kwargs) if not isinstance(e, ContinuationNeeded)]
    assert len(events) == 1, events
    return events[0]
