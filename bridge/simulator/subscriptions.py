"""Change-notification subscriptions and webhook delivery (§19).

Owns: the subscription registry, the validation handshake (POST
``{url}?validationToken=...``, answer must echo the decoded token as text/plain within
10 s, §19.2), change notifications batched in ``value`` and POSTed asynchronously with
retries (§19.3), lifecycle events on demand (§19.4), and the drop/duplicate/delay fault
knobs. Webhook targets must be loopback; ``http://`` is accepted for loopback receivers
when ``SimConfig.allow_http_webhooks`` is set (real Graph requires https).
Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import re
import secrets
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from .context import Ctx, SimResponse
from .errors import GraphError, bad_request, invalid_user, mailbox_not_enabled
from .model import ChangeKind, MessageEvent, iso, parse_iso
from .odata import Clause, matches, parse_filter

log = logging.getLogger(__name__)

LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


@dataclass
class Subscription:
    id: str
    app_id: str
    tenant_id: str
    user_id: str
    folder_id: str | None
    resource: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: dt.datetime
    immutable: bool
    creator_id: str
    latest_tls: str = "v1_2"
    # §19.1: a $filter in the resource turns changes into enter (created) / leave (deleted)
    # / stay (updated) events; ``matching`` holds the keys currently inside the filter.
    clauses: list[Clause] | None = None
    matching: set[int] = field(default_factory=set)

    def classify(self, world: Any, event: MessageEvent) -> str | None:
        """The changeType this subscription reports for ``event`` (None: nothing)."""
        if self.clauses is None:
            return event.kind.value
        mb = world.mailboxes[self.user_id]
        m = mb.messages.get(event.key)
        now = (
            m is not None
            and event.kind is not ChangeKind.DELETED
            and self.in_scope(world, mb, event.folder_id)
            and matches(m, self.clauses)
        )
        before = event.key in self.matching
        if now:
            self.matching.add(event.key)
        else:
            self.matching.discard(event.key)
        if now and not before:
            return "created"
        if before and not now:
            return "deleted"
        if now:
            return "updated"
        return None

    def in_scope(self, world: Any, mb: Any, folder_id: str) -> bool:
        if self.folder_id is not None:
            return folder_id == self.folder_id
        folder = mb.folders.get(folder_id)
        return folder is not None and bool(world.in_ipm_subtree(mb, folder))

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": iso(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": self.latest_tls,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
            "notificationContentType": "application/json",
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook POST attempt (readable by tests through ``Simulator.deliveries``)."""

    url: str
    payload: dict[str, Any]
    status: int | None  # None → connection error / timeout
    at: dt.datetime


