"""A Graph outage across a restart: cached mail stays readable, the rest fails clearly."""

from __future__ import annotations

import asyncio
import imaplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Listeners, run_daemon
from bridge.store import Store
from bridge.store import accounts as acct
from tests.e2e.conftest import PASSWORD, bridge_config, seed_accounts


def _mime(subject: str, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.net"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@outage.test>"
    msg.set_content(f"{subject}\n")
    return msg.as_bytes()


async def _run(config: Any, until: asyncio.Event) -> tuple[asyncio.Task[int], Listeners]:
    ready: asyncio.Future[Listeners] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run_daemon(config, stop=until, on_ready=ready.set_result))
    await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    return task, ready.result()


@pytest.mark.timeout(180)
async def test_restart_during_outage_serves_cache_and_refuses_the_rest(
    tenant: Any, tmp_path: Path
) -> None:
    sim = tenant.sim
    config = bridge_config(tmp_path / "state", prefetch_days=0, poll_interval=1.0)
    store = await Store.open(config.state_dir / "bridge.db")
    try:
        await seed_accounts(store, tenant)
    finally:
        await store.close()
    for n in range(2):
        await asyncio.to_thread(
            sim.deliver, tenant.alice.id, _mime(f"outage {n}", tenant.alice.mail)
        )

    stop = asyncio.Event()
    task, listeners = await _run(config, stop)

    def read_first(port: int) -> tuple[bytes, list[bytes]]:
        imap = imaplib.IMAP4("127.0.0.1", port)
        imap.login("alice", PASSWORD)
        imap.select("INBOX")
        _, data = imap.uid("SEARCH", "ALL")
        uids = data[0].split()
        _, fetched = imap.uid("FETCH", uids[0].decode(), "(BODY.PEEK[])")
        imap.logout()
        return fetched[0][1], uids

    assert listeners.bridge is not None
    assert listeners.store is not None
    alice = await listeners.store.read(lambda db: acct.get_account_by_login(db, "alice"))
    runtime = await listeners.bridge.runtime(alice)
    await runtime.engine.sync_now()
    cached_body, uids = await asyncio.to_thread(read_first, listeners.imap.port)
    assert len(uids) == 2
    stop.set()
    assert await asyncio.wait_for(task, 60) == 0

    # Graph is down (every request 503) when the bridge comes back.
    sim.set_faults(error_rate=1.0, error_status=503, retry_after=0)
    stop = asyncio.Event()
    task, listeners = await _run(config, stop)
    try:

        def during_outage(port: int) -> tuple[bytes, tuple[str, list[Any]]]:
            imap = imaplib.IMAP4("127.0.0.1", port)
            imap.login("alice", PASSWORD)
            typ, data = imap.select("INBOX")
            assert typ == "OK" and int(data[0]) == 2
            _, fetched = imap.uid("FETCH", uids[0].decode(), "(BODY.PEEK[])")
            body = fetched[0][1]
            # The second body was never downloaded: Graph is needed and is down.
            typ, detail = imap.uid("FETCH", uids[1].decode(), "(BODY.PEEK[])")
            imap.logout()
            return body, (typ, detail)

        body, (typ, detail) = await asyncio.to_thread(during_outage, listeners.imap.port)
        assert body == cached_body
        assert typ == "NO" and b"[UNAVAILABLE]" in detail[0], detail
    finally:
        sim.set_faults(error_rate=0.0)
        stop.set()
        await asyncio.wait_for(task, 60)
