"""$batch (§18), throttling and counters (§4), fault injection."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

import httpx
import pytest

from .conftest import Graph, token_for
from .test_messages import IMMUTABLE, mime

if TYPE_CHECKING:
    from tests.conftest import SimTenant


def test_batch_basic_and_depends_on(graph: Graph) -> None:
    t = graph.t
    mid = t.sim.deliver(t.alice, mime("batched"))
    u = f"/users/{t.alice.id}"
    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"{u}/mailFolders/inbox"},
            {
                "id": "2",
                "method": "PATCH",
                "url": f"{u}/messages/{mid}",
                "body": {"isRead": True},
                "headers": {"Content-Type": "application/json", "Prefer": 'IdType="ImmutableId"'},
            },
            {"id": "3", "method": "GET", "url": f"{u}/messages/nope", "dependsOn": []},
            {"id": "4", "method": "GET", "url": f"{u}/mailFolders", "dependsOn": ["3"]},
            {"id": "5", "method": "GET", "url": f"{u}/messages/{mid}/$value", "dependsOn": ["2"]},
        ]
    }
    r = graph.post("/$batch", json=body)
    assert r.status_code == 200
    res = {x["id"]: x for x in r.json()["responses"]}
    assert res["1"]["status"] == 200 and res["1"]["body"]["displayName"] == "Inbox"
    assert res["2"]["status"] == 200 and res["2"]["body"]["id"] == mid
    assert res["2"]["body"]["isRead"] is True
    assert res["3"]["status"] == 404 and res["3"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert res["4"]["status"] == 424
    assert res["5"]["status"] == 200
    assert res["5"]["body"]  # base64 of the MIME
    assert "request-id" in res["1"]["headers"]


def test_batch_validation(graph: Graph) -> None:
    u = f"/users/{graph.t.alice.id}"
    too_many = {
        "requests": [{"id": str(i), "method": "GET", "url": f"{u}/mailFolders"} for i in range(21)]
    }
    assert graph.post("/$batch", json=too_many).status_code == 400
    dup = {
        "requests": [
            {"id": "a", "method": "GET", "url": f"{u}/mailFolders"},
            {"id": "A", "method": "GET", "url": f"{u}/mailFolders"},
        ]
    }
    assert graph.post("/$batch", json=dup).status_code == 400
    absolute = {"requests": [{"id": "1", "method": "GET", "url": f"{graph.root}{u}/mailFolders"}]}
    assert graph.post("/$batch", json=absolute).status_code == 400
    no_ct = {"requests": [{"id": "1", "method": "PATCH", "url": f"{u}/messages/x", "body": {}}]}
    assert graph.post("/$batch", json=no_ct).status_code == 400


def test_batch_inner_throttling(graph: Graph) -> None:
    t = graph.t
    t.sim.faults.fail_next("folder.get", 1, 429, retry_after=7)
    u = f"/users/{t.alice.id}"
    body = {"requests": [{"id": "1", "method": "GET", "url": f"{u}/mailFolders/inbox"}]}
    r = graph.post("/$batch", json=body)
    assert r.status_code == 200
    [inner] = r.json()["responses"]
    assert inner["status"] == 429 and inner["headers"]["Retry-After"] == "7"


async def _fire(t: SimTenant, token: str, n: int) -> list[httpx.Response]:
    ctx = ssl.create_default_context(cafile=str(t.sim.ca_file))
    url = f"{t.sim.base_url}/v1.0/users/{t.alice.id}/mailFolders/inbox"
    async with httpx.AsyncClient(verify=ctx, timeout=30) as c:
        return list(
            await asyncio.gather(
                *(c.get(url, headers={"Authorization": f"Bearer {token}"}) for _ in range(n))
            )
        )


async def test_concurrency_limit_and_counters(tenant: SimTenant) -> None:
    sim = tenant.sim
    token = await asyncio.to_thread(token_for, tenant)
    sim.reset_counters(tenant.alice)
    sim.faults.latency = 0.4
    responses = await _fire(tenant, token, 6)
    sim.faults.latency = 0.0
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 4 and statuses.count(429) == 2
    for r in responses:
        if r.status_code == 429:
            err = r.json()["error"]
            assert err["code"] == "ApplicationThrottled"
            assert err["message"] == "Application is over its MailboxConcurrency limit."
            assert float(r.headers["Retry-After"]) > 0
    c = sim.counters(tenant.alice)
    # A refused request is not kept in flight: 4 admitted + 1 refused at a time.
    assert c.requests == 6 and c.max_concurrency == 5 and c.throttled == 2
    assert c.by_kind == {"GET folder.get": 6}
    sim.reset_counters(tenant.alice)
    assert sim.counters(tenant.alice).requests == 0
    # Sequential requests never exceed one in flight.
    for _ in range(3):
        await _fire(tenant, token, 1)
    assert sim.counters(tenant.alice).max_concurrency == 1


def test_request_budget(graph: Graph) -> None:
    throttle = graph.t.sim.throttle
    old = throttle.budget
    throttle.budget = 3
    try:
        codes = [
            graph.get(f"/users/{graph.t.alice.id}/mailFolders/inbox").status_code for _ in range(4)
        ]
        r = graph.get(f"/users/{graph.t.alice.id}/mailFolders/inbox")
    finally:
        throttle.budget = old
    assert codes == [200, 200, 200, 429]
    assert r.status_code == 429 and float(r.headers["Retry-After"]) >= 1
    # Another mailbox has its own budget.
    assert graph.get(f"/users/{graph.t.bob.id}/mailFolders/inbox").status_code == 200


def test_injected_errors(graph: Graph) -> None:
    t = graph.t
    path = f"/users/{t.alice.id}/mailFolders/inbox"
    t.sim.faults.error_rate = 1.0
    r = graph.get(path)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "serviceNotAvailable"
    t.sim.faults.error_status = 504
    r = graph.get(path)
    assert r.status_code == 504 and "Retry-After" not in r.headers
    t.sim.faults.error_rate = 0.0
    t.sim.faults.fail_next("folder.get", 2, 500)
    assert [graph.get(path).status_code for _ in range(3)] == [500, 500, 200]
    t.sim.faults.fail_next("message*", 1, 503)
    assert graph.get(f"/users/{t.alice.id}/messages").status_code == 503
    assert graph.get(f"/users/{t.alice.id}/messages").status_code == 200


def test_connection_reset(graph: Graph) -> None:
    graph.t.sim.faults.reset_rate = 1.0
    with pytest.raises(httpx.TransportError):
        graph.get(f"/users/{graph.t.alice.id}/mailFolders/inbox")
    graph.t.sim.faults.reset_rate = 0.0
    assert graph.get(f"/users/{graph.t.alice.id}/mailFolders/inbox").status_code == 200


def test_latency_is_applied(graph: Graph) -> None:
    import time

    graph.t.sim.faults.latency = 0.2
    start = time.monotonic()
    graph.get(f"/users/{graph.t.alice.id}/mailFolders/inbox", headers=IMMUTABLE)
    assert time.monotonic() - start >= 0.2


def test_faults_at_construction_and_knob_validation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bridge.simulator import Faults, Simulator

    sim = Simulator(
        state_dir=tmp_path, persist=False, faults=Faults(error_rate=1.0, error_status=504, seed=7)
    )
    sim.start()
    try:
        t = sim.add_tenant("faulty.example")
        app = sim.add_app(t.id)
        u = sim.add_user(t.id, "f@faulty.example")
        ctx = ssl.create_default_context(cafile=str(sim.ca_file))
        with httpx.Client(verify=ctx) as c:
            tok = c.post(
                f"{sim.base_url}/{t.id}/oauth2/v2.0/token",
                data={
                    "client_id": app.client_id,
                    "client_secret": app.secret,
                    "grant_type": "client_credentials",
                    "scope": f"{sim.graph_url}/.default",
                },
            ).json()["access_token"]
            r = c.get(
                f"{sim.base_url}/v1.0/users/{u.id}/messages",
                headers={"Authorization": f"Bearer {tok}"},
            )
        # Token endpoint is unaffected; Graph answers with the configured fault.
        assert r.status_code == 504
        with pytest.raises(AttributeError):
            sim.set_faults(not_a_knob=1)
        sim.set_faults(jitter=0.05, latency=0.0, error_rate=0.0)
        assert sim.faults.jitter == 0.05
        assert all(0.0 <= sim.faults.delay() <= 0.05 for _ in range(20))
    finally:
        sim.stop()


def test_malformed_bodies_are_400_not_500(graph: Graph) -> None:
    t = graph.t
    mb = f"/users/{t.alice.id}"
    mid = t.sim.deliver(t.alice, mime("x"))
    assert graph.patch(f"{mb}/messages/{mid}", json={"categories": 5}).status_code == 400
    assert (
        graph.post(f"{mb}/messages", json={"internetMessageHeaders": {"a": 1}}).status_code == 400
    )
    assert graph.post(f"{mb}/messages", json={"attachments": "nope"}).status_code == 400
    assert graph.post(f"{mb}/messages", json=["not", "an", "object"]).status_code == 400
    r = graph.post(
        f"{mb}/messages", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "UnableToDeserializePostBody"
    assert graph.post(f"{mb}/mailFolders", json={"displayName": ""}).status_code == 400
