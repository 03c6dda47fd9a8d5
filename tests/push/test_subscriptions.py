"""The subscription lifecycle against the simulator with the real GraphApp."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from aiohttp import web

from bridge.push import WebhookHealth
from bridge.push import store as pstore
from tests.push.conftest import PushHarness, eventually, mime, serve

ALICE = "acct-alice"
BOB = "acct-bob"


async def test_subscription_created_at_start_and_notification_nudges_folder(
    push: PushHarness,
) -> None:
    health = await push.manager.add_account(ALICE, push.alice)
    assert health is WebhookHealth.ACTIVE
    assert push.manager.webhooks_healthy(ALICE)
    (sub,) = push.sim_subscriptions(push.alice)
    assert sub.resource == f"users/{push.alice.id}/messages"  # whole mailbox, object id
    assert sub.notification_url == push.public_url + "/oauth/msg/notification"
    assert sub.lifecycle_url == push.public_url + "/oauth/msg/lifecycle"
    assert set(sub.change_types) == {"created", "updated", "deleted"}
    assert sub.immutable  # created with Prefer: IdType="ImmutableId" (facts §17)
    secret = sub.client_state
    assert secret and len(secret) >= 40 and secret == await _stored_secret(push, sub.id)
    assert push.manager.subscriptions_active == 1

    push.tenant.sim.deliver(push.alice.id, mime(1))
    calls = await push.changes.wait()
    assert calls == [(ALICE, push.folder_id(push.alice))]
    assert push.manager.notifications_accepted == 1


async def test_a_message_in_another_folder_nudges_that_folder(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    push.tenant.sim.deliver(push.alice.id, mime(2), folder="junkemail")
    calls = await push.changes.wait()
    assert calls == [(ALICE, push.folder_id(push.alice, "junkemail"))]


async def test_duplicated_notifications_cause_one_nudge_per_burst(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    push.tenant.sim.set_faults(notification_duplicate_rate=1.0)
    for n in range(3):
        push.tenant.sim.deliver(push.alice.id, mime(10 + n))
    await eventually(lambda: push.manager.notifications_accepted >= 6)
    await push.manager.wait_idle()
    assert push.changes.calls == [(ALICE, push.folder_id(push.alice))]
    assert push.manager.notifications_accepted == 6  # 3 messages x 2 copies
    assert push.manager.dispatcher.nudges == 1


async def test_renewal_before_expiry_with_fake_clock(push: PushHarness) -> None:
    manager = push.new_manager(lifetime_minutes=60)
    await manager.start(background=False)
    await manager.add_account(ALICE, push.alice)
    (sub,) = push.sim_subscriptions(push.alice)
    first_expiry = sub.expiration
    assert first_expiry <= push.clock() + timedelta(minutes=60, seconds=5)

    push.clock.advance(minutes=20)  # 40 of 60 minutes left: not yet
    await manager.tick()
    assert manager.subscriptions_renewed == 0

    push.clock.advance(minutes=11)  # 29 minutes left ≤ 50 %: renew
    await manager.tick()
    assert manager.subscriptions_renewed == 1
    (renewed,) = push.sim_subscriptions(push.alice)
    assert renewed.id == sub.id
    assert renewed.expiration > first_expiry + timedelta(minutes=30)
    record = (await push.store.read(pstore.load_all))[0]
    assert abs((record.expires - renewed.expiration).total_seconds()) < 1
    assert manager.webhooks_healthy(ALICE)


async def test_background_loop_renews_without_being_called(push: PushHarness) -> None:
    manager = push.new_manager(lifetime_minutes=60, tick_seconds=0.02)
    await manager.start()  # with the background renewal loop
    await manager.add_account(ALICE, push.alice)
    assert manager.subscriptions_renewed == 0
    push.clock.advance(minutes=45)
    await eventually(lambda: manager.subscriptions_renewed == 1)
    assert manager.webhooks_healthy(ALICE)


async def test_expiration_refusal_is_retried_with_a_shorter_lifetime(push: PushHarness) -> None:
    config = push.tenant.sim.config
    saved = config.subscription_max_minutes
    config.subscription_max_minutes = 600  # a service that caps lower than we ask (§19.6)
    try:
        assert await push.manager.add_account(ALICE, push.alice) is WebhookHealth.ACTIVE
    finally:
        config.subscription_max_minutes = saved
    assert push.manager.lifetime_minutes == 599
    (sub,) = push.sim_subscriptions(push.alice)
    assert sub.expiration <= push.clock() + timedelta(minutes=600)


async def test_failed_renewal_404_recreates_and_resyncs(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    (old,) = push.manager.subscription_ids(ALICE)
    push.tenant.sim.expire_subscription(old)  # Graph dropped it (§19.5)
    push.clock.advance(minutes=2200)
    await push.manager.tick()
    (new,) = push.manager.subscription_ids(ALICE)
    assert new != old
    assert [s.id for s in push.sim_subscriptions(push.alice)] == [new]
    await push.manager.wait_idle()
    assert push.changes.calls == [(ALICE, None)]  # the gap is covered by a full resync
    assert push.manager.webhooks_healthy(ALICE)


async def test_subscription_removed_recreates_and_resyncs(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    (old,) = push.manager.subscription_ids(ALICE)
    push.tenant.sim.lifecycle(old, "subscriptionRemoved")
    calls = await push.changes.wait()
    assert calls == [(ALICE, None)]
    (new,) = push.manager.subscription_ids(ALICE)
    assert new != old
    assert [s.id for s in push.sim_subscriptions(push.alice)] == [new]
    assert [r.subscription_id for r in await push.store.read(pstore.load_all)] == [new]
    # The new subscription works end to end.
    push.changes.calls.clear()
    push.tenant.sim.deliver(push.alice.id, mime(3))
    assert await push.changes.wait() == [(ALICE, push.folder_id(push.alice))]


async def test_missed_triggers_a_resync(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    (sub_id,) = push.manager.subscription_ids(ALICE)
    push.tenant.sim.lifecycle(sub_id, "missed")
    assert await push.changes.wait() == [(ALICE, None)]
    assert push.manager.subscription_ids(ALICE) == [sub_id]


async def test_reauthorization_required_is_answered(
    push: PushHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.push")
    await push.manager.add_account(ALICE, push.alice)
    (sub_id,) = push.manager.subscription_ids(ALICE)
    push.tenant.sim.lifecycle(sub_id, "reauthorizationRequired")
    await eventually(lambda: push.manager.lifecycle_received == 1)
    await push.manager.wait_idle()
    assert push.manager.reauthorizations == 1
    assert push.manager.subscription_ids(ALICE) == [sub_id]
    assert push.changes.calls == []
    assert "reauthorized the subscription of acct-alice" in caplog.text


async def test_restart_reuses_the_live_subscription(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    (sub_id,) = push.manager.subscription_ids(ALICE)
    manager = await push.restart()
    assert await manager.add_account(ALICE, push.alice) is WebhookHealth.ACTIVE
    assert manager.subscription_ids(ALICE) == [sub_id]
    assert manager.subscriptions_created == 0
    assert manager.subscriptions_renewed == 1  # the PATCH that proves it is alive
    assert [s.id for s in push.sim_subscriptions(push.alice)] == [sub_id]
    # Notifications verify against the secret read back from the store.
    push.tenant.sim.deliver(push.alice.id, mime(4))
    assert await push.changes.wait() == [(ALICE, push.folder_id(push.alice))]


async def test_restart_after_graph_dropped_it_creates_a_new_one(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    (old,) = push.manager.subscription_ids(ALICE)
    push.tenant.sim.expire_subscription(old)
    manager = await push.restart()
    await manager.add_account(ALICE, push.alice)
    (new,) = manager.subscription_ids(ALICE)
    assert new != old
    assert [s.id for s in push.sim_subscriptions(push.alice)] == [new]
    await manager.wait_idle()
    assert push.changes.calls == [(ALICE, None)]


@pytest.mark.parametrize("listener", ["answers 404", "closed port"])
async def test_unreachable_url_reports_unhealthy_with_one_sentence(
    push: PushHarness, caplog: pytest.LogCaptureFixture, listener: str
) -> None:
    # Graph's validation request (§19.2) gets a 404, or finds nothing listening.
    runner, dead_url = await serve(web.Application())
    if listener == "closed port":
        await runner.cleanup()
    try:
        health_changes: list[tuple[str, bool]] = []
        manager = push.new_manager(
            public_url=dead_url,
            fallback_poll_seconds=30,
            on_health=lambda a, h: health_changes.append((a, h)),
        )
        await manager.start(background=False)
        caplog.set_level(logging.INFO, logger="bridge.push")
        assert await manager.add_account(ALICE, push.alice) is WebhookHealth.UNREACHABLE
        assert not manager.webhooks_healthy(ALICE)
        push.clock.advance(minutes=16)  # the retry is due; it fails the same way
        await manager.tick()
        assert manager.health(ALICE) is WebhookHealth.UNREACHABLE
    finally:
        await runner.cleanup()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"Graph cannot reach {dead_url}/oauth/msg/notification; webhooks disabled for "
        "acct-alice, falling back to polling every 30s"
    ]
    assert push.sim_subscriptions(push.alice) == []
    assert health_changes == []  # never healthy, so never a transition


async def test_removed_account_subscription_is_deleted(push: PushHarness) -> None:
    await push.manager.add_account(ALICE, push.alice)
    await push.manager.add_account(BOB, push.bob)
    (bob_sub,) = push.manager.subscription_ids(BOB)
    await push.manager.retain_accounts([ALICE])
    assert push.sim_subscriptions(push.bob) == []
    assert push.manager.subscription_ids(BOB) == []
    assert bob_sub not in {r.subscription_id for r in await push.store.read(pstore.load_all)}
    assert len(push.sim_subscriptions(push.alice)) == 1
    assert not push.manager.webhooks_healthy(BOB)

    await push.manager.remove_account(ALICE)
    assert push.sim_subscriptions(push.alice) == []
    assert await push.store.read(pstore.load_all) == []
    assert push.manager.subscriptions_active == 0


async def test_unknown_ids_during_a_create_are_judged_when_it_returns(
    push: PushHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # Graph may notify before our create call has returned; such notifications are
    # parked, then accepted or rejected once the new subscription is known.
    caplog.set_level(logging.WARNING, logger="bridge.push")
    parked: list[bool] = []
    forged = {
        "subscriptionId": "11111111-2222-3333-4444-555555555555",
        "clientState": "not-the-secret",
        "changeType": "created",
        "resourceData": {"id": "AAMk-early"},
    }

    def during_create(path: str) -> None:
        if not parked:  # the first validation request: the create is in flight
            parked.append(push.manager.receive(forged, "127.0.0.1"))
            assert push.manager.notifications_rejected == 0

    push.validation_hooks.append(during_create)
    await push.manager.add_account(ALICE, push.alice)
    assert parked == [True]  # held, not yet judged
    assert push.manager.notifications_rejected == 1  # judged when the create returned
    assert "unknown subscription" in caplog.text
    await push.manager.wait_idle()
    assert push.changes.calls == []


async def _stored_secret(push: PushHarness, sub_id: str) -> str:
    records = await push.store.read(pstore.load_all)
    return next(r.client_state for r in records if r.subscription_id == sub_id)
