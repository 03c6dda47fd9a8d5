"""Subscriptions and webhooks (§19), with a real aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trustme
from aiohttp import web

from bridge.simulator import Simulator

from .conftest import token_for
from .test_messages import mime

if TYPE_CHECKING:
    from tests.conftest import SimTenant


@dataclass
class Receiver:
    url: str
    validations: list[str] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    lifecycle: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    echo_wrong: bool = False
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, pred: Any, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not pred():
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            rec.validations.append(token)
            return web.Response(
                text=token + ("x" if rec.echo_wrong else ""), content_type="text/plain"
            )
        body = await request.json()
        if rec.fail_next:
            rec.fail_next -= 1
            rec.event.set()
            return web.Response(status=503)
        target = rec.lifecycle if request.path.endswith("/lifecycle") else rec.notifications
        target.extend(body["value"])
        rec.event.set()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/notify", handle)
    app.router.add_post("/lifecycle", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


def _expiry(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).strftime(
        "%Y-%m-%dT%H:%M:%S.0000000Z"
    )


async def _client(t: SimTenant) -> tuple[httpx.AsyncClient, dict[str, str]]:
    token = await asyncio.to_thread(token_for, t)
    ctx = ssl.create_default_context(cafile=str(t.sim.ca_file))
    return httpx.AsyncClient(verify=ctx, timeout=30), {"Authorization": f"Bearer {token}"}


async def _subscribe(
    c: httpx.AsyncClient,
    h: dict[str, str],
    t: SimTenant,
    rec: Receiver,
    resource: str,
    **extra: Any,
) -> httpx.Response:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": f"{rec.url}/notify",
        "lifecycleNotificationUrl": f"{rec.url}/lifecycle",
        "resource": resource,
        "expirationDateTime": _expiry(60),
        "clientState": "s3cret",
        **extra,
    }
    return await c.post(f"{t.sim.base_url}/v1.0/subscriptions", json=body, headers=h)


async def test_create_validate_and_notify(tenant: SimTenant, receiver: Receiver) -> None:
    t = tenant
    c, h = await _client(t)
    async with c:
        resource = f"users/{t.alice.id}/mailFolders('inbox')/messages"
        r = await _subscribe(c, h, t, receiver, resource)
        assert r.status_code == 201, r.text
        sub = r.json()
        assert sub["clientState"] == "s3cret"
        assert sub["applicationId"] == t.app.client_id
        assert sub["changeType"] == "created,updated,deleted"
        assert len(receiver.validations) == 2  # notification + lifecycle URLs
        assert receiver.validations[0].startswith(
            "Validation: Testing client application reachability"
        )
        mid = t.sim.deliver(t.alice, mime("ping"))
        t.sim.set_read(t.alice, mid, True)
        await receiver.wait(lambda: len(receiver.notifications) >= 2)
        kinds = [n["changeType"] for n in receiver.notifications]
        assert kinds[:2] == ["created", "updated"]
        n = receiver.notifications[0]
        assert n["subscriptionId"] == sub["id"]
        assert n["clientState"] == "s3cret"
        assert n["tenantId"] == t.tenant.id
        assert n["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"
        # A change in another folder is not reported to a folder subscription.
        before = len(receiver.notifications)
        t.sim.deliver(t.alice, mime("elsewhere"), folder="archive")
        t.sim.move(t.alice, mid, "archive")
        await receiver.wait(
            lambda: any(x["changeType"] == "deleted" for x in receiver.notifications)
        )
        assert all(x["changeType"] == "deleted" for x in receiver.notifications[before:])
        # GET, list, PATCH renew, DELETE.
        got = await c.get(f"{t.sim.base_url}/v1.0/subscriptions/{sub['id']}", headers=h)
        assert got.status_code == 200 and got.json()["id"] == sub["id"]
        listed = await c.get(f"{t.sim.base_url}/v1.0/subscriptions", headers=h)
        assert [s["id"] for s in listed.json()["value"]] == [sub["id"]]
        new_exp = _expiry(120)
        p = await c.patch(
            f"{t.sim.base_url}/v1.0/subscriptions/{sub['id']}",
            json={"expirationDateTime": new_exp},
            headers=h,
        )
        assert p.status_code == 200 and p.json()["expirationDateTime"] == new_exp[:19] + "Z"
        too_long = await c.patch(
            f"{t.sim.base_url}/v1.0/subscriptions/{sub['id']}",
            json={"expirationDateTime": _expiry(4231)},
            headers=h,
        )
        assert too_long.status_code == 400
        d = await c.delete(f"{t.sim.base_url}/v1.0/subscriptions/{sub['id']}", headers=h)
        assert d.status_code == 204
        gone = await c.get(f"{t.sim.base_url}/v1.0/subscriptions/{sub['id']}", headers=h)
        assert gone.status_code == 404


async def test_whole_mailbox_subscription_and_immutable_ids(
    tenant: SimTenant, receiver: Receiver
) -> None:
    t = tenant
    c, h = await _client(t)
    async with c:
        h2 = {**h, "Prefer": 'IdType="ImmutableId"'}
        r = await c.post(
            f"{t.sim.base_url}/v1.0/subscriptions",
            json={
                "changeType": "created",
                "notificationUrl": f"{receiver.url}/notify",
                "resource": f"users/{t.alice.id}/messages",
                "expirationDateTime": _expiry(30),
                "clientState": "c",
            },
            headers=h2,
        )
        assert r.status_code == 201
        a = t.sim.deliver(t.alice, mime("one"))
        b = t.sim.deliver(t.alice, mime("two"), folder="archive")
        await receiver.wait(lambda: len(receiver.notifications) >= 2)
        assert {n["resourceData"]["id"] for n in receiver.notifications} == {a, b}


async def test_validation_failures_and_limits(tenant: SimTenant, receiver: Receiver) -> None:
    t = tenant
    c, h = await _client(t)
    async with c:
        receiver.echo_wrong = True
        r = await _subscribe(c, h, t, receiver, f"users/{t.alice.id}/messages")
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "InvalidRequest"
        assert r.json()["error"]["message"].startswith("Subscription validation request failed.")
        receiver.echo_wrong = False
        r = await _subscribe(
            c, h, t, receiver, f"users/{t.alice.id}/messages", expirationDateTime=_expiry(4231)
        )
        assert r.status_code == 400
        r = await _subscribe(c, h, t, receiver, "me/messages")
        assert r.status_code == 400
        r = await _subscribe(
            c, h, t, receiver, f"users/{t.alice.id}/messages", clientState="x" * 129
        )
        assert r.status_code == 400
        # Non-loopback URLs are never contacted.
        r = await c.post(
            f"{t.sim.base_url}/v1.0/subscriptions",
            json={
                "changeType": "created",
                "notificationUrl": "https://bridge.example.com/notify",
                "resource": f"users/{t.alice.id}/messages",
                "expirationDateTime": _expiry(30),
            },
            headers=h,
        )
        assert r.status_code == 400


async def test_retry_duplicate_and_lifecycle(tenant: SimTenant, receiver: Receiver) -> None:
    t = tenant
    c, h = await _client(t)
    async with c:
        r = await _subscribe(c, h, t, receiver, f"users/{t.alice.id}/messages")
        sub_id = r.json()["id"]
        receiver.fail_next = 1
        t.sim.deliver(t.alice, mime("retry me"))
        await receiver.wait(lambda: len(receiver.notifications) >= 1)

        def statuses() -> list[int | None]:
            return [
                d.status
                for d in t.sim.deliveries()
                if d.payload["value"][0].get("subscriptionId") == sub_id
            ]

        # The simulator records an attempt after reading the receiver's answer.
        for _ in range(500):
            if len(statuses()) >= 2:
                break
            await asyncio.sleep(0.01)
        assert statuses()[:2] == [503, 202]
        t.sim.faults.notification_duplicate_rate = 1.0
        mid = t.sim.deliver(t.alice, mime("twice"))
        await receiver.wait(
            lambda: (
                sum(1 for n in receiver.notifications if n["resourceData"]["id"].startswith("AAMk"))
                >= 3
            )
        )
        t.sim.faults.notification_duplicate_rate = 0.0
        ids = [n["resourceData"]["id"] for n in receiver.notifications]
        assert len(ids) == 3 and ids[1] == ids[2]
        assert mid not in ids  # REST ids: the subscription was created without ImmutableId
        t.sim.faults.notification_drop_rate = 1.0
        t.sim.deliver(t.alice, mime("dropped"))
        t.sim.faults.notification_drop_rate = 0.0
        await asyncio.to_thread(t.sim.wait_notifications)
        t.sim.lifecycle(sub_id, "reauthorizationRequired")
        await receiver.wait(lambda: len(receiver.lifecycle) >= 1)
        assert len(receiver.notifications) == 3
        assert receiver.lifecycle[0]["lifecycleEvent"] == "reauthorizationRequired"
        assert receiver.lifecycle[0]["clientState"] == "s3cret"
        re = await c.post(f"{t.sim.base_url}/v1.0/subscriptions/{sub_id}/reauthorize", headers=h)
        assert re.status_code == 204
        t.sim.lifecycle(sub_id, "subscriptionRemoved")
        await receiver.wait(lambda: len(receiver.lifecycle) >= 2)
        assert receiver.lifecycle[1]["lifecycleEvent"] == "subscriptionRemoved"
        gone = await c.get(f"{t.sim.base_url}/v1.0/subscriptions/{sub_id}", headers=h)
        assert gone.status_code == 404


async def test_validation_timeout(tenant: SimTenant) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(text=request.query.get("validationToken", ""))

    app = web.Application()
    app.router.add_post("/notify", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    old = tenant.sim.config.validation_timeout
    tenant.sim.config.validation_timeout = 0.3
    try:
        c, h = await _client(tenant)
        async with c:
            r = await c.post(
                f"{tenant.sim.base_url}/v1.0/subscriptions",
                json={
                    "changeType": "created",
                    "notificationUrl": f"http://127.0.0.1:{port}/notify",
                    "resource": f"users/{tenant.alice.id}/messages",
                    "expirationDateTime": _expiry(30),
                },
                headers=h,
            )
    finally:
        tenant.sim.config.validation_timeout = old
        await runner.cleanup()
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Subscription validation request timed out."


async def test_https_webhook_verified_against_configured_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "webhook-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    seen: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        if "validationToken" in request.query:
            return web.Response(text=request.query["validationToken"])
        seen.extend((await request.json())["value"])
        got.set()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/notify", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sim = Simulator(state_dir=tmp_path / "sim", webhook_ca_file=ca_file, allow_http_webhooks=False)
    await asyncio.to_thread(sim.start)
    try:
        tn = sim.add_tenant("hooks.example")
        app_h = sim.add_app(tn.id, roles=("Mail.Read",))
        user = sim.add_user(tn.id, "h@hooks.example")
        ctx = ssl.create_default_context(cafile=str(sim.ca_file))
        async with httpx.AsyncClient(verify=ctx, timeout=30) as c:
            tok = await c.post(
                f"{sim.base_url}/{tn.id}/oauth2/v2.0/token",
                data={
                    "client_id": app_h.client_id,
                    "client_secret": app_h.secret,
                    "grant_type": "client_credentials",
                    "scope": f"{sim.graph_url}/.default",
                },
            )
            h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
            body = {
                "changeType": "created",
                "notificationUrl": f"https://127.0.0.1:{port}/notify",
                "resource": f"users/{user.id}/mailFolders('inbox')/messages",
                "expirationDateTime": _expiry(30),
                "clientState": "tls",
            }
            r = await c.post(f"{sim.base_url}/v1.0/subscriptions", json=body, headers=h)
            assert r.status_code == 201, r.text
            insecure = {**body, "notificationUrl": f"http://127.0.0.1:{port}/notify"}
            r2 = await c.post(f"{sim.base_url}/v1.0/subscriptions", json=insecure, headers=h)
            assert r2.status_code == 400
        sim.deliver(user, mime("over tls"))
        await asyncio.wait_for(got.wait(), 10)
        assert seen[0]["clientState"] == "tls" and seen[0]["changeType"] == "created"
    finally:
        await asyncio.to_thread(sim.stop)
        await runner.cleanup()


async def test_expired_subscription_disappears(tenant: SimTenant, receiver: Receiver) -> None:
    t = tenant
    c, h = await _client(t)
    async with c:
        r = await _subscribe(c, h, t, receiver, f"users/{t.alice.id}/messages")
        sub_id = r.json()["id"]
        t.sim.expire_subscription(sub_id)
        gone = await c.get(f"{t.sim.base_url}/v1.0/subscriptions/{sub_id}", headers=h)
        assert gone.status_code == 404
        listed = await c.get(f"{t.sim.base_url}/v1.0/subscriptions", headers=h)
        assert listed.json()["value"] == []


async def test_filtered_subscription_enter_leave_semantics(
    tenant: SimTenant, receiver: Receiver
) -> None:
    t = tenant
    c, h = await _client(t)
    async with c:
        resource = f"users/{t.alice.id}/mailFolders('inbox')/messages?$filter=isRead eq false"
        r = await _subscribe(c, h, t, receiver, resource)
        assert r.status_code == 201, r.text
        assert r.json()["resource"] == resource
        mid = t.sim.deliver(t.alice, mime("filtered"))  # enters the filter
        await receiver.wait(lambda: len(receiver.notifications) >= 1)
        t.sim.set_flag(t.alice, mid, True)  # stays inside
        await receiver.wait(lambda: len(receiver.notifications) >= 2)
        t.sim.set_read(t.alice, mid, True)  # leaves
        await receiver.wait(lambda: len(receiver.notifications) >= 3)
        t.sim.set_flag(t.alice, mid, False)  # outside: nothing
        t.sim.set_read(t.alice, mid, False)  # enters again
        await receiver.wait(lambda: len(receiver.notifications) >= 4)
        kinds = [n["changeType"] for n in receiver.notifications]
        assert kinds == ["created", "updated", "deleted", "created"]
        bad = await _subscribe(
            c, h, t, receiver, f"users/{t.alice.id}/messages?$filter=nonsense gt 1"
        )
        assert bad.status_code == 400
