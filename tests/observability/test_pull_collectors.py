"""Pull-style collectors over real objects: a Store with accounts, a body cache on disk,
and a GraphApp + SyncEngine synced against the Graph simulator (HTTPS on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.backend.events import EventBus
from bridge.backend.types import AccountIdentity
from bridge.graph import AppCredentials, GraphApp, cloud_by_name
from bridge.metrics import BridgeMetrics, CountingBlobCache, metrics_route
from bridge.secrets import SecretBox, decode_key, generate_key, hash_password
from bridge.store import Store
from bridge.store import accounts as acct
from bridge.store.blobs import blob_hash
from bridge.sync import open_cached_backend
from tests.conftest import SimTenant

from .conftest import sample


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "bridge.db")
    try:
        yield store
    finally:
        await store.close()


async def _add_app(store: Store, **cloud: str) -> acct.OAuth2App:
    box = SecretBox(decode_key(generate_key()))
    fields: dict[str, Any] = {
        "name": "Contoso",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": "a-client-secret-for-tests",
        **cloud,
    }
    return await store.write(lambda db: acct.create_app(db, sealer=box, **fields))


async def _add_account(store: Store, app_id: str, account_id: str, login: str) -> acct.Account:
    hashed = hash_password("correct horse battery", n=2**10)
    return await store.write(
        lambda db: acct.create_account(
            db,
            account_id=account_id,
            app_id=app_id,
            auth_user=f"{login}@contoso.test",
            login=login,
            password_hash=hashed,
        )
    )


async def _scrape(metrics: BridgeMetrics) -> str:
    app = web.Application()
    app.add_routes([metrics_route(metrics)])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        return await response.text()


async def test_account_states(store: Store) -> None:
    app = await _add_app(store)
    await _add_account(store, app.id, "acc-a", "alice")
    await _add_account(store, app.id, "acc-b", "bob")
    await acct.record_state(store, "acc-a", acct.AccountState.CONNECTED)
    await acct.record_state(
        store, "acc-b", acct.AccountState.AUTHENTICATION_ERROR, "AADSTS7000215: bad secret."
    )
    metrics = BridgeMetrics()
    metrics.watch_store(store)
    text = await _scrape(metrics)
    state = "bridge_account_state"
    assert sample(text, state, account="acc-a", login="alice", state="connected") == 1.0
    assert sample(text, state, account="acc-a", login="alice", state="new") == 0.0
    assert sample(text, state, account="acc-b", login="bob", state="authenticationError") == 1.0
    assert sample(text, state, account="acc-b", login="bob", state="connected") == 0.0
    # A later change is seen by the next scrape.
    await acct.record_state(store, "acc-b", acct.AccountState.CONNECTED)
    text = await _scrape(metrics)
    assert sample(text, state, account="acc-b", login="bob", state="connected") == 1.0


async def test_body_cache_size_and_hit_rate(tmp_path: Path) -> None:
    cache = await CountingBlobCache.open(tmp_path / "blobs", 10_000)
    metrics = BridgeMetrics()
    metrics.watch_blob_cache(cache)
    text = await _scrape(metrics)
    assert sample(text, "body_cache_bytes") == 0.0
    assert sample(text, "body_cache_hit_ratio") is None  # no read yet: no ratio
    first = await cache.put(b"a" * 100)
    await cache.put(b"b" * 50, pin=True)
    assert await cache.get(first) == b"a" * 100
    assert await cache.get(first) is not None
    assert await cache.get(blob_hash(b"never stored")) is None
    text = await _scrape(metrics)
    assert sample(text, "body_cache_bytes") == 150.0
    assert sample(text, "body_cache_blobs") == 2.0
    assert sample(text, "body_cache_pinned_bytes") == 50.0
    assert sample(text, "body_cache_max_bytes") == 10_000.0
    assert sample(text, "body_cache_hits_total") == 2.0
    assert sample(text, "body_cache_misses_total") == 1.0
    assert sample(text, "body_cache_hit_ratio") == pytest.approx(2 / 3)


class _Queues:
    """A sync source that also reports queue depths (the optional ``SyncQueues``)."""

    def progress(self) -> Mapping[str, Any]:
        return {"phase": "initial", "folders_total": 4, "folders_done": 1, "last_pass": None}

    def queue_depths(self) -> Mapping[str, int]:
        return {"nudged": 2, "prefetch": 7}


async def test_sync_queue_depths_when_the_engine_offers_them() -> None:
    metrics = BridgeMetrics()
    metrics.watch_sync("acc-q", _Queues())
    text = await _scrape(metrics)
    assert sample(text, "sync_queue_depth", account="acc-q", queue="nudged") == 2.0
    assert sample(text, "sync_queue_depth", account="acc-q", queue="prefetch") == 7.0
    assert sample(text, "sync_initial_complete", account="acc-q") == 0.0
    assert sample(text, "sync_folders", account="acc-q") == 4.0
    assert sample(text, "sync_last_pass_age_seconds", account="acc-q") is None
    metrics.unwatch_sync("acc-q")
    text = await _scrape(metrics)
    assert sample(text, "sync_folders", account="acc-q") is None


async def test_graph_and_sync_after_a_real_sync(
    tenant: SimTenant, store: Store, tmp_path: Path
) -> None:
    settings = tenant.cloud_settings()
    graph = GraphApp(
        cloud_by_name(
            "custom",
            login_url=settings["login_url"],
            graph_url=settings["graph_url"],
            ca_file=settings["ca_file"],
        ),
        AppCredentials(
            tenant_id=settings["tenant_id"],
            client_id=settings["client_id"],
            client_secret=settings["client_secret"],
        ),
    )
    try:
        app = await _add_app(store)
        account = await _add_account(store, app.id, "acc-alice", "alice")
        mailbox = await graph.resolve_mailbox(tenant.alice.upn)
        await store.write(lambda db: acct.set_mailbox_id(db, account.id, mailbox.id))
        blobs = await CountingBlobCache.open(tmp_path / "blobs", 1 << 20)
        identity = AccountIdentity(
            account_id=account.id, login=account.login, email=tenant.alice.mail
        )
        _, engine = await open_cached_backend(
            store, blobs, graph.remote(mailbox), identity, EventBus(), start=False
        )
        await engine.sync_now()

        clock = [engine.progress()["last_pass"] + 30.0]
        metrics = BridgeMetrics(clock=lambda: clock[0])
        metrics.watch_store(store)
        metrics.watch_graph(app.id, graph)
        metrics.watch_sync(account.id, engine)
        text = await _scrape(metrics)

        labels = {"app": app.id, "account": account.id, "mailbox": account.email}
        requests = sample(text, "graph_requests_total", **labels)
        assert requests is not None and requests >= 2  # folder list + at least one delta
        assert sample(text, "graph_throttled_responses_total", **labels) == 0.0
        assert sample(text, "graph_requests_in_flight", **labels) == 0.0
        # Resolving the mailbox is a directory call: the app-level row.
        directory = sample(text, "graph_requests_total", app=app.id, account="", mailbox="")
        assert directory is not None and directory >= 1
        lag = sample(text, "sync_folder_lag_seconds", account=account.id, folder="INBOX")
        assert lag is not None and 29.0 <= lag <= 31.0 + 5.0
        assert sample(text, "sync_initial_complete", account=account.id) == 1.0
        assert sample(text, "sync_last_pass_age_seconds", account=account.id) == 30.0
        assert sample(text, "sync_failed_folders", account=account.id) == 0.0
        await engine.stop()
    finally:
        await graph.aclose()
