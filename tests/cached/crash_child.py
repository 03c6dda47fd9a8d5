"""A bridge-like child process for the crash tests: syncs one account until it is killed.

Usage: ``python tests/cached/crash_child.py <state dir> <settings JSON>``.
Prints ``committed <n>`` after every committed MessagesAdded event so that the parent
knows when to send SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bridge.backend.events import EventBus, MailEvent, MessagesAdded
from bridge.backend.types import AccountIdentity
from bridge.graph import AppCredentials, GraphApp, cloud_by_name
from bridge.store import Store
from bridge.store.blobs import BlobCache
from bridge.sync import open_cached_backend


async def main(root: Path, settings: dict[str, str]) -> None:
    cloud = cloud_by_name(
        "custom",
        login_url=settings["login_url"],
        graph_url=settings["graph_url"],
        ca_file=settings["ca_file"],
    )
    app = GraphApp(
        cloud,
        AppCredentials(
            tenant_id=settings["tenant_id"],
            client_id=settings["client_id"],
            client_secret=settings["client_secret"],
        ),
    )
    mailbox = await app.resolve_mailbox(settings["user"])
    store = await Store.open(root / "state.sqlite")
    blobs = await BlobCache.open(root / "blobs", 10 * 1024 * 1024)
    bus = EventBus()
    count = 0

    def report(event: MailEvent) -> None:
        nonlocal count
        if isinstance(event, MessagesAdded):
            count += len(event.messages)
            print(f"committed {count}", flush=True)

    bus.subscribe(report)
    _, engine = await open_cached_backend(
        store,
        blobs,
        app.remote(mailbox, delta_page_size=10),
        AccountIdentity(account_id="alice", login="alice", email=settings["user"]),
        bus,
        start=False,
    )
    print("ready", flush=True)
    while True:
        await engine.sync_now()
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), json.loads(sys.argv[2])))
