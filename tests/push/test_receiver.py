"""The webhook endpoints: validation handshake, size bound, verification, fast 202."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from bridge.push import LIFECYCLE_PATH, NOTIFICATION_PATH, SubscriptionManager, webhook_routes
from bridge.store import Store
from tests.push.conftest import Changes, PushHarness, mime, secret_of, serve

TOKEN = (
    "Validation: Testing client application reachability for subscription "
    "Request-Id: 877cb92e-0f6b-4d4c-9b2a-1c1f0a6a0c33 & more=yes ü"
)


@pytest.fixture
async def routes_url(store: Store) -> AsyncIterator[tuple[str, SubscriptionManager]]:
    """The routes exactly as the lead mounts them (``webhook_routes``), no Graph needed."""

    async def no_graph(account_id: str) -> object:
        raise AssertionError("the receiver must not call Graph")

    manager = SubscriptionManager(store, no_graph, "https://bridge.example", Changes())  # type: ignore[arg-type]
    await manager.start(background=False)
    app = web.Application()
    app.add_routes(webhook_routes(manager, max_body=64 * 1024))
    runner, url = await serve(app)
    try:
        yield url, manager
    finally:
        await manager.stop()
        await runner.cleanup()


@pytest.mark.parametrize("path", [NOTIFICATION_PATH, LIFECYCLE_PATH])
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_validation_echoes_decoded_token_as_plain_text(
    routes_url: tuple[str, SubscriptionManager], path: str, method: str
) -> None:
    url, _ = routes_url
    target = f"{url}{path}?validationToken={quote(TOKEN, safe='')}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, target, data=b"", headers={"Content-Type": "text/plain; charset=utf-8"}
        ) as resp,
    ):
        body = await resp.read()
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert body == TOKEN.encode("utf-8")  # exact bytes: no quotes, no newline


async def test_oversized_notification_is_refused_with_413(
    routes_url: tuple[str, SubscriptionManager],
) -> None:
    url, manager = routes_url
    big = b'{"value": [], "pad": "' + b"x" * (64 * 1024) + b'"}'
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + NOTIFICATION_PATH, data=big, headers={"Content-Type": "application/json"}
        ) as resp,
    ):
        assert resp.status == 413
    assert manager.notifications_received == 0


async def test_malformed_notification_is_400_and_changes_nothing(
    routes_url: tuple[str, SubscriptionManager],
) -> None:
    url, manager = routes_url
    async with aiohttp.ClientSession() as session:
        for body in (b"not json", b'{"value": 3}', b"[]"):
            async with session.post(url + NOTIFICATION_PATH, data=body) as resp:
                assert resp.status == 400
    assert manager.notifications_accepted == 0


async def _post(url: str, payload: object) -> tuple[int, float]:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=payload) as resp,
    ):
        await resp.read()
        return resp.status, time.monotonic() - started


async def test_forged_notifications_change_nothing_and_are_logged(
    push: PushHarness, caplog: pytest.LogCaptureFixture
) -> None:
    manager = push.manager
    await manager.add_account("acct-alice", push.alice)
    (sub_id,) = manager.subscription_ids("acct-alice")
    secret = await secret_of(push.store, sub_id)
    wrong_state = "guess-" + "A" * 37
    note = {
        "subscriptionId": sub_id,
        "clientState": wrong_state,
        "changeType": "created",
        "resource": f"Users/{push.alice.id}/Messages/AAMk-forged",
        "resourceData": {"id": "AAMk-forged"},
    }
    unknown = dict(note, subscriptionId="00000000-0000-0000-0000-000000000000")
    caplog.set_level(logging.WARNING, logger="bridge.push")
    status, _ = await _post(push.public_url + NOTIFICATION_PATH, {"value": [note, unknown]})
    # Facts §19.3: acknowledge with 2xx even when ignoring, so a forger learns nothing.
    assert status == 202
    missing_state = {k: v for k, v in note.items() if k != "clientState"}
    status, _ = await _post(push.public_url + NOTIFICATION_PATH, {"value": [missing_state]})
    assert status == 202
    forged_lifecycle = {
        "subscriptionId": sub_id,
        "clientState": wrong_state,
        "lifecycleEvent": "subscriptionRemoved",
    }
    status, _ = await _post(push.public_url + LIFECYCLE_PATH, {"value": [forged_lifecycle]})
    assert status == 202
    await manager.wait_idle()

    assert push.changes.calls == []
    assert manager.notifications_rejected == 4
    assert manager.notifications_accepted == 0
    assert manager.subscription_ids("acct-alice") == [sub_id]  # the forged removal did nothing
    assert [s.id for s in push.sim_subscriptions(push.alice)] == [sub_id]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Logged once per subscription, kind and reason a minute (the second mismatching
    # change notification is counted, not logged again).
    assert sum("change notification" in m and "does not match" in m for m in messages) == 1
    assert sum("lifecycle notification" in m and "does not match" in m for m in messages) == 1
    assert sum("unknown subscription" in m for m in messages) == 1
    push.clock.advance(minutes=2)
    status, _ = await _post(push.public_url + NOTIFICATION_PATH, {"value": [note]})
    assert status == 202
    assert manager.notifications_rejected == 5
    assert "(1 more since the last report)" in caplog.records[-1].getMessage()
    assert secret not in caplog.text and wrong_state not in caplog.text


async def test_notifications_are_answered_before_any_graph_call(push: PushHarness) -> None:
    manager = push.manager
    await manager.add_account("acct-alice", push.alice)
    (sub_id,) = manager.subscription_ids("acct-alice")
    message_id = push.tenant.sim.deliver(push.alice.id, mime(1))
    await push.changes.wait()  # the simulator's own notification, handled
    push.changes.calls.clear()
    push.tenant.sim.set_faults(latency=2.0)  # every Graph request now takes 2 s
    note = {
        "subscriptionId": sub_id,
        "clientState": await secret_of(push.store, sub_id),
        "changeType": "updated",
        "resourceData": {"id": message_id},
    }
    status, elapsed = await _post(push.public_url + NOTIFICATION_PATH, {"value": [note]})
    assert status == 202
    assert elapsed < 1.0  # facts §19.3: 2xx within 3 s, never waiting on Graph
    calls = await push.changes.wait()
    assert calls == [("acct-alice", push.folder_id(push.alice))]


async def test_get_without_validation_token_is_400(
    routes_url: tuple[str, SubscriptionManager],
) -> None:
    url, manager = routes_url
    async with aiohttp.ClientSession() as session:
        for path in (NOTIFICATION_PATH, LIFECYCLE_PATH):
            async with session.get(url + path) as resp:
                assert resp.status == 400
    assert manager.notifications_received == 0
