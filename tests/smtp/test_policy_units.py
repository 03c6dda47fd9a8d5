"""Pure parts of submission: reply mapping, AUTH failure limits, the uncertain-send map."""

from __future__ import annotations

from bridge.backend.remote import (
    OutcomeUnknown,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemotePermissionError,
    RemoteRejected,
    RemoteUnavailable,
)
from bridge.smtp.authlimit import AuthFailureLimiter, AuthLimits
from bridge.smtp.replies import Reply, one_line, reply_for_remote_error
from bridge.smtp.uncertain import UncertainSend, UncertainSends


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reply_mapping_temporary_versus_permanent() -> None:
    cases: list[tuple[RemoteError, int, str]] = [
        (RemoteUnavailable("Throttled.", status=429, retry_after=3.0), 451, "4.4.5"),
        (RemoteUnavailable("Graph timed out.", status=504), 451, "4.4.1"),
        (OutcomeUnknown("No answer."), 451, "4.4.2"),
        (RemoteAuthError("AADSTS7000215 secret=abc"), 451, "4.3.0"),
        (RemotePermissionError("Send as denied.", code="ErrorSendAsDenied"), 550, "5.7.1"),
        (RemoteNotFound("No such mailbox."), 550, "5.1.8"),
        (RemoteRejected("Too big.", status=413), 552, "5.3.4"),
        (RemoteRejected("Too big.", code="ErrorMessageSizeExceeded", status=400), 552, "5.3.4"),
        (RemoteRejected("Bad rcpt.", code="ErrorInvalidRecipients", status=400), 550, "5.1.3"),
        (RemoteRejected("Bad MIME.", code="ErrorMimeContentInvalid", status=400), 554, "5.6.0"),
        (RemoteError("Odd."), 451, "4.3.0"),
    ]
    for error, code, enhanced in cases:
        reply = reply_for_remote_error(error)
        assert (reply.code, reply.enhanced) == (code, enhanced), error


def test_auth_error_text_never_reaches_the_client() -> None:
    reply = reply_for_remote_error(RemoteAuthError("AADSTS7000215 secret=abc"))
    assert "AADSTS" not in str(reply) and "secret" not in str(reply)


def test_reply_text_is_one_printable_ascii_line() -> None:
    error = RemoteRejected("line one\r\nline two\x00 ünïcode " + "x" * 1000, status=400)
    text = str(reply_for_remote_error(error))
    assert "\r" not in text and "\n" not in text
    assert text.isascii() and all(0x20 <= ord(c) < 0x7F for c in text)
    assert len(text) <= 510
    assert text.startswith("554 5.6.0 Microsoft 365 refused the message: line one line two? ")
    assert one_line("") == "no reason given"


def test_reply_outcome_words() -> None:
    assert Reply(250, "2.0.0", "ok").outcome == "sent"
    assert Reply(451, "4.4.1", "x").outcome == "deferred"
    assert Reply(550, "5.7.1", "x").outcome == "refused"


def test_limiter_locks_out_per_login_and_per_peer_and_expires() -> None:
    clock = FakeClock()
    limiter = AuthFailureLimiter(
        AuthLimits(max_failures_per_peer=5, max_failures_per_login=3, window_seconds=60),
        clock,
    )
    for _ in range(3):
        assert not limiter.blocked("10.0.0.1", "Alice")
        limiter.record_failure("10.0.0.1", "Alice")
    assert limiter.blocked("10.0.0.2", "alice")  # per login, whatever the address
    assert not limiter.blocked("10.0.0.1", "bob")  # the peer still has budget
    limiter.record_failure("10.0.0.1", "bob")
    limiter.record_failure("10.0.0.1", "carol")
    assert limiter.blocked("10.0.0.1", "dave")  # 5 failures from this peer
    clock.now += 61
    assert not limiter.blocked("10.0.0.1", "alice")


def test_limiter_success_clears_login_not_peer() -> None:
    clock = FakeClock()
    limiter = AuthFailureLimiter(
        AuthLimits(max_failures_per_peer=2, max_failures_per_login=2), clock
    )
    limiter.record_failure("p", "alice")
    limiter.record_failure("p", "alice")
    limiter.record_success("alice")
    assert limiter.blocked("p", "alice")  # the peer's two failures remain
    assert not limiter.blocked("q", "alice")


def test_limiter_memory_is_bounded() -> None:
    limiter = AuthFailureLimiter(AuthLimits(max_keys=10), FakeClock())
    for i in range(100):
        limiter.record_failure(f"peer{i}", f"login{i}")
    assert len(limiter._failures) <= 10


async def test_uncertain_sends_record_persist_expire() -> None:
    clock = FakeClock()
    persisted: list[tuple[UncertainSend, ...]] = []

    async def persist(entries: tuple[UncertainSend, ...]) -> None:
        persisted.append(entries)

    sends = UncertainSends(persist=persist, ttl_seconds=100, clock=clock)
    entry = sends.record("mbx", "<1@x>")
    assert sends.get("mbx", "<1@x>") == entry
    assert sends.get("other", "<1@x>") is None
    assert persisted == []  # nothing written until save()
    await sends.save()
    await sends.save()  # unchanged: not written again
    assert persisted == [(entry,)]
    clock.now += 50
    assert sends.age(entry) == 50
    restored = UncertainSends(persisted[-1], ttl_seconds=100, clock=clock)
    assert restored.get("mbx", "<1@x>") == entry
    clock.now += 51
    assert sends.get("mbx", "<1@x>") is None
    await sends.save()
    assert persisted[-1] == ()
