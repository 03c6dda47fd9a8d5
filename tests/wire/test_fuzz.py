"""Random input never raises, never hangs, and never stops the connection answering."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.imap.wire import (
    NEED_DATA,
    Authenticate,
    ContinuationNeeded,
    Idle,
    Noop,
    ProtocolError,
    ServerConnection,
)

FRAGMENTS = [
    b"a1 ",
    b"UID ",
    b"FETCH ",
    b"SEARCH ",
    b"LOGIN ",
    b"APPEND ",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"{0}\r\n",
    b"(",
    b")",
    b'"',
    b"\\",
    b"[",
    b"]",
    b"<1.2>",
    b"1:*",
    b"BODY.PEEK[HEADER.FIELDS (A)]",
    b"NOT OR ",
    b"\r\n",
    b"\n",
    b"\x00",
    b"\xff",
    b" ",
    b"*",
    b"&ZeVnLIqe-",
    b"DONE\r\n",
    b"a2 IDLE\r\n",
    b"a3 AUTHENTICATE PLAIN\r\n",
]


def _drive(conn: ServerConnection, chunks: list[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        for _ in range(10000):  # bounded: a hang would be a failure, not a stuck test
            event = conn.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
            if isinstance(event, ContinuationNeeded):
                conn.accept_literal()
            elif isinstance(event, Idle):
                conn.enter_idle()
            elif isinstance(event, Authenticate):
                conn.expect_continuation_line()
        else:
            raise AssertionError("next_event never returned NEED_DATA")
    return events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=30),
    st.integers(1, 7),
)
def test_random_input_never_raises_and_connection_recovers(pieces: list[bytes], step: int) -> None:
    data = b"".join(pieces)
    conn = ServerConnection(max_line=80, max_command_literal=40, max_nesting=8)
    events = _drive(conn, [data[i : i + step] for i in range(0, len(data), step)])
    for event in events:
        if isinstance(event, ProtocolError):
            assert event.response.endswith(b"\r\n")
            assert event.response.count(b"\r\n") == 1
    if conn.state == "closed":
        return
    # Whatever state the junk left behind, a complete recovery sequence gets through:
    # the rest of a literal in progress (an over-limit {n+} literal is swallowed whole,
    # RFC 7888 §4, so that can be long), any accepted literal (at most 40 bytes), any
    # line, then a NOOP.
    pending = b"x" * conn.literal_remaining
    recovery = pending + b"\r\n" * 2 + b"x" * 45 + b"\r\n" * 2 + b"r1 NOOP\r\n"
    tail = _drive(conn, [recovery])
    assert Noop("r1") in tail or conn.state == "closed"


def test_an_oversized_non_synchronizing_literal_is_swallowed_then_commands_resume() -> None:
    # RFC 7888 §4: the client sends a {n+} literal without waiting, so the server must read
    # all n octets (however many) before the next command starts.
    conn = ServerConnection(max_line=80, max_command_literal=40, max_nesting=8)
    events = _drive(conn, [b"a1 LOGIN {500+}\r\n" + b"a9 NOOP\r\n" * 10])
    assert conn.literal_remaining == 500 - 90
    assert not any(isinstance(e, Noop) for e in events)  # literal bytes are not commands
    tail = _drive(conn, [b"y" * 410 + b" x\r\nr1 NOOP\r\n"])
    assert any(isinstance(e, ProtocolError) and e.tag == "a1" for e in tail)
    assert Noop("r1") in tail
