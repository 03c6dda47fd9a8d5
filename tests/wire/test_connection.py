"""Framing, literals, limits, IDLE and AUTHENTICATE continuations of ServerConnection."""

from __future__ import annotations

import pytest
from wire_helpers import collect, three_ways

from bridge.imap.wire import (
    NEED_DATA,
    Append,
    Authenticate,
    ContinuationLine,
    ContinuationNeeded,
    Done,
    Idle,
    LocalProtocolError,
    Login,
    Logout,
    Noop,
    ProtocolError,
    ServerConnection,
)


def drain(conn: ServerConnection) -> list[object]:
    events: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, ContinuationNeeded):
            break
    return events


def test_pipelined_commands_come_out_in_order() -> None:
    events = three_ways(b"a1 NOOP\r\na2 LOGIN u p\r\n\r\na3 LOGOUT\r\n")
    assert events == [Noop("a1"), Login("a2", "u", "p"), Logout("a3")]


def test_need_data_until_line_complete() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a1 NO")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"OP\r")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\n")
    assert conn.next_event() == Noop("a1")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")  # EOF is harmless
    assert conn.next_event() is NEED_DATA


def test_sync_literal_waits_for_a_decision() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a1 APPEND INBOX {5}\r\n")
    assert conn.next_event() == ContinuationNeeded("a1", 5)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    assert conn.accept_literal() == b"+ Ready for literal data\r\n"
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"hel")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"lo\r\na2 NOOP\r\n")
    assert conn.next_event() == Append("a1", "INBOX", frozenset(), None, b"hello")
    assert conn.next_event() == Noop("a2")


def test_reject_literal_ends_the_command() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a1 APPEND INBOX {5}\r\n")
    assert conn.next_event() == ContinuationNeeded("a1", 5)
    reply = b"a1 NO [OVERQUOTA] Mailbox full\r\n"
    assert conn.reject_literal(reply) == reply
    conn.receive_data(b"a2 NOOP\r\n")
    assert conn.next_event() == Noop("a2")


