"""STARTTLS and implicit TLS with a trustme CA; LOGINDISABLED before STARTTLS."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from collections.abc import AsyncIterator

import pytest

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.imap.server import ImapServer


@pytest.fixture
async def tls_server(
    server_tls: ssl.SSLContext,
) -> AsyncIterator[tuple[ImapServer, ImapServer]]:
    backend = MemoryBackend()
    auth = MemoryAuthenticator({"user": ("secret", backend)})
    starttls = ImapServer(
        auth, host="127.0.0.1", port=0, starttls_context=server_tls, allow_plaintext_auth=False
    )
    implicit = ImapServer(
        auth, host="127.0.0.1", port=0, ssl_context=server_tls, allow_plaintext_auth=False
    )
    await starttls.start()
    await implicit.start()
    try:
        yield starttls, implicit
    finally:
        await starttls.stop(grace=1)
        await implicit.stop(grace=1)


def _starttls(port: int, context: ssl.SSLContext) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    before = imap.capabilities
    imap.starttls(context)
    after = imap.capabilities
    typ, _ = imap.login("user", "secret")
    imap.logout()
    return before, after, typ


def _implicit(port: int, context: ssl.SSLContext) -> tuple[tuple[str, ...], str]:
    imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=10)
    caps = imap.capabilities
    typ, _ = imap.login("user", "secret")
    imap.logout()
    return caps, typ


async def test_starttls_then_login(
    tls_server: tuple[ImapServer, ImapServer], client_tls: ssl.SSLContext
) -> None:
    starttls, _ = tls_server
    before, after, typ = await asyncio.to_thread(_starttls, starttls.port, client_tls)
    assert "STARTTLS" in before and "LOGINDISABLED" in before
    assert "AUTH=PLAIN" not in before
    assert "STARTTLS" not in after and "AUTH=PLAIN" in after
    assert typ == "OK"


async def test_login_refused_before_starttls(tls_server: tuple[ImapServer, ImapServer]) -> None:
    starttls, _ = tls_server
    reader, writer = await asyncio.open_connection("127.0.0.1", starttls.port)
    await reader.readline()
    writer.write(b"a LOGIN user secret\r\n")
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.startswith(b"a NO [PRIVACYREQUIRED]")
    writer.close()


async def test_plaintext_after_starttls_is_discarded(
    tls_server: tuple[ImapServer, ImapServer], client_tls: ssl.SSLContext
) -> None:
    starttls, _ = tls_server
    reader, writer = await asyncio.open_connection("127.0.0.1", starttls.port)
    await reader.readline()
    # The injected command rides in the same packet as STARTTLS (RFC 3207 §6 attack).
    writer.write(b"a STARTTLS\r\nb CAPABILITY\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"a OK")
    await writer.start_tls(client_tls, server_hostname="127.0.0.1")
    writer.write(b"c NOOP\r\n")
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.startswith(b"c OK"), line  # nothing answered the injected "b"
    writer.close()


async def test_implicit_tls(
    tls_server: tuple[ImapServer, ImapServer], client_tls: ssl.SSLContext
) -> None:
    _, implicit = tls_server
    caps, typ = await asyncio.to_thread(_implicit, implicit.port, client_tls)
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps
    assert typ == "OK"
