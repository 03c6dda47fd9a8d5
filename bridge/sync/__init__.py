"""Turning Graph changes into store writes and events: the per-account sync engine.

``SyncEngine`` (``bridge.sync.engine``) pulls the folder tree and per-folder message
deltas into the mailbox state and publishes events after commit; ``open_cached_backend``
builds a ``CachedBackend`` wired to its engine for the composition root.

May import graph, store, backend and mime; never imap or smtp.
"""

from __future__ import annotations

from typing import Any

from bridge.backend.cached import BodyLoader, CachedBackend, CacheSettings
from bridge.backend.events import EventBus
from bridge.backend.remote import Remote
from bridge.backend.types import AccountIdentity
from bridge.store import Store
from bridge.store.blobs import BlobCache
from bridge.sync.engine import AccountState, StateCallback, SyncEngine

__all__ = ["AccountState", "SyncEngine", "open_cached_backend"]


async def open_cached_backend(
    store: Store,
    blobs: BlobCache,
    remote: Remote,
    identity: AccountIdentity,
    bus: EventBus,
    settings: CacheSettings | None = None,
    *,
    config: Any = None,
    on_state: StateCallback | None = None,
    start: bool = True,
) -> tuple[CachedBackend, SyncEngine]:
    """A ``CachedBackend`` for ``identity`` and the ``SyncEngine`` that feeds it.

    Both share one ``BodyLoader`` (so FETCH and prefetch share the mailbox's concurrency
    limit). ``config`` may be given instead of ``settings``: the config's ``sync``
    section, mapped by ``CacheSettings.from_config``. ``on_state(state, error)`` may be a
    plain function or a coroutine function. With ``start`` the engine's background work
    begins at once (initial pass, polling, prefetch; ``engine.start()`` is idempotent);
    call ``await engine.stop()`` at shutdown. The store must have been
    opened after ``bridge.backend.cached`` was imported (importing this package does it).
    """
    if settings is None:
        settings = CacheSettings.from_config(config) if config is not None else CacheSettings()
    loader = BodyLoader(store, blobs, remote, identity.account_id, settings)
    engine = SyncEngine(
        store,
        remote,
        identity.account_id,
        bus,
        blobs,
        settings=settings,
        loader=loader,
        on_state=on_state,
    )
    backend = CachedBackend(
        store, blobs, remote, identity, bus, settings, hooks=engine, loader=loader
    )
    if start:
        await engine.start()
    return backend, engine
