"""Graph unreachable for a long time: clients keep getting cached data without waiting.

The Graph client retries 503s with backoff for up to minutes (bounded by
``max_total_wait``); an interactive LIST or SELECT must not sit behind those retries.
These tests use a GraphApp that really sleeps between retries (no instant-retry shortcut)
so a stall would show.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.backend.cached import CacheSettings
from bridge.backend.remote import RemoteUnavailable
from bridge.graph import AppCredentials, GraphApp, cloud_by_name
from tests.cached.harness import Account, mail


def _sleeping_app(tenant: Any) -> GraphApp:
    settings = tenant.cloud_settings()
    cloud = cloud_by_name(
        "custom",
        login_url=settings["login_url"],
        graph_url=settings["graph_url"],
        ca_file=settings["ca_file"],
    )
    credentials = AppCredentials(
        tenant_id=settings["tenant_id"],
        client_id=settings["client_id"],
        client_secret=settings["client_secret"],
    )
    return GraphApp(cloud, credentials, max_retries=6, max_total_wait=60.0)


async def test_list_and_select_do_not_wait_behind_retries(tenant: Any, tmp_path: Path) -> None:
    sim, alice = tenant.sim, tenant.alice
    sim.deliver(alice, mail(1))
    app = _sleeping_app(tenant)
    mailbox = await app.resolve_mailbox(alice.upn)
    acc = Account(
        tenant=tenant,
        app=app,
        remote=app.remote(mailbox),
        root=tmp_path,
        settings=CacheSettings(prefetch_days=0, interactive_wait=0.5),
    )
    await acc.open()
    try:
        await acc.sync()
        names = [box.name for box in await acc.backend.list_mailboxes()]
        sim.faults.retry_after = 1.0
        sim.faults.error_rate = 1.0
        acc.engine._tree_synced = None  # the next LIST wants a fresh tree
        started = time.monotonic()
        assert [box.name for box in await acc.backend.list_mailboxes()] == names
        assert time.monotonic() - started < 3.0, "LIST waited for Graph's retries"

        # Once the engine knows Graph is down, interactive commands do not even try.
        sim.faults.retry_after = 0.0
        with pytest.raises(RemoteUnavailable):
            await acc.engine.sync_now()
        assert acc.engine.progress()["state"] == "connectError"
        sim.reset_counters(alice)
        acc.engine._tree_synced = None
        started = time.monotonic()
        assert [box.name for box in await acc.backend.list_mailboxes()] == names
        snap = await acc.backend.select("INBOX", read_only=True)
        assert len(snap.messages) == 1
        assert time.monotonic() - started < 1.0
        assert sim.counters(alice).requests == 0

        # Recovery is automatic: the next successful round reports connected.
        sim.faults.error_rate = 0.0
        await acc.engine.sync_now()
        assert acc.engine.progress()["state"] == "connected"
    finally:
        sim.faults.error_rate = 0.0
        await asyncio.sleep(0)
        await acc.close()
        await app.aclose()
