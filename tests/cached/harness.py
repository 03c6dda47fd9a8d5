"""CachedBackend + SyncEngine over the real GraphRemote and the simulator, for tests.

``account`` gives one account (alice) with a temporary store and blob directory, after
an initial ``sync_now()``; ``account.restart()`` closes and reopens everything on the
same files, as a bridge restart would. The background loop is not started: tests drive
the engine with ``sync_now()`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.backend.cached import CachedBackend, CacheSettings
from bridge.backend.events import EventBus, MailEvent
from bridge.backend.remote import Remote
from bridge.backend.types import AccountIdentity
from bridge.graph import AppCredentials, GraphApp, cloud_by_name
from bridge.store import Store
from bridge.store.blobs import BlobCache
from bridge.sync import SyncEngine, open_cached_backend


async def _no_wait(_: float) -> None:
    # Retries and budget waits happen at once: tests must not sleep.
    await asyncio.sleep(0)


def make_app(tenant: Any, *, max_retries: int = 2) -> GraphApp:
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
    return GraphApp(cloud, credentials, max_retries=max_retries, max_total_wait=5.0, sleep=_no_wait)


@dataclass
class Account:
    """One account's bridge-side state, reopenable on the same files."""

    tenant: Any
    app: GraphApp
    remote: Remote
    root: Path
    settings: CacheSettings
    login: str = "alice"
    store: Store = field(init=False)
    blobs: BlobCache = field(init=False)
    bus: EventBus = field(init=False)
    backend: CachedBackend = field(init=False)
    engine: SyncEngine = field(init=False)
    events: list[MailEvent] = field(default_factory=list)
    states: list[tuple[str, str | None]] = field(default_factory=list)

    async def open(self) -> None:
        self.store = await Store.open(self.root / "state.sqlite")
        self.blobs = await BlobCache.open(self.root / "blobs", 50 * 1024 * 1024)
        self.bus = EventBus()
        self.bus.subscribe(self.events.append)
        user = getattr(self.tenant, self.login)
        identity = AccountIdentity(account_id=self.login, login=self.login, email=user.mail)
        self.backend, self.engine = await open_cached_backend(
            self.store,
            self.blobs,
            self.remote,
            identity,
            self.bus,
            self.settings,
            on_state=lambda state, error: self.states.append((state, error)),
            start=False,
        )

    async def close(self) -> None:
        await self.engine.stop()
        await self.store.close()

    async def restart(self) -> None:
        await self.close()
        self.events.clear()
        await self.open()

    async def sync(self) -> None:
        await self.engine.sync_now()

    def take(self, kind: type) -> list[Any]:
        """Events of ``kind`` published since the last ``take``/``clear``."""
        found = [event for event in self.events if isinstance(event, kind)]
        return found


async def open_account(
    tenant: Any, root: Path, *, login: str = "alice", page_size: int = 200, **settings: Any
) -> tuple[Account, GraphApp]:
    app = make_app(tenant)
    user = getattr(tenant, login)
    mailbox = await app.resolve_mailbox(user.upn)
    account = Account(
        tenant=tenant,
        app=app,
        remote=app.remote(mailbox, delta_page_size=page_size),
        root=root,
        settings=CacheSettings(prefetch_days=0, **settings),
        login=login,
    )
    await account.open()
    return account, app


def mail(n: int, *, subject: str | None = None, body: str = "Hello.") -> bytes:
    """A small RFC 5322 message with a unique Message-ID."""
    return (
        "From: Carol <carol@example.test>\r\n"
        "To: Alice <alice@example.test>\r\n"
        f"Subject: {subject or f'Message {n}'}\r\n"
        f"Date: Mon, 2 Nov 2026 10:{n % 60:02d}:00 +0000\r\n"
        f"Message-ID: <cached-{n}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()
