"""Readable transcript tests for ``ImapSession`` (in the style of ProtonMail gluon).

``C("a001 SELECT INBOX")`` sends a client line; ``S("* 3 EXISTS")`` expects the next
server response exactly; ``OK("a001")``/``NO``/``BAD`` expect a tagged completion.
Responses are split on CRLF except inside literals, so a FETCH with ``BODY[] {n}``
compares as one response including its literal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.backend.memory import MemoryAuthenticator
from bridge.imap.session import ImapSession, LoginThrottle

_LITERAL = re.compile(rb"\{(\d+)\}$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # The delay a failed login imposes is recorded and "passes" instantly.
        self.sleeps.append(seconds)
        self.now += seconds


class Client:
    """One connection's transcript."""

    def __init__(
        self,
        authenticator: MemoryAuthenticator,
        *,
        clock: FakeClock | None = None,
        throttle: LoginThrottle | None = None,
        peer: str = "127.0.0.1",
        **options: object,
    ) -> None:
        self.clock = clock or FakeClock()
        self.buffer = bytearray()
        self.tls_upgrades = 0
        self.session = ImapSession(
            authenticator,
            send=self._send,
            peer=peer,
            throttle=throttle or LoginThrottle(clock=self.clock),
            sleep=self.clock.sleep,
            **options,  # type: ignore[arg-type]
        )
        self.buffer += self.session.greeting()

    async def _send(self, data: bytes) -> None:
        self.buffer += data

    async def C(self, line: str | bytes, *, crlf: bool = True) -> None:
        data = line.encode() if isinstance(line, str) else line
        await self.session.feed(data + (b"\r\n" if crlf else b""))

    def next_response(self) -> str:
        buf = self.buffer
        out = bytearray()
        pos = 0
        while True:
            end = buf.find(b"\r\n", pos)
            assert end >= 0, f"no complete response in {bytes(buf)!r}"
            line = buf[pos:end]
            match = _LITERAL.search(line)
            if match is None:
                out += line
                pos = end + 2
                break
            size = int(match.group(1))
            out += buf[pos : end + 2 + size]
            pos = end + 2 + size
        del buf[:pos]
        return out.decode("utf-8", "replace")

    def S(self, *expected: str) -> None:
        for want in expected:
            got = self.next_response()
            assert got == want, f"expected {want!r}, got {got!r}"

    def responses_until(self, tag: str) -> tuple[list[str], str]:
        """Untagged responses up to the tagged one for ``tag``; returns both."""
        untagged: list[str] = []
        while True:
            got = self.next_response()
            if got.startswith(tag + " "):
                return untagged, got
            untagged.append(got)

    def _tagged(self, tag: str, status: str, code: str | None) -> str:
        got = self.next_response()
        prefix = f"{tag} {status} " + (f"[{code}" if code else "")
        assert got.startswith(prefix), f"expected {prefix!r}..., got {got!r}"
        return got

    def OK(self, tag: str, code: str | None = None) -> str:
        return self._tagged(tag, "OK", code)

    def NO(self, tag: str, code: str | None = None) -> str:
        return self._tagged(tag, "NO", code)

    def BAD(self, tag: str) -> str:
        return self._tagged(tag, "BAD", None)

    def skip(self, count: int = 1) -> list[str]:
        return [self.next_response() for _ in range(count)]

    def empty(self) -> None:
        assert not self.buffer, f"unexpected output {bytes(self.buffer)!r}"

    async def login(self, user: str = "user", password: str = "secret") -> None:
        await self.C(f"L1 LOGIN {user} {password}")
        self.OK("L1")

    async def select(self, mailbox: str = "INBOX", tag: str = "S1") -> list[str]:
        await self.C(f"{tag} SELECT {mailbox}")
        untagged, done = self.responses_until(tag)
        assert f"{tag} OK" in done, done
        return untagged


def message(
    n: int = 1,
    *,
    subject: str | None = None,
    body: str = "Hello.",
    extra_headers: Iterable[str] = (),
) -> bytes:
    subject = subject if subject is not None else f"Message {n}"
    headers = "".join(h + "\r\n" for h in extra_headers)
    return (
        "From: Alice <alice@example.test>\r\n"
        "To: Bob <bob@example.test>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Mon, 2 Nov 2026 10:0{n % 10}:00 +0000\r\n"
        f"Message-ID: <m{n}@example.test>\r\n"
        f"{headers}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()
