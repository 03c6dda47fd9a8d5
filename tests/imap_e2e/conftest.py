"""Fixtures for end-to-end IMAP tests: a real ``ImapServer`` on 127.0.0.1, port 0,
backed by a ``MemoryBackend`` (user ``user``, password ``secret``), and a trustme CA for
the TLS tests. Blocking clients (imaplib) run in a thread so the server keeps running in
the test's event loop.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trustme

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.imap.server import ImapServer
from bridge.imap.session import LoginThrottle


@dataclass
class Running:
    server: ImapServer
    backend: MemoryBackend

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
async def running(backend: MemoryBackend) -> AsyncIterator[Running]:
    server = ImapServer(
        MemoryAuthenticator({"user": ("secret", backend)}),
        host="127.0.0.1",
        port=0,
        # No failed-login delay here: session tests cover it with a fake clock.
        throttle=LoginThrottle(base_delay=0.0, step_delay=0.0),
    )
    await server.start()
    try:
        yield Running(server, backend)
    finally:
        await server.stop(grace=2)
