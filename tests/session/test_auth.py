"""Not-authenticated state: capabilities, LOGIN, AUTHENTICATE, STARTTLS, throttling."""

from __future__ import annotations

import base64

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.imap.session import LoginThrottle, SessionState

from .conftest import deliver
from .transcript import Client, FakeClock

PRE = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE"
PLAIN_OK = base64.b64encode(b"\0user\0secret").decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_greeting_and_capability(client: Client) -> None:
    client.S(f"* OK [CAPABILITY {PRE} AUTH=PLAIN AUTH=LOGIN] graph-mail-bridge ready")
    await client.C("a001 CAPABILITY")
    client.S(f"* CAPABILITY {PRE} AUTH=PLAIN AUTH=LOGIN")
    client.OK("a001")


async def test_login_changes_capabilities(client: Client) -> None:
    client.skip()
    await client.C("a001 LOGIN user secret")
    done = client.OK("a001", "CAPABILITY")
    for cap in (
        "UIDPLUS",
        "MOVE",
        "IDLE",
        "ESEARCH",
        "CONDSTORE",
        "SPECIAL-USE",
        "QUOTA",
        "LIST-STATUS",
        "APPENDLIMIT=",
        "NAMESPACE",
        "UNSELECT",
        "CHILDREN",
    ):
        assert cap in done
    assert "AUTH=PLAIN" not in done
    assert client.session.state is SessionState.AUTHENTICATED


async def test_no_quota_capability_when_backend_has_none() -> None:
    backend = MemoryBackend(quota_limit_kib=None)
    client = Client(MemoryAuthenticator({"user": ("secret", backend)}))
    client.skip()
    await client.C("a001 LOGIN user secret")
    assert "QUOTA" not in client.OK("a001")
    await client.C("a002 GETQUOTAROOT INBOX")
    client.S('* QUOTAROOT "INBOX"')
    client.OK("a002")


async def test_wrong_password_is_delayed_and_coded(client: Client) -> None:
    client.skip()
    await client.C("a001 LOGIN user wrong")
    client.NO("a001", "AUTHENTICATIONFAILED")
    await client.C("a002 LOGIN nobody secret")
    client.NO("a002", "AUTHENTICATIONFAILED")
    assert client.clock.sleeps == [1.0, 1.5]  # grows with the peer's failures
    assert client.session.state is SessionState.NOT_AUTHENTICATED


async def test_throttle_refuses_a_login_after_too_many_failures() -> None:
    backend = MemoryBackend()
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock, max_failures_per_login=3, window=60)
    client = Client(
        MemoryAuthenticator({"user": ("secret", backend)}), clock=clock, throttle=throttle
    )
    client.skip()
    for n in range(3):
        await client.C(f"a{n} LOGIN user wrong")
        client.NO(f"a{n}", "AUTHENTICATIONFAILED")
    # Even the right password is refused while the login is blocked...
    await client.C("b1 LOGIN user secret")
    client.NO("b1", "UNAVAILABLE")
    # ...until the window has passed (the fake clock advanced by every delay).
    clock.now += 120
    await client.C("b2 LOGIN user secret")
    client.OK("b2")


async def test_throttle_is_per_peer_across_connections() -> None:
    backend = MemoryBackend()
    auth = MemoryAuthenticator({"user": ("secret", backend), "other": ("pw", MemoryBackend())})
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock, max_failures_per_peer=2, window=60)
    first = Client(auth, clock=clock, throttle=throttle, peer="192.0.2.1")
    first.skip()
    await first.C("a LOGIN user x")
    await first.C("b LOGIN other y")
    first.skip(2)
    second = Client(auth, clock=clock, throttle=throttle, peer="192.0.2.1")
    second.skip()
    await second.C("c LOGIN other pw")
    second.NO("c", "UNAVAILABLE")
    third = Client(auth, clock=clock, throttle=throttle, peer="192.0.2.2")
    third.skip()
    await third.C("d LOGIN other pw")
    third.OK("d")


async def test_authenticate_plain_with_sasl_ir(client: Client) -> None:
    client.skip()
    await client.C("a001 AUTHENTICATE PLAIN " + PLAIN_OK)
    client.OK("a001", "CAPABILITY")
    assert client.session.login == "user"


