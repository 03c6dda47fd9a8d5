"""Webhooks driving the real SyncEngine: notification → on_change → nudge → delta → event.

The manager and the engine share one store, as in the bridge, so an ``updated``
notification for a message the engine already holds is routed to its folder from the
store, without asking Graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.backend.cached import CacheSettings
from bridge.backend.events import EventBus, FlagsChanged, MailEvent, MessagesAdded
from bridge.backend.types import AccountIdentity
from bridge.store.blobs import BlobCache
from bridge.sync import SyncEngine, open_cached_backend
from tests.push.conftest import PushHarness, mime

ALICE = "acct-alice"


@dataclass
class Events:
    seen: list[MailEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, event: MailEvent) -> None:
        self.seen.append(event)
        self.changed.set()

    async def wait_for(self, kind: type, timeout: float = 15.0) -> MailEvent:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.seen:
                    if isinstance(event, kind):
                        return event
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def engine(push: PushHarness, tmp_path: Path) -> AsyncIterator[tuple[SyncEngine, Events]]:
    blobs = await BlobCache.open(tmp_path / "blobs", 10 * 1024 * 1024)
    bus = EventBus()
    events = Events()
    bus.subscribe(events)
    # Polling so slow it never fires during the test: only webhooks can make it sync.
    settings = CacheSettings(
        prefetch_days=0, poll_watched=3600, poll_idle=3600, poll_tree=3600, nudge_debounce=0.05
    )
    identity = AccountIdentity(account_id=ALICE, login="alice", email=push.alice.email or "")
    _, eng = await open_cached_backend(
        push.store, blobs, push.graph.remote(push.alice), identity, bus, settings, start=False
    )
    await eng.sync_now()
    await eng.start()
    try:
        yield eng, events
    finally:
        await eng.stop()


async def test_notification_drives_a_delta_sync_of_the_folder(
    push: PushHarness, engine: tuple[SyncEngine, Events]
) -> None:
    eng, events = engine
    nudged: list[str | None] = []

    def on_change(account_id: str, folder_id: str | None) -> None:
        assert account_id == ALICE
        nudged.append(folder_id)
        eng.nudge(folder_id)

    manager = push.new_manager(debounce=0.1, on_change=on_change)
    await manager.start(background=False)
    await manager.add_account(ALICE, push.alice)
    inbox = push.folder_id(push.alice)

    message_id = push.tenant.sim.deliver(push.alice.id, mime(40))
    added = await events.wait_for(MessagesAdded)
    assert isinstance(added, MessagesAdded) and added.mailbox_id == inbox
    assert nudged == [inbox]

    gets_before = push.tenant.sim.counters(push.alice.id).by_kind.get("GET message.get", 0)
    assert gets_before >= 1  # the created message was located by asking Graph
    push.tenant.sim.set_read(push.alice.id, message_id)
    flags = await events.wait_for(FlagsChanged)
    assert isinstance(flags, FlagsChanged) and flags.mailbox_id == inbox
    assert nudged == [inbox, inbox]
    # The updated message was found in the shared store: no Graph GET to locate it.
    assert push.tenant.sim.counters(push.alice.id).by_kind.get("GET message.get", 0) == gets_before
