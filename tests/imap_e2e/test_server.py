"""ImapServer behaviour of its own: limits, timeouts, shutdown, greeting."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.imap.server import ImapServer

from .conftest import Running


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    greeting = await asyncio.wait_for(reader.readline(), 5)
    return reader, writer, greeting


async def test_greeting_and_stop_says_bye(running: Running) -> None:
    reader, writer, greeting = await _connect(running.port)
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    assert greeting.endswith(b"graph-mail-bridge ready\r\n")
    writer.write(b"a LOGIN user secret\r\nb SELECT INBOX\r\n")
    while not (await reader.readline()).startswith(b"b OK"):
        pass
    writer.write(b"c IDLE\r\n")
    assert (await reader.readline()).startswith(b"+ ")
    assert running.server.connection_count == 1
    await running.server.stop(grace=2)
    assert await asyncio.wait_for(reader.readline(), 5) == b"* BYE Server shutting down\r\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert running.server.connection_count == 0
    writer.close()


async def test_per_address_limit() -> None:
    server = ImapServer(MemoryAuthenticator({}), host="127.0.0.1", port=0, max_per_address=2)
    await server.start()
    try:
        first = await _connect(server.port)
        second = await _connect(server.port)
        _, third_writer, refused = await _connect(server.port)
        assert refused == b"* BYE Too many connections\r\n"
        assert first[2].startswith(b"* OK") and second[2].startswith(b"* OK")
        for _, writer, _ in (first, second):
            writer.close()
        third_writer.close()
    finally:
        await server.stop(grace=1)


async def test_unauthenticated_timeout() -> None:
    server = ImapServer(MemoryAuthenticator({}), host="127.0.0.1", port=0, idle_timeout_unauth=0.2)
    await server.start()
    try:
        reader, writer, _ = await _connect(server.port)
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line == b"* BYE Autologout; idle for too long\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await server.stop(grace=1)


async def test_logout_closes_the_connection(running: Running) -> None:
    reader, writer, _ = await _connect(running.port)
    writer.write(b"a LOGOUT\r\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"* BYE Logging out\r\n"
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"a OK")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_plaintext_default_depends_on_peer() -> None:
    backend = MemoryBackend()
    server = ImapServer(
        MemoryAuthenticator({"user": ("secret", backend)}), host="127.0.0.1", port=0
    )
    await server.start()
    try:
        _, writer, greeting = await _connect(server.port)
        assert b"AUTH=PLAIN" in greeting  # loopback peers may log in without TLS
        writer.close()
    finally:
        await server.stop(grace=1)


async def test_a_client_that_stops_reading_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    # The read timeouts cannot fire while a FETCH waits for the client to take its
    # output; the write timeout ends a connection whose client took nothing, quietly
    # (no SERVERBUG traceback: the transport failed, not the command).
    backend = MemoryBackend()
    big = b"Subject: big\r\n\r\n" + b"x" * (8 * 1024 * 1024) + b"\r\n"
    for _ in range(3):
        await backend.append("INBOX", big, frozenset(), None)
    server = ImapServer(
        MemoryAuthenticator({"user": ("secret", backend)}),
        host="127.0.0.1",
        port=0,
        write_timeout=0.3,
    )
    await server.start()
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        await asyncio.wait_for(reader.readline(), 5)
        writer.write(b"a LOGIN user secret\r\nb SELECT INBOX\r\n")
        while not (await asyncio.wait_for(reader.readline(), 5)).startswith(b"b OK"):
            pass
        writer.write(b"c FETCH 1:3 BODY.PEEK[]\r\n")  # and never read the answer
        await writer.drain()
        for _ in range(200):
            if server.connection_count == 0:
                break
            await asyncio.sleep(0.05)
        assert server.connection_count == 0
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
        writer.close()
    finally:
        await server.stop(grace=1)