def test_decision_methods_refuse_when_nothing_is_pending() -> None:
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError):
        conn.accept_literal()
    with pytest.raises(LocalProtocolError):
        conn.reject_literal(b"x")
    conn.receive_data(b"a1 LOGIN {3}\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.enter_idle()
    with pytest.raises(LocalProtocolError):
        conn.expect_continuation_line()


def test_oversized_sync_append_literal_is_refused_without_waiting_for_data() -> None:
    conn = ServerConnection(max_literal=100)
    conn.receive_data(b"a1 APPEND INBOX {101}\r\n")
    event = conn.next_event()
    assert event == ProtocolError("a1", b"a1 NO [TOOBIG] Literal too large\r\n")
    # the client never sent the literal; the next command parses normally
    conn.receive_data(b"a2 APPEND INBOX {100}\r\n")
    assert conn.next_event() == ContinuationNeeded("a2", 100)


def test_non_append_literals_have_a_smaller_budget() -> None:
    events = three_ways(b"a1 LOGIN {11}\r\n", max_command_literal=10, max_literal=1000)
    assert events == [ProtocolError("a1", b"a1 NO [TOOBIG] Literal too large\r\n")]
    # the budget is per command, over all its literals
    events = three_ways(b"a1 LOGIN {6}\r\nabcdef {6}\r\n", max_command_literal=10)
    assert events == [
        ContinuationNeeded("a1", 6),
        ProtocolError("a1", b"a1 NO [TOOBIG] Literal too large\r\n"),
    ]


def test_oversized_literal_plus_is_swallowed_then_refused() -> None:
    # RFC 7888 §4: read the octets of the non-synchronising literal, then reject.
    payload = b"a9 LOGOUT\r\n" * 20  # looks like commands; must not be parsed as such
    data = b"a1 APPEND INBOX {%d+}\r\n" % len(payload) + payload + b"\r\n"
    events = three_ways(data, max_literal=100)
    assert events == [ProtocolError("a1", b"a1 BAD [TOOBIG] Literal too large\r\n")]


def test_doomed_command_swallows_all_its_literal_plus_parts() -> None:
    data = b"a1 LOGIN {50+}\r\n" + b"x" * 50 + b" {4+}\r\nz\r\nz\r\n"
    events = three_ways(data, max_command_literal=10)
    assert events == [ProtocolError("a1", b"a1 BAD [TOOBIG] Literal too large\r\n")]


def test_literal_plus_refused_when_not_advertised_but_stream_stays_in_sync() -> None:
    events = three_ways(b"a1 LOGIN {3+}\r\nbob x\r\n", literal_plus=False)
    assert events == [ProtocolError("a1", b"a1 BAD Non-synchronising literal without LITERAL+\r\n")]


def test_zero_length_literals() -> None:
    assert three_ways(b"a1 LOGIN {0}\r\n {0+}\r\n\r\n") == [
        ContinuationNeeded("a1", 0),
        Login("a1", "", ""),
    ]


def test_literal_may_contain_crlf_braces_and_quotes() -> None:
    body = b'x {5}\r\n"quoted" ) ( \\ \r\n.\r\n'
    data = b"a1 APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n"
    assert three_ways(data) == [Append("a1", "INBOX", frozenset(), None, body)]


def test_nul_outside_literal_is_bad_and_connection_recovers() -> None:
    assert three_ways(b"a1 LOGIN b\x00b pw\r\n") == [
        ProtocolError("a1", b"a1 BAD NUL octet in command\r\n")
    ]


def test_nul_inside_literal_is_bad() -> None:
    # RFC 3501 §9: CHAR8 = %x01-ff
    assert three_ways(b"a1 APPEND INBOX {3+}\r\na\x00b\r\n") == [
        ProtocolError("a1", b"a1 BAD NUL octet in literal\r\n")
    ]


def test_doomed_command_does_not_invite_a_sync_literal() -> None:
    events = three_ways(b"a1 LOGIN \x00 {3}\r\n")
    assert events == [ProtocolError("a1", b"a1 BAD NUL octet in command\r\n")]


def test_untagged_sync_literal_is_refused() -> None:
    events = three_ways(b"+bad LOGIN {3}\r\n")
    assert events == [ProtocolError(None, b"* BAD Missing or invalid tag\r\n")]


@pytest.mark.parametrize("size", [65, 300])
def test_overlong_line_gets_tagged_bad_and_resyncs(size: int) -> None:
    data = b"a1 LOGIN " + b"x" * size + b" pw\r\n"
    events = three_ways(data, max_line=64)
    assert events == [ProtocolError("a1", b"a1 BAD Command line too long\r\n")]


def test_overlong_line_without_tag_is_untagged() -> None:
    events = three_ways(b"(" * 200 + b"\r\n", max_line=64)
    assert events == [ProtocolError(None, b"* BAD Command line too long\r\n")]


def test_overlong_line_ending_in_literal_plus_swallows_the_literal() -> None:
    data = b"a1 SEARCH TEXT " + b"x" * 100 + b" {11+}\r\na2 LOGOUT\r\n\r\n"
    events = three_ways(data, max_line=64)
    assert events == [ProtocolError("a1", b"a1 BAD Command line too long\r\n")]


def test_overlong_line_ending_in_sync_literal_ends_the_command() -> None:
    data = b"a1 SEARCH TEXT " + b"x" * 100 + b" {5}\r\n"
    events = three_ways(data, max_line=64)
    assert events == [ProtocolError("a1", b"a1 BAD Command line too long\r\n")]


def test_endless_line_is_fatal() -> None:
    conn = ServerConnection(max_line=64)
    conn.receive_data(b"a1 NOOP " + b"x" * 64 * 17)
    event = conn.next_event()
    assert isinstance(event, ProtocolError) and event.fatal
    assert event.response.startswith(b"* BYE ")
    conn.receive_data(b"\r\na2 NOOP\r\n")
    assert conn.next_event() is NEED_DATA
    assert conn.state == "closed"


def test_idle_then_done() -> None:
    for chunks in (
        [b"a1 IDLE\r\nDONE\r\na2 NOOP\r\n"],
        [b"a1 IDLE\r\n", b"do", b"ne\r\n", b"a2 NOOP\r\n"],
    ):
        conn = ServerConnection()
        events: list[object] = []
        for chunk in chunks:
            conn.receive_data(chunk)
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(event)
                if isinstance(event, Idle):
                    conn.enter_idle()
        assert events == [Idle("a1"), Done(), Noop("a2")]


def test_anything_but_done_during_idle_is_an_error_tagged_with_idle() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a1 IDLE\r\na2 NOOP\r\na3 NOOP\r\n")
    assert conn.next_event() == Idle("a1")
    conn.enter_idle()
    assert conn.next_event() == ProtocolError("a1", b"a1 BAD Expected DONE to end IDLE\r\n")
    assert conn.next_event() == Noop("a3")


def test_overlong_line_during_idle() -> None:
    conn = ServerConnection(max_line=16)
    conn.receive_data(b"a1 IDLE\r\n")
    assert conn.next_event() == Idle("a1")
    conn.enter_idle()
    conn.receive_data(b"x" * 40)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\na2 NOOP\r\n")
    assert conn.next_event() == ProtocolError("a1", b"a1 BAD Line too long\r\n")
    assert conn.next_event() == Noop("a2")


def test_authenticate_with_continuation_lines() -> None:
    data = b"a1 AUTHENTICATE PLAIN\r\nAHVzZXIAcGFzcw==\r\na2 NOOP\r\n"
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        conn = ServerConnection()
        events: list[object] = []
        for chunk in chunks:
            conn.receive_data(chunk)
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(event)
                if isinstance(event, Authenticate):
                    conn.expect_continuation_line()
        assert events == [
            Authenticate("a1", "PLAIN", None),
            ContinuationLine(b"AHVzZXIAcGFzcw=="),
            Noop("a2"),
        ]
        line = events[1]
        assert isinstance(line, ContinuationLine)
        assert line.decode_base64() == b"\0user\0pass" and not line.cancelled


def test_authenticate_cancel_and_junk() -> None:
    assert ContinuationLine(b"*").cancelled
    with pytest.raises(ValueError):
        ContinuationLine(b"not base64!").decode_base64()
    conn = ServerConnection()
    conn.receive_data(b"a1 AUTHENTICATE PLAIN\r\n*\r\n")
    assert conn.next_event() == Authenticate("a1", "PLAIN", None)
    conn.expect_continuation_line()
    assert conn.next_event() == ContinuationLine(b"*")
    # without expect_continuation_line the line is a command
    conn.receive_data(b"*\r\n")
    event = conn.next_event()
    assert isinstance(event, ProtocolError) and event.response.startswith(b"* BAD")


def test_large_append_arrives_intact_in_pieces() -> None:
    body = bytes(range(1, 256)) * 4096  # ~1 MiB, every non-NUL octet
    conn = ServerConnection()
    conn.receive_data(b"a1 APPEND INBOX {%d}\r\n" % len(body))
    assert conn.next_event() == ContinuationNeeded("a1", len(body))
    conn.accept_literal()
    for i in range(0, len(body), 65536):
        conn.receive_data(body[i : i + 65536])
        if i + 65536 < len(body):
            assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\n")
    event = conn.next_event()
    assert isinstance(event, Append) and event.message == body


def test_many_pipelined_commands_byte_by_byte_stay_linear() -> None:
    data = b"".join(b"t%d NOOP\r\n" % i for i in range(2000))
    events = collect([data[i : i + 1] for i in range(len(data))])
    assert events == [Noop(f"t{i}") for i in range(2000)]