async def test_authenticate_plain_with_continuation(client: Client) -> None:
    client.skip()
    await client.C("a001 AUTHENTICATE PLAIN")
    client.S("+ ")
    await client.C(b64(b"user\0user\0secret"))
    client.OK("a001")


async def test_authenticate_plain_wrong_and_cancelled(client: Client) -> None:
    client.skip()
    await client.C("a001 AUTHENTICATE PLAIN " + b64(b"\0user\0nope"))
    client.NO("a001", "AUTHENTICATIONFAILED")
    await client.C("a002 AUTHENTICATE PLAIN")
    client.S("+ ")
    await client.C("*")
    client.BAD("a002")
    await client.C("a003 AUTHENTICATE PLAIN")
    client.S("+ ")
    await client.C("not base64!")
    client.BAD("a003")
    # Proxy authorisation (authzid of another user) is never granted.
    await client.C("a004 AUTHENTICATE PLAIN " + b64(b"admin\0user\0secret"))
    client.NO("a004", "AUTHENTICATIONFAILED")
    await client.C("a005 NOOP")
    client.OK("a005")


async def test_authenticate_login_mechanism(client: Client) -> None:
    client.skip()
    await client.C("a001 AUTHENTICATE LOGIN")
    client.S(f"+ {b64(b'Username:')}")
    await client.C(b64(b"user"))
    client.S(f"+ {b64(b'Password:')}")
    await client.C(b64(b"secret"))
    client.OK("a001")


async def test_unknown_mechanism(client: Client) -> None:
    client.skip()
    await client.C("a001 AUTHENTICATE CRAM-MD5")
    client.NO("a001", "CANNOT")


async def test_logindisabled_without_tls(authenticator: MemoryAuthenticator) -> None:
    client = Client(authenticator, allow_plaintext_auth=False)
    client.S(f"* OK [CAPABILITY {PRE} LOGINDISABLED] graph-mail-bridge ready")
    await client.C("a001 LOGIN user secret")
    client.NO("a001", "PRIVACYREQUIRED")
    await client.C("a002 AUTHENTICATE PLAIN " + PLAIN_OK)
    client.NO("a002", "PRIVACYREQUIRED")


async def test_starttls_upgrades_and_discards_pipelined_plaintext(
    authenticator: MemoryAuthenticator,
) -> None:
    upgrades: list[bool] = []

    async def start_tls() -> None:
        upgrades.append(True)

    client = Client(authenticator, allow_plaintext_auth=False, start_tls=start_tls)
    client.S(f"* OK [CAPABILITY {PRE} STARTTLS LOGINDISABLED] graph-mail-bridge ready")
    await client.C("a001 STARTTLS\r\na002 LOGIN user secret")
    client.OK("a001")
    client.empty()  # a002 was plaintext sent before the handshake: dropped
    assert upgrades == [True]
    await client.C("a003 CAPABILITY")
    client.S(f"* CAPABILITY {PRE} AUTH=PLAIN AUTH=LOGIN")
    client.OK("a003")
    await client.C("a004 STARTTLS")
    client.BAD("a004")


async def test_commands_in_the_wrong_state(client: Client) -> None:
    client.skip()
    await client.C("a001 SELECT INBOX")
    client.BAD("a001")
    await client.C("a002 FETCH 1 FLAGS")
    client.BAD("a002")
    await client.login()
    await client.C("a003 LOGIN user secret")
    client.BAD("a003")
    await client.C("a004 FETCH 1 FLAGS")
    client.BAD("a004")


async def test_a_login_reaches_only_its_own_backend() -> None:
    alice, bob = MemoryBackend(), MemoryBackend()
    await deliver(alice, 2)
    auth = MemoryAuthenticator({"alice": ("a", alice), "bob": ("b", bob)})
    client = Client(auth)
    client.skip()
    await client.C("a LOGIN bob b")
    client.OK("a")
    await client.C("b STATUS INBOX (MESSAGES)")
    client.S('* STATUS "INBOX" (MESSAGES 0)')
    client.OK("b")
    assert client.session.backend is bob


async def test_logout(client: Client) -> None:
    client.skip()
    await client.C("a001 LOGOUT")
    client.S("* BYE Logging out")
    client.OK("a001")
    assert client.session.closed
