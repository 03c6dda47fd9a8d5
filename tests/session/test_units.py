"""Unit tests: the state table, SelectedMailbox and LoginThrottle on their own."""

from __future__ import annotations

from bridge.backend.events import FlagsChanged, MailboxReset, MessagesAdded, MessagesExpunged
from bridge.backend.memory import MemoryBackend
from bridge.backend.types import MailboxSnapshot, MessageInfo
from bridge.imap.session import ALLOWED_STATES, LoginThrottle, SelectedMailbox, SessionState
from bridge.imap.session.dispatch import HANDLERS
from bridge.imap.session.state import defers_expunge, is_allowed
from bridge.imap.wire import commands as c
from bridge.imap.wire.sequence import SequenceSet

from .transcript import FakeClock


def test_every_command_has_a_state_rule_and_a_handler() -> None:
    assert set(ALLOWED_STATES) == set(HANDLERS)
    assert is_allowed(c.Login("a", "u", "p"), SessionState.NOT_AUTHENTICATED)
    assert not is_allowed(c.Login("a", "u", "p"), SessionState.AUTHENTICATED)
    assert not is_allowed(c.Noop("a"), SessionState.LOGOUT)
    assert is_allowed(c.Idle("a"), SessionState.AUTHENTICATED)
    assert not is_allowed(c.Check("a"), SessionState.AUTHENTICATED)


def test_expunge_deferral_rule() -> None:
    seq = SequenceSet.parse("1")
    assert defers_expunge(c.Fetch("a", seq, ()))
    assert not defers_expunge(c.Fetch("a", seq, (), uid=True))
    assert defers_expunge(c.Store("a", seq, "+FLAGS", False, frozenset()))
    assert defers_expunge(c.Search("a", None, c.SearchKey("ALL")))
    assert not defers_expunge(c.Noop("a"))


def snapshot(uids: list[int], recent: frozenset[int] = frozenset()) -> MailboxSnapshot:
    return MailboxSnapshot(
        mailbox_id="mb",
        name="INBOX",
        uidvalidity=7,
        uidnext=max(uids, default=0) + 1,
        highestmodseq=10,
        messages=tuple(MessageInfo(uid, frozenset(), 1) for uid in uids),
        permanent_flags=frozenset(),
        allows_new_keywords=True,
        read_only=False,
        recent_uids=recent,
    )


def test_view_resolution() -> None:
    view = SelectedMailbox(snapshot([3, 7, 9, 20]), read_only=False)
    assert [(e.seq, e.uid) for e in view.resolve_uids(SequenceSet.parse("5:*"))] == [
        (2, 7),
        (3, 9),
        (4, 20),
    ]
    assert [e.uid for e in view.resolve_uids(SequenceSet.parse("100:*"))] == [20]
    assert [e.uid for e in view.resolve_seqs(SequenceSet.parse("2,4"))] == [7, 20]
    assert view.seq_of(9) == 3 and view.seq_of(8) is None
    empty = SelectedMailbox(snapshot([]), read_only=False)
    assert empty.resolve_uids(SequenceSet.parse("1:*")) == []


async def test_flush_orders_and_dedupes() -> None:
    backend = MemoryBackend()
    woken: list[bool] = []
    view = SelectedMailbox(snapshot([1, 2, 3]), read_only=True, wake=lambda: woken.append(True))
    view.on_event(FlagsChanged("mb", 7, (MessageInfo(2, frozenset({"\\Seen"}), 11),)))
    view.on_event(MessagesExpunged("mb", 7, (1,)))
    view.on_event(MessagesAdded("mb", 7, (MessageInfo(4, frozenset(), 12),)))
    view.on_event(MessagesAdded("other", 7, (MessageInfo(9, frozenset(), 12),)))
    assert len(woken) == 3
    held = await view.flush(backend, allow_expunge=False)
    assert held == [b"* 4 EXISTS\r\n", b"* 0 RECENT\r\n", b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"]
    assert view.exists == 4 and view.is_expunged(1)
    assert await view.flush(backend, allow_expunge=True) == [b"* 1 EXPUNGE\r\n"]
    assert view.uids == [2, 3, 4]
    # A change the client already knows (its own STORE) is not repeated.
    view.note_flags(MessageInfo(3, frozenset({"\\Flagged"}), 13))
    view.on_event(FlagsChanged("mb", 7, (MessageInfo(3, frozenset({"\\Flagged"}), 13),)))
    assert await view.flush(backend, allow_expunge=True) == []
    # A message added and expunged before the client heard of it never appears.
    view.on_event(MessagesAdded("mb", 7, (MessageInfo(5, frozenset(), 14),)))
    view.on_event(MessagesExpunged("mb", 7, (5,)))
    assert await view.flush(backend, allow_expunge=True) == []


async def test_reset_on_delete_or_uidvalidity_change() -> None:
    view = SelectedMailbox(snapshot([1]), read_only=False)
    view.on_event(MailboxReset("elsewhere"))
    assert not view.reset
    view.on_event(MessagesAdded("mb", 8, (MessageInfo(2, frozenset(), 2),)))
    assert view.reset


def test_throttle_window_and_delays() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(
        clock=clock,
        window=10,
        max_failures_per_peer=3,
        max_failures_per_login=2,
        base_delay=1,
        step_delay=1,
        max_delay=2.5,
    )
    assert not throttle.is_blocked("p", "u")
    assert throttle.record_failure("p", "u") == 1
    assert throttle.record_failure("p", "v") == 2
    assert throttle.record_failure("p", "w") == 2.5  # capped
    assert throttle.is_blocked("p", None)  # the peer is blocked for every login
    assert not throttle.is_blocked("q", "v")
    throttle.record_failure("q", "v")
    assert throttle.is_blocked("q", "V")  # logins compare case-insensitively
    throttle.record_success("q", "v")
    assert not throttle.is_blocked("q", "v")
    clock.now += 11
    assert not throttle.is_blocked("p", "u")


async def test_a_connection_is_told_to_reconnect_after_max_commands() -> None:
    from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
    from bridge.imap.session import ImapSession

    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    backend = MemoryBackend()
    session = ImapSession(MemoryAuthenticator({"u": ("p", backend)}), send=send, max_commands=3)
    await session.feed(b"a1 NOOP\r\na2 NOOP\r\na3 NOOP\r\na4 NOOP\r\na5 NOOP\r\n")
    text = b"".join(sent)
    assert all(f"a{n} OK".encode() in text for n in (1, 2, 3))
    assert b"a4 " not in text and b"a5 " not in text
    assert b"* BYE Too many commands" in text
    assert session.closed