@dataclass
class _Queue:
    items: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class SubscriptionService:
    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self._lock = threading.Lock()
        self.subs: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self._queues: dict[str, _Queue] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle of the service --------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        ca = self.sim.config.webhook_ca_file
        return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl(), force_close=True)
            )
        return self._session

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- URL rules -----------------------------------------------------------------
    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http"):
            raise bad_request("The notification URL must be https.", "InvalidRequest")
        loopback = host == "localhost"
        try:
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        except ValueError:
            pass
        if not loopback:
            # The simulator only ever talks to loopback (project network rule).
            raise bad_request(
                "Subscription validation request failed. The simulator only delivers to "
                "loopback notification URLs.",
                "InvalidRequest",
            )
        if parts.scheme == "http" and not self.sim.config.allow_http_webhooks:
            raise bad_request("The notification URL must be https.", "InvalidRequest")

    async def validate(self, url: str) -> None:
        """§19.2 handshake."""
        self.check_url(url)
        token = (
            "Validation: Testing client application reachability for subscription Request-Id: "
            + str(uuid.uuid4())
        )
        sep = "&" if "?" in url else "?"
        target = f"{url}{sep}validationToken={quote(token, safe='')}"
        session = await self.session()
        try:
            async with session.post(
                target,
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.sim.config.validation_timeout),
            ) as resp:
                text = await resp.text()
                ok = resp.status == 200 and text == token
        except TimeoutError:
            raise GraphError(
                400, "InvalidRequest", "Subscription validation request timed out."
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise GraphError(
                400,
                "InvalidRequest",
                f"Subscription validation request failed. {type(exc).__name__}",
            ) from None
        if not ok:
            raise GraphError(
                400,
                "InvalidRequest",
                "Subscription validation request failed. Notification endpoint must respond "
                "with 200 OK to validation request.",
            )

    # -- change notifications -------------------------------------------------------
    def on_event(self, event: MessageEvent) -> None:
        """Called by the world (lock held, any thread) for every folder-level change."""
        loop = self.sim.loop
        if loop is None or not self.subs:
            return
        world = self.sim.world
        mb = world.mailboxes.get(event.mailbox_id)
        folder = mb.folders.get(event.folder_id) if mb else None
        if mb is None or folder is None:
            return
        now = world.now()
        for sub in list(self.subs.values()):
            if sub.user_id != event.mailbox_id:
                continue
            if sub.expiration <= now:
                self.subs.pop(sub.id, None)
                continue
            if sub.clauses is None and not sub.in_scope(world, mb, event.folder_id):
                continue
            kind = sub.classify(world, event)
            if kind is None or kind not in sub.change_types:
                continue
            ident = event.immutable_id if sub.immutable else event.rest_id
            note = {
                "id": secrets.token_urlsafe(9),
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": iso(sub.expiration),
                "clientState": sub.client_state,
                "changeType": kind,
                "resource": f"Users/{sub.user_id}/Messages/{ident}",
                "tenantId": sub.tenant_id,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": f"Users/{sub.user_id}/Messages/{ident}",
                    "@odata.etag": f'W/"{event.change_key}"',
                    "id": ident,
                },
            }
            faults = self.sim.faults
            if faults.chance(faults.notification_drop_rate):
                continue
            copies = 2 if faults.chance(faults.notification_duplicate_rate) else 1
            for _ in range(copies):
                loop.call_soon_threadsafe(self._enqueue, sub.notification_url, note)

    def _enqueue(self, url: str, note: dict[str, Any]) -> None:
        q = self._queues.setdefault(url, _Queue())
        q.items.append(note)
        if q.task is None or q.task.done():
            q.task = asyncio.get_running_loop().create_task(self._flush(url))
            self._tasks.add(q.task)
            q.task.add_done_callback(self._tasks.discard)

    async def _flush(self, url: str) -> None:
        # A short pause lets changes made together travel in one POST (§19.3 batching).
        await asyncio.sleep(max(0.02, self.sim.faults.notification_delay))
        q = self._queues[url]
        batch, q.items = q.items, []
        if batch:
            await self._post(url, {"value": batch})
        if q.items:
            await self._flush(url)

    async def _post(self, url: str, payload: dict[str, Any]) -> bool:
        delays = (0.0, *self.sim.config.notification_retry_delays)
        for delay in delays:
            if delay:
                await asyncio.sleep(delay)
            status: int | None = None
            try:
                session = await self.session()
                async with session.post(
                    url, json=payload, timeout=aiohttp.ClientTimeout(total=10)
                ) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                # The query string may carry the receiver's secret: log scheme/host/path only.
                safe = urlsplit(url)._replace(query="").geturl()
                log.debug("notification POST to %s failed: %s", safe, type(exc).__name__)
            self.deliveries.append(Delivery(url, payload, status, self.sim.world.now()))
            if status is not None and 200 <= status < 300:
                return True
        return False

    async def drain(self) -> None:
        """Wait until every queued notification and delivery attempt has finished."""
        while True:
            pending = [t for t in self._tasks if not t.done()]
            if not pending and not any(q.items for q in self._queues.values()):
                return
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.sleep(0)

    def lifecycle(self, sub_id: str, event: str) -> None:
        """Send a lifecycle event (thread-safe; delivery is asynchronous)."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {event!r}")
        with self._lock:
            sub = self.subs.get(sub_id)
            if sub is None:
                raise KeyError(sub_id)
            if event == "subscriptionRemoved":
                del self.subs[sub_id]
        payload = {
            "value": [
                {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": iso(sub.expiration),
                    "tenantId": sub.tenant_id,
                    "clientState": sub.client_state,
                    "lifecycleEvent": event,
                }
            ]
        }
        url = sub.lifecycle_url
        loop = self.sim.loop
        if url and loop is not None:
            loop.call_soon_threadsafe(lambda: self._spawn(self._post(url, payload)))


# ---------------------------------------------------------------- handlers

_RESOURCE = re.compile(
    r"^/?(?:users|Users)(?:/([^/()]+)|\('([^']+)'\))/"
    r"(?:(messages)|mailFolders(?:\('([^']+)'\)|/([^/]+))/messages)(\?.*)?$",
    re.I,
)


def _service(ctx: Ctx) -> SubscriptionService:
    return ctx.services.subscriptions  # type: ignore[no-any-return]


def _expiration(ctx: Ctx, raw: Any) -> dt.datetime:
    if not isinstance(raw, str):
        raise bad_request("expirationDateTime is required.", "InvalidRequest")
    try:
        when = parse_iso(raw)
    except ValueError:
        raise bad_request("Invalid expirationDateTime.", "InvalidRequest") from None
    now = ctx.world.now()
    cap = ctx.config.subscription_max_minutes
    if when <= now:
        raise bad_request("Subscription expiration can only be in the future.", "InvalidRequest")
    if when > now + dt.timedelta(minutes=cap):
        # §19.6: beyond the maximum lifetime → 400.
        raise bad_request(
            f"Subscription expiration can only be {cap} minutes in the future.", "InvalidRequest"
        )
    return when


async def create_subscription(ctx: Ctx) -> SimResponse:
    body = ctx.req.json()
    if not isinstance(body, dict):
        raise bad_request("Invalid request body.", "InvalidRequest")
    for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not body.get(required):
            raise bad_request(f"'{required}' is a required property.", "InvalidRequest")
    kinds = tuple(k.strip() for k in str(body["changeType"]).split(",") if k.strip())
    if not kinds or not set(kinds) <= {"created", "updated", "deleted"}:
        raise bad_request(f"Invalid changeType '{body['changeType']}'.", "InvalidRequest")
    resource = str(body["resource"])
    if resource.lstrip("/").lower().startswith("me/"):
        raise bad_request("/me request is only valid with delegated authentication flow.")
    m = _RESOURCE.match(resource)
    if not m:
        raise bad_request(f"Resource '{resource}' is not supported.", "InvalidRequest")
    user_ref = m.group(1) or m.group(2)
    folder_ref = m.group(4) or m.group(5)
    clauses = None
    if m.group(6):
        from urllib.parse import parse_qsl

        options = dict(parse_qsl(m.group(6)[1:], keep_blank_values=True))
        if "$filter" in options:
            clauses = parse_filter(options["$filter"])
    client_state = body.get("clientState")
    if client_state is not None and len(str(client_state)) > 128:
        raise bad_request("clientState must be at most 128 characters.", "InvalidRequest")
    expiration = _expiration(ctx, body["expirationDateTime"])
    svc = _service(ctx)
    world = ctx.world
    with world.lock:
        user = world.find_user(user_ref, ctx.app.tenant_id)
        if user is None:
            raise invalid_user(user_ref)
        if not user.has_mailbox:
            raise mailbox_not_enabled()
        folder_id = world.folder(world.mailbox(user.id), folder_ref).id if folder_ref else None
        count = sum(1 for s in svc.subs.values() if s.user_id == user.id)
        if count >= ctx.config.subscriptions_per_mailbox:
            raise GraphError(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: The mailbox has "
                "reached its maximum subscription limit.]",
            )
    url = str(body["notificationUrl"])
    lifecycle = body.get("lifecycleNotificationUrl")
    await svc.validate(url)
    if lifecycle:
        await svc.validate(str(lifecycle))
    sub = Subscription(
        id=str(uuid.uuid4()),
        app_id=ctx.app.client_id,
        tenant_id=ctx.app.tenant_id,
        user_id=user.id,
        folder_id=folder_id,
        resource=resource,
        change_types=kinds,
        notification_url=url,
        lifecycle_url=str(lifecycle) if lifecycle else None,
        client_state=str(client_state) if client_state is not None else None,
        expiration=expiration,
        immutable=ctx.immutable,
        creator_id=ctx.app.service_principal_id,
        latest_tls=str(body.get("latestSupportedTlsVersion") or "v1_2"),
        clauses=clauses,
    )
    if clauses is not None:
        with world.lock:
            mb = world.mailbox(user.id)
            sub.matching = {
                k
                for k, msg in mb.messages.items()
                if sub.in_scope(world, mb, msg.folder_id) and matches(msg, clauses)
            }
    with svc._lock:
        svc.subs[sub.id] = sub
    out = {"@odata.context": f"{ctx.graph_root}/$metadata#subscriptions/$entity", **sub.json()}
    return SimResponse.json(out, 201)


def _find(ctx: Ctx) -> Subscription:
    svc = _service(ctx)
    sub = svc.subs.get(ctx.params["s"])
    if sub is None or sub.app_id != ctx.app.client_id:
        raise GraphError(404, "ResourceNotFound", f"The object '{ctx.params['s']}' doesn't exist.")
    if sub.expiration <= ctx.world.now():
        svc.subs.pop(sub.id, None)
        raise GraphError(404, "ResourceNotFound", f"The object '{ctx.params['s']}' doesn't exist.")
    return sub


def list_subscriptions(ctx: Ctx) -> SimResponse:
    svc = _service(ctx)
    now = ctx.world.now()
    value = [
        s.json() for s in svc.subs.values() if s.app_id == ctx.app.client_id and s.expiration > now
    ]
    return SimResponse.json(
        {"@odata.context": f"{ctx.graph_root}/$metadata#subscriptions", "value": value}
    )


def get_subscription(ctx: Ctx) -> SimResponse:
    sub = _find(ctx)
    return SimResponse.json(
        {"@odata.context": f"{ctx.graph_root}/$metadata#subscriptions/$entity", **sub.json()}
    )


async def patch_subscription(ctx: Ctx) -> SimResponse:
    with ctx.world.lock:
        sub = _find(ctx)
    body = ctx.req.json()
    if not isinstance(body, dict):
        raise bad_request("Invalid request body.", "InvalidRequest")
    if "lifecycleNotificationUrl" in body:
        raise bad_request(
            "lifecycleNotificationUrl can only be set when the subscription is created.",
            "InvalidRequest",
        )
    for key in body:
        if key not in ("expirationDateTime", "notificationUrl"):
            raise bad_request(f"Property '{key}' cannot be updated.", "InvalidRequest")
    expiration = (
        _expiration(ctx, body["expirationDateTime"]) if "expirationDateTime" in body else None
    )
    if "notificationUrl" in body:
        await _service(ctx).validate(str(body["notificationUrl"]))
        sub.notification_url = str(body["notificationUrl"])
    if expiration is not None:
        sub.expiration = expiration
    return SimResponse.json(
        {"@odata.context": f"{ctx.graph_root}/$metadata#subscriptions/$entity", **sub.json()}
    )


def delete_subscription(ctx: Ctx) -> SimResponse:
    sub = _find(ctx)
    _service(ctx).subs.pop(sub.id, None)
    return SimResponse.empty(204)


def reauthorize(ctx: Ctx) -> SimResponse:
    _find(ctx)
    return SimResponse.empty(204)
