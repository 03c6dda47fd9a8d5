"""Dropped and duplicated change notifications (issue 8 "Fault matrix", issue 7).

``bridge/push`` exists, but ``bridge.app`` does not start it yet, so this test composes
it the way the composition root is meant to (bridge/push/__init__.py): the in-process
bridge's store, Graph app and sync engine; a ``SubscriptionManager`` whose ``on_change``
is the account's ``SyncEngine.nudge``; and its webhook routes on a loopback listener the
simulator posts to. Polling is set to an hour so that, within the test, only
notifications (or the test's explicit poll) move mail.

- dropped: the notification never arrives, so the message stays invisible until the
  next poll; after that poll every invariant holds (polling is the safety net);
- duplicated: every notification arrives twice; mail and flag changes appear once.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.push import LIFECYCLE_PATH, NOTIFICATION_PATH, SubscriptionManager
from bridge.push.receiver import make_handlers
from bridge.store import accounts as acct
from tests.faults.harness import (
    InProcessBridge,
    Snapshot,
    assert_consistent,
    deliver_many,
    imap_login,
    in_process_bridge,
    snapshot,
)

HOUR = 3600.0


@contextlib.asynccontextmanager
async def pushed_bridge(tenant: Any, root: Path) -> AsyncIterator[tuple[InProcessBridge, Any]]:
    async with in_process_bridge(
        tenant, root / "state", poll_interval=HOUR, background_poll_interval=HOUR
    ) as bridge:
        store, core = bridge.listeners.store, bridge.listeners.bridge
        assert store is not None and core is not None
        account = await store.read(lambda db: acct.get_account_by_login(db, "alice"))
        runtime = await core.runtime(account)

        async def graph_for(account_id: str) -> Any:
            return await core.graph_app(account.app_id)

        def on_change(account_id: str, folder_id: str | None) -> None:
            runtime.engine.nudge(folder_id)

        holder: list[SubscriptionManager] = []
        app = web.Application()
        runner = web.AppRunner(app)
        site_url = await _serve_later(app, runner, holder)
        manager = SubscriptionManager(store, graph_for, site_url, on_change, debounce=0.1)
        holder.append(manager)
        await manager.start(background=False)
        try:
            await manager.add_account("alice", runtime.remote.mailbox)
            assert manager.webhooks_healthy("alice"), "the subscription was not created"
            yield bridge, manager
        finally:
            await manager.stop()
            for sub in list(tenant.sim.subscription_list()):
                if sub.notification_url.startswith(site_url):
                    tenant.sim.subscriptions.subs.pop(sub.id, None)
            await runner.cleanup()


async def _serve_later(
    app: web.Application, runner: web.AppRunner, holder: list[SubscriptionManager]
) -> str:
    """The webhook handlers need the manager and the manager needs the URL: the listener
    starts first and forwards to the manager created right after it."""

    async def notification(request: web.Request) -> web.StreamResponse:
        handler, _ = make_handlers(holder[0])
        return await handler(request)

    async def lifecycle(request: web.Request) -> web.StreamResponse:
        _, handler = make_handlers(holder[0])
        return await handler(request)

    app.router.add_route("*", NOTIFICATION_PATH, notification)
    app.router.add_route("*", LIFECYCLE_PATH, lifecycle)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}"


async def visible(bridge: InProcessBridge, count: int, timeout: float) -> Snapshot | None:
    """The INBOX snapshot once it shows ``count`` messages, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        snap = await asyncio.to_thread(snapshot, bridge.imap_port)
        if snap.exists == count:
            return snap
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.1)


async def test_dropped_notifications_are_covered_by_polling(
    tenant: Any, tmp_path: Path, matrix: Callable[[str, str], None]
) -> None:
    matrix("notification dropped", "new mail")
    sim = tenant.sim
    async with pushed_bridge(tenant, tmp_path) as (bridge, manager):
        before = await asyncio.to_thread(snapshot, bridge.imap_port)
        sim.set_faults(notification_drop_rate=1.0)
        await asyncio.to_thread(deliver_many, sim, tenant.alice, 3)
        await asyncio.to_thread(sim.wait_notifications)
        assert manager.notifications_received == 0, "a dropped notification arrived"
        assert await visible(bridge, 3, timeout=1.0) is None, "mail arrived without a signal"
        sim.faults.clear()
        await bridge.sync_until_clean()  # the poll tick that covers the lost notification
        await asyncio.to_thread(
            assert_consistent, sim, tenant.alice, bridge.imap_port, before=before
        )


async def test_duplicated_notifications_change_nothing_twice(
    tenant: Any, tmp_path: Path, matrix: Callable[[str, str], None]
) -> None:
    matrix("notification duplicated", "new mail")
    sim = tenant.sim
    async with pushed_bridge(tenant, tmp_path) as (bridge, manager):
        before = await asyncio.to_thread(snapshot, bridge.imap_port)
        sim.set_faults(notification_duplicate_rate=1.0)
        await asyncio.to_thread(deliver_many, sim, tenant.alice, 3)
        shown = await visible(bridge, 3, timeout=20.0)
        assert shown is not None, "notifications did not bring the mail"
        await asyncio.to_thread(sim.wait_notifications)
        assert manager.notifications_received >= 6, manager.notifications_received
        assert manager.dispatcher.nudges >= 1, "the mail did not come through a notification"
        first = await asyncio.to_thread(
            assert_consistent, sim, tenant.alice, bridge.imap_port, before=before
        )
        # Outlook marks one read: the duplicated "updated" notifications flip nothing twice.
        target = sim.messages(tenant.alice, "inbox")[0]
        sim.set_read(tenant.alice, target["id"], True)
        await asyncio.to_thread(sim.wait_notifications)
        uid = next(u for u, m in first.by_uid.items() if m == target["internetMessageId"])
        await _until_seen(bridge, uid)
        await asyncio.to_thread(
            assert_consistent, sim, tenant.alice, bridge.imap_port, before=first
        )


async def _until_seen(bridge: InProcessBridge, uid: int, timeout: float = 20.0) -> None:
    def flags() -> bytes:
        imap = imap_login(bridge.imap_port)
        try:
            imap.select("INBOX", readonly=True)
            typ, data = imap.uid("FETCH", str(uid), "(FLAGS)")
            return bytes(data[0]) if typ == "OK" and data and data[0] else b""
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    deadline = time.monotonic() + timeout
    while b"\\Seen" not in await asyncio.to_thread(flags):
        assert time.monotonic() < deadline, "the flag change never arrived"
        await asyncio.sleep(0.1)
