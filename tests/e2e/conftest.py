"""The whole bridge, in-process, against the Graph simulator over HTTPS.

``running_bridge`` starts ``bridge.app.run_daemon`` with every listener on a random
loopback port, an app registration pointing at the simulator (custom cloud, the
simulator's CA) and two accounts, alice and bob, with known local passwords.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Listeners, run_daemon
from bridge.config import Config, default_config
from bridge.secrets import SecretBox, hash_password
from bridge.store import Store
from bridge.store import accounts as acct

PASSWORD = "correct horse battery staple"


@dataclass
class RunningBridge:
    sim: Any
    tenant: Any
    config: Config
    listeners: Listeners
    stop: asyncio.Event
    task: asyncio.Task[int]

    @property
    def imap_port(self) -> int:
        return self.listeners.imap.port

    @property
    def smtp_port(self) -> int:
        return self.listeners.smtp.port

    @property
    def http_port(self) -> int:
        assert self.listeners.http_port is not None
        return self.listeners.http_port

    async def runtime(self, login: str) -> Any:
        bridge = self.listeners.bridge
        assert bridge is not None
        account = await self.listeners.store.read(lambda db: acct.get_account_by_login(db, login))
        return await bridge.runtime(account)

    async def sync_now(self, login: str = "alice") -> None:
        runtime = await self.runtime(login)
        await runtime.engine.sync_now()


def bridge_config(state_dir: Path, **sync: Any) -> Config:
    config = default_config(state_dir)
    return dataclasses.replace(
        config,
        imap=dataclasses.replace(config.imap, port=0),
        smtp=dataclasses.replace(config.smtp, port=0),
        http=dataclasses.replace(config.http, port=0),
        sync=dataclasses.replace(config.sync, **sync),
    )


async def seed_accounts(store: Store, tenant: Any) -> None:
    settings = tenant.cloud_settings()
    box = SecretBox(None)
    app = await store.write(
        lambda db: acct.create_app(
            db,
            sealer=box,
            name="simulated tenant",
            cloud="custom",
            login_url=settings["login_url"],
            graph_url=settings["graph_url"],
            ca_file=str(settings["ca_file"]),
            client_id=settings["client_id"],
            tenant_id=settings["tenant_id"],
            client_secret=settings["client_secret"],
        )
    )
    hashed = hash_password(PASSWORD)
    for login, user, send_as in (
        ("alice", tenant.alice, (tenant.shared.mail,)),
        ("bob", tenant.bob, ()),
    ):
        await store.write(
            lambda db, login=login, user=user, send_as=send_as: acct.create_account(
                db,
                account_id=login,
                name=login.title(),
                email=user.mail,
                app_id=app.id,
                auth_user=user.upn,
                login=login,
                password_hash=hashed,
                send_as=send_as,
            )
        )


@pytest.fixture
async def running_bridge(tenant: Any, tmp_path: Path) -> AsyncIterator[RunningBridge]:
    config = bridge_config(tmp_path / "state")
    store = await Store.open(config.state_dir / "bridge.db")
    try:
        await seed_accounts(store, tenant)
    finally:
        await store.close()
    ready: asyncio.Future[Listeners] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def on_ready(listeners: Listeners) -> None:
        ready.set_result(listeners)

    task = asyncio.ensure_future(run_daemon(config, stop=stop, on_ready=on_ready))
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the startup error
    assert ready in done, "the bridge did not become ready within 60 s"
    running = RunningBridge(tenant.sim, tenant, config, ready.result(), stop, task)
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)
