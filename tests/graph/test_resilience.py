"""Transport and protocol edge cases against the simulator: gateway time-outs on delta,
throttled inner batch requests, unreachable hosts, TLS trust, foreign nextLinks and
change-notification subscriptions."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from bridge.backend.remote import FlagChange, RemoteMessage, RemoteRejected, RemoteUnavailable
from bridge.graph import GraphApp, cloud_by_name
from tests.conftest import SimTenant
from tests.graph.conftest import Sleeps, secret_credentials, sim_cloud
from tests.graph.test_mailbox import _remote, mime


async def test_delta_gateway_timeout_halves_the_page(app: GraphApp, tenant: SimTenant) -> None:
    remote = app.remote(await app.resolve_mailbox(tenant.alice.upn), delta_page_size=40)
    for i in range(30):
        tenant.sim.deliver(tenant.alice, mime(i))
    inbox = (await remote.well_known_folders())["inbox"]
    tenant.sim.faults.fail_next("messages.delta", 1, 504)
    page = await remote.message_delta(inbox, None)
    assert len(page.messages) == 20  # 40 → 20 after one 504 (facts §4.2)


async def test_throttled_inner_batch_requests_are_retried(
    app: GraphApp, tenant: SimTenant, sleeps: Sleeps
) -> None:
    remote = await _remote(app, tenant)
    ids = [tenant.sim.deliver(tenant.alice, mime(i)) for i in range(5)]
    tenant.sim.faults.fail_next("message.update", 2, 429, retry_after=4)
    results = await remote.update_flags([FlagChange(i, flagged=True) for i in ids])
    assert all(isinstance(r, RemoteMessage) and r.flagged for r in results.values())
    assert sleeps == [4.0]
    assert app.stats(remote.mailbox.id).throttled == 2


async def test_request_id_is_reported(app: GraphApp, tenant: SimTenant) -> None:
    remote = await _remote(app, tenant)
    result = await remote.send_mime(mime("rid", sender=tenant.alice.upn, to=tenant.bob.upn))
    assert result.request_id


async def test_unreachable_login_host_is_a_network_sentence(tenant: SimTenant) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cloud = cloud_by_name(
        "custom",
        login_url=f"https://127.0.0.1:{port}",
        graph_url=f"https://127.0.0.1:{port}",
        ca_file=str(tenant.sim.ca_file),
    )
    graph = GraphApp(cloud, secret_credentials(tenant))
    try:
        with pytest.raises(RemoteUnavailable, match=r"Cannot reach 127\.0\.0\.1.*proxy"):
            await graph.token_roles()
    finally:
        await graph.aclose()


async def test_untrusted_certificate_says_so(tenant: SimTenant) -> None:
    cs = tenant.cloud_settings()
    cloud = cloud_by_name("custom", login_url=cs["login_url"], graph_url=cs["graph_url"])
    graph = GraphApp(cloud, secret_credentials(tenant))
    try:
        with pytest.raises(RemoteUnavailable, match="not trusted"):
            await graph.token_roles()
    finally:
        await graph.aclose()


async def test_configured_ca_wins_over_ca_environment_variables(
    tenant: SimTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Facts §1.2: REQUESTS_CA_BUNDLE would override a requests Session's verify.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")
    graph = GraphApp(sim_cloud(tenant), secret_credentials(tenant))
    try:
        mailbox = await graph.resolve_mailbox(tenant.alice.upn)
        assert mailbox.id == tenant.alice.id
    finally:
        await graph.aclose()


async def test_token_never_goes_to_a_foreign_host(app: GraphApp) -> None:
    with pytest.raises(RemoteRejected, match="foreign host"):
        await app.request("GET", "https://graph.example.invalid/v1.0/users", mailbox=None)


@pytest.fixture
async def webhook() -> AsyncIterator[str]:
    """A loopback notification endpoint that passes the validation handshake (§19.2)."""

    async def receive(request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            return web.Response(text=token, content_type="text/plain")
        return web.Response(status=202)

    server = web.Application()
    server.router.add_post("/notify", receive)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/notify"
    finally:
        await runner.cleanup()


async def test_subscription_lifecycle(app: GraphApp, tenant: SimTenant, webhook: str) -> None:
    remote = await _remote(app, tenant)
    expires = datetime.now(UTC) + timedelta(hours=2)
    sub = await remote.create_subscription(
        webhook, webhook, "state-123", expires, folder_id="inbox"
    )
    assert sub.client_state == "state-123"
    assert abs((sub.expires - expires).total_seconds()) < 2
    assert [s.id for s in tenant.sim.subscription_list()].count(sub.id) == 1
    later = expires + timedelta(hours=1)
    renewed = await remote.renew_subscription(sub.id, later)
    assert abs((renewed.expires - later).total_seconds()) < 2
    await remote.reauthorize_subscription(sub.id)
    await remote.delete_subscription(sub.id)
    assert sub.id not in [s.id for s in tenant.sim.subscription_list()]
