"""Fixtures for the push tests: the real ``GraphApp`` against the session simulator, a
webhook listener on 127.0.0.1 (plain http: the simulator allows it for loopback), a
store in a temporary directory, and a controllable clock.

``PushHarness.manager`` can be replaced (a "restart"); the listener always forwards to
the current manager, so the notification URL stays the same across restarts, as it
does in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import bridge.store.mailstate  # noqa: F401  (registers the mail state tables locate() reads)
from bridge.backend.remote import RemoteMailbox
from bridge.graph import AppCredentials, GraphApp, cloud_by_name
from bridge.push import LIFECYCLE_PATH, NOTIFICATION_PATH, SubscriptionManager
from bridge.push import store as pstore
from bridge.push.receiver import make_handlers
from bridge.store import Store
from tests.conftest import SimTenant


class FakeClock:
    """UTC wall time that moves only when a test says so (starts at the real now, so the
    simulator, which runs on real time, accepts the expiry times we compute)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Changes:
    """Records ``on_change`` calls; tests await them instead of sleeping."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, account_id: str, folder_id: str | None) -> None:
        self.calls.append((account_id, folder_id))
        self._event.set()

    async def wait(self, count: int = 1, timeout: float = 15.0) -> list[tuple[str, str | None]]:
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                self._event.clear()
                await self._event.wait()
        return self.calls


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for something the simulator does on its own thread (a webhook POST)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@dataclass
class PushHarness:
    tenant: SimTenant
    store: Store
    graph: GraphApp
    clock: FakeClock
    changes: Changes
    public_url: str
    alice: RemoteMailbox
    bob: RemoteMailbox
    manager: SubscriptionManager = field(init=False)
    managers: list[SubscriptionManager] = field(default_factory=list)
    # Called with the path of every validation request Graph sends (a create in flight).
    validation_hooks: list[Callable[[str], None]] = field(default_factory=list)

    def new_manager(
        self,
        public_url: str | None = None,
        on_change: Callable[[str, str | None], None] | None = None,
        **kw: Any,
    ) -> SubscriptionManager:
        async def graph_for(account_id: str) -> GraphApp:
            return self.graph

        kw.setdefault("debounce", 0.3)
        self.manager = SubscriptionManager(
            self.store,
            graph_for,
            public_url or self.public_url,
            on_change or self.changes,
            clock=self.clock,
            **kw,
        )
        self.managers.append(self.manager)
        return self.manager

    async def restart(self, **kw: Any) -> SubscriptionManager:
        await self.manager.stop()
        manager = self.new_manager(**kw)
        await manager.start(background=False)
        return manager

    def sim_subscriptions(self, mailbox: RemoteMailbox) -> list[Any]:
        return [s for s in self.tenant.sim.subscription_list() if s.user_id == mailbox.id]

    def folder_id(self, mailbox: RemoteMailbox, name: str = "inbox") -> str:
        folders = self.tenant.sim.folders(mailbox.id)
        return next(str(f["id"]) for f in folders if f.get("wellKnownName") == name)


def _forwarding_app(harness_ref: Callable[[], PushHarness]) -> web.Application:
    async def notification(request: web.Request) -> web.StreamResponse:
        if "validationToken" in request.query:
            for hook in harness_ref().validation_hooks:
                hook(request.path)
        handler, _ = make_handlers(harness_ref().manager)
        return await handler(request)  # type: ignore[no-any-return]

    async def lifecycle(request: web.Request) -> web.StreamResponse:
        _, handler = make_handlers(harness_ref().manager)
        return await handler(request)  # type: ignore[no-any-return]

    app = web.Application()
    app.router.add_route("*", NOTIFICATION_PATH, notification)
    app.router.add_route("*", LIFECYCLE_PATH, lifecycle)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def secret_of(store: Store, subscription_id: str) -> str:
    """The clientState the bridge stored (tests play Graph, which knows it too)."""
    records = await store.read(pstore.load_all)
    return next(r.client_state for r in records if r.subscription_id == subscription_id)


def sim_graph(tenant: SimTenant) -> GraphApp:
    cs = tenant.cloud_settings()
    cloud = cloud_by_name(
        "custom", login_url=cs["login_url"], graph_url=cs["graph_url"], ca_file=cs["ca_file"]
    )
    creds = AppCredentials(
        tenant_id=cs["tenant_id"], client_id=cs["client_id"], client_secret=cs["client_secret"]
    )
    return GraphApp(cloud, creds)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await Store.open(tmp_path / "bridge.sqlite")
    try:
        yield st
    finally:
        await st.close()


@pytest.fixture
async def push(tenant: SimTenant, store: Store) -> AsyncIterator[PushHarness]:
    holder: list[PushHarness] = []
    runner, url = await serve(_forwarding_app(lambda: holder[0]))
    graph = sim_graph(tenant)
    try:
        alice = await graph.resolve_mailbox(tenant.alice.upn)
        bob = await graph.resolve_mailbox(tenant.bob.upn)
        harness = PushHarness(tenant, store, graph, FakeClock(), Changes(), url, alice, bob)
        holder.append(harness)
        harness.new_manager()
        await harness.manager.start(background=False)
        yield harness
    finally:
        for manager in holder[0].managers if holder else []:
            await manager.stop()
        # Leave no subscription behind for the next test's tenant-wide listings.
        for sub in list(tenant.sim.subscription_list()):
            if sub.notification_url.startswith(url):
                tenant.sim.subscriptions.subs.pop(sub.id, None)
        await runner.cleanup()
        await graph.aclose()


MIME = (
    b"From: Carol <carol@example.org>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: push test %d\r\n"
    b"Message-ID: <push-%d@example.org>\r\n"
    b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
    b"\r\n"
    b"hello\r\n"
)


def mime(n: int) -> bytes:
    return MIME % (n, n)
