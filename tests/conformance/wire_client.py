"""Two interchangeable transcript drivers for ``scenarios.py``.

``SocketTranscript`` speaks to a real listening IMAP server over loopback;
``SessionTranscript`` feeds an ``ImapSession`` directly (through the session tests'
``Client``). Both return whole responses, a literal included in the response it belongs
to (``* 1 FETCH (BODY[] {5}\\r\\nHello)``), with CRLFs inside literals kept and the
final CRLF removed.
"""

from __future__ import annotations

import asyncio
import re
from typing import Protocol

from tests.session.transcript import Client

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
#: Upper bound on any single wait for the server: a hung server fails the test.
TIMEOUT = 30.0


class Transcript(Protocol):
    async def send(self, line: str) -> None: ...

    async def response(self) -> str: ...

    async def close(self) -> None: ...


async def command(t: Transcript, line: str) -> tuple[list[str], str]:
    """Send ``line`` (``"a1 NOOP"``); return the untagged responses and the tagged one."""
    tag = line.split(" ", 1)[0]
    await t.send(line)
    untagged: list[str] = []
    while True:
        got = await t.response()
        if got.startswith(tag + " "):
            return untagged, got
        untagged.append(got)


class SocketTranscript:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, port: int) -> SocketTranscript:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(reader, writer)

    async def send(self, line: str) -> None:
        self._writer.write(line.encode() + b"\r\n")
        await self._writer.drain()

    async def response(self) -> str:
        out = bytearray()
        while True:
            line = await asyncio.wait_for(self._reader.readuntil(b"\r\n"), TIMEOUT)
            match = _LITERAL.search(line)
            if match is None:
                out += line[:-2]
                return out.decode("utf-8", "replace")
            out += line
            out += await asyncio.wait_for(self._reader.readexactly(int(match.group(1))), TIMEOUT)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except ConnectionError:
            pass


class SessionTranscript:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def send(self, line: str) -> None:
        await self.client.C(line)

    async def response(self) -> str:
        # Output of a background task (the IDLE writer) may need a few loop turns.
        for _ in range(1000):
            if b"\r\n" in self.client.buffer:
                return self.client.next_response()
            await asyncio.sleep(0)
        raise AssertionError("the session sent nothing")

    async def close(self) -> None:
        if not self.client.session.closed:
            await self.client.session.close()
