"""New mail reaches an IDLE client: by webhook (fast) and by polling (the safety net)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Listeners, run_daemon
from bridge.store import Store
from bridge.store import accounts as acct
from tests.e2e.conftest import PASSWORD, bridge_config, seed_accounts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mime(subject: str, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.net"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("pushed\n")
    return msg.as_bytes()


async def _start(
    tenant: Any, tmp_path: Path, **sync: Any
) -> tuple[Listeners, asyncio.Event, asyncio.Task[int]]:
    http_port = _free_port()
    config = bridge_config(tmp_path / "state", **sync)
    config = dataclasses.replace(config, http=dataclasses.replace(config.http, port=http_port))
    if "webhook_public_url" in sync:
        config = dataclasses.replace(
            config,
            sync=dataclasses.replace(
                config.sync, webhook_public_url=f"http://127.0.0.1:{http_port}"
            ),
        )
    store = await Store.open(config.state_dir / "bridge.db")
    try:
        await seed_accounts(store, tenant)
    finally:
        await store.close()
    ready: asyncio.Future[Listeners] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_daemon(config, stop=stop, on_ready=ready.set_result))
    await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    return ready.result(), stop, task


class IdleClient:
    """A minimal IMAP client that logs in, selects INBOX and sits in IDLE."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> IdleClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await reader.readline()
        await client.command(f'a1 LOGIN alice "{PASSWORD}"', b"a1 ")
        await client.command("a2 SELECT INBOX", b"a2 ")
        writer.write(b"a3 IDLE\r\n")
        await writer.drain()
        line = await reader.readline()
        assert line.startswith(b"+"), line
        return client

    async def command(self, text: str, tag: bytes) -> list[bytes]:
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 30)
            lines.append(line)
            if line.startswith(tag):
                assert b" OK" in line, lines
                return lines

    async def wait_exists(self, timeout: float) -> float:
        start = time.monotonic()
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if line.endswith(b"EXISTS\r\n"):
                return time.monotonic() - start

    async def close(self) -> None:
        self.writer.write(b"DONE\r\na4 LOGOUT\r\n")
        await self.writer.drain()
        self.writer.close()


@pytest.fixture
async def stopper() -> AsyncIterator[list[tuple[asyncio.Event, asyncio.Task[int]]]]:
    started: list[tuple[asyncio.Event, asyncio.Task[int]]] = []
    yield started
    for stop, task in started:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest.mark.timeout(120)
async def test_webhook_wakes_idle_client_before_any_poll(
    tenant: Any, tmp_path: Path, stopper: list[Any]
) -> None:
    # Polls are 10 minutes apart here: only the webhook can deliver within seconds.
    listeners, stop, task = await _start(
        tenant,
        tmp_path,
        webhook_public_url="set below",
        poll_interval=600.0,
        background_poll_interval=600.0,
    )
    stopper.append((stop, task))
    push = listeners.bridge.push  # type: ignore[union-attr]
    assert listeners.bridge is not None and listeners.store is not None
    alice = await listeners.store.read(lambda db: acct.get_account_by_login(db, "alice"))
    runtime = await listeners.bridge.runtime(alice)
    await runtime.engine.sync_now()
    deadline = time.monotonic() + 30
    while not push.webhooks_healthy("alice"):
        assert time.monotonic() < deadline, "the subscription for alice was not created"
        await asyncio.sleep(0.1)
    client = await IdleClient.connect(listeners.imap.port)
    try:
        await asyncio.to_thread(
            tenant.sim.deliver, tenant.alice.id, _mime("by webhook", tenant.alice.mail)
        )
        elapsed = await client.wait_exists(timeout=20)
    finally:
        await client.close()
    assert elapsed < 20
    assert push.notifications_accepted >= 1


@pytest.mark.timeout(120)
async def test_polling_alone_wakes_idle_client(
    tenant: Any, tmp_path: Path, stopper: list[Any]
) -> None:
    listeners, stop, task = await _start(tenant, tmp_path, poll_interval=1.0)
    stopper.append((stop, task))
    assert listeners.bridge.push is None  # type: ignore[union-attr]
    client = await IdleClient.connect(listeners.imap.port)
    try:
        await asyncio.to_thread(
            tenant.sim.deliver, tenant.alice.id, _mime("by polling", tenant.alice.mail)
        )
        elapsed = await client.wait_exists(timeout=30)
    finally:
        await client.close()
    assert elapsed < 30


@pytest.mark.timeout(120)
async def test_healthy_webhooks_slow_polling_down(
    tenant: Any, tmp_path: Path, stopper: list[Any]
) -> None:
    listeners, stop, task = await _start(
        tenant,
        tmp_path,
        webhook_public_url="set below",
        poll_interval=5.0,
        background_poll_interval=60.0,
    )
    stopper.append((stop, task))
    assert listeners.bridge is not None and listeners.store is not None
    alice = await listeners.store.read(lambda db: acct.get_account_by_login(db, "alice"))
    runtime = await listeners.bridge.runtime(alice)
    deadline = time.monotonic() + 30
    while not runtime.engine.push_healthy:
        assert time.monotonic() < deadline, "webhooks never became healthy for alice"
        await asyncio.sleep(0.1)
    interval = runtime.engine._interval("some-folder")
    assert interval >= runtime.engine.settings.poll_push * 0.85
    runtime.engine.set_push_healthy(False)
    assert runtime.engine._interval("some-folder") <= 60.0 * 1.15
