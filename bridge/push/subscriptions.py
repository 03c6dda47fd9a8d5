"""``SubscriptionManager``: the Graph subscriptions behind the bridge's webhooks.

Theory of operation
-------------------
Each account gets ONE subscription on its whole mailbox, ``users/{mailbox-object-id}/
messages`` (GRAPH-MAIL-FACTS §19.1: the resource covers all folders; the object id, not
the UPN). One per account rather than one per folder keeps the count far below the
1,000-per-mailbox limit and needs no new subscription when folders appear; the price is
that a notification does not name its folder, which ``locate`` recovers (see
``bridge.push.dispatch``).

- **Create** (``add_account``): a fresh ``clientState`` secret per subscription
  (``secrets.token_urlsafe(32)``, 43 characters ≤ the 128 allowed, §19.1), expiry
  ``lifetime_minutes`` ahead (≤ 4,200, valid under both documented maxima, §19.6),
  change types created/updated/deleted, and a ``lifecycleNotificationUrl`` (settable only
  at creation, §19.1). Graph validates both URLs before answering 201 (§19.2); when it
  cannot reach them the account is marked ``UNREACHABLE``, one sentence is logged, and
  ``webhooks_healthy`` answers False so the sync engine keeps polling fast. Creation is
  retried every ``retry_minutes``.
- **Persist**: every subscription is a row of ``push_subscriptions`` (``bridge.push.
  store``), written before it is used. After a restart ``add_account`` finds the row and
  renews it with a PATCH, which both proves it still exists and extends it; only a 404
  leads to a new subscription, so restarts never pile up duplicates.
- **Renew** (``tick``): when no more than ``renew_fraction`` of the granted lifetime is
  left, PATCH a new expiry (§19.5). A 400 that mentions the expiration means the service
  caps lifetimes lower than we asked (§19.6): retry with the cap Graph names, or half.
  A 404 means Graph dropped it (expired, §19.5): create a new one and resync the account,
  because notifications between the two were lost.
- **Lifecycle** (§19.4): ``reauthorizationRequired`` → ``POST …/reauthorize`` (never also
  a PATCH within minutes, §19.4 [3P]); ``subscriptionRemoved`` → a new subscription and a
  full resync; ``missed`` → a full resync (one subscription covers the mailbox, so the
  affected folders are unknown).
- **Remove** (``remove_account``/``retain_accounts``): delete the subscription in Graph,
  then the row. If Graph is unreachable the row stays and ``tick`` tries again; until
  then notifications for it are acknowledged and ignored.

Notifications arrive through ``bridge.push.receiver``, which calls ``verify`` (known
subscription id and ``clientState`` equal, compared with ``hmac.compare_digest``) and
then ``message_changed``/``lifecycle``; both return at once, the work runs in background
tasks. A notification can arrive for a subscription whose create call has not returned
yet (Graph sends as soon as it exists); while a create is in flight unknown ids are
parked and judged when it completes.

Time comes from ``clock`` (UTC datetimes); nothing here sleeps except the optional
background loop started by ``start``, so tests drive renewals with ``tick()``.

Imports: the standard library, ``bridge.graph`` (``GraphApp``), ``bridge.backend.remote``,
``bridge.store`` and ``bridge.push``. Never aiohttp (that is ``receiver``'s job), never
imap/smtp.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.backend.remote import (
    Remote,
    RemoteError,
    RemoteMailbox,
    RemoteNotFound,
    RemoteRejected,
    Subscription,
)
from bridge.graph.client import GraphApp
from bridge.push import store as pstore
from bridge.push.dispatch import ChangeDispatcher, ChangeKind, OnChange
from bridge.push.store import SubscriptionRecord
from bridge.store import Store

log = logging.getLogger(__name__)

NOTIFICATION_PATH = "/oauth/msg/notification"
LIFECYCLE_PATH = "/oauth/msg/lifecycle"
MAX_LIFETIME_MINUTES = 4200  # facts §19.6: valid under both documented maxima
MIN_LIFETIME_MINUTES = 45  # facts §19.6 [3P]: shorter requests may be refused
CHANGE_TYPES = "created,updated,deleted"
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_MAX_PARKED = 200
_MAX_WARNED = 1000
REJECT_LOG_INTERVAL = timedelta(minutes=1)

GraphAppForAccount = Callable[[str], Awaitable[GraphApp]]
HealthCallback = Callable[[str, bool], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebhookHealth(enum.Enum):
    PENDING = "pending"  # no attempt finished yet
    ACTIVE = "active"  # a live subscription; notifications are expected
    UNREACHABLE = "unreachable"  # Graph's validation request could not reach our URL
    FAILED = "failed"  # another error; creation is retried at the next turn


@dataclass(slots=True)
class _Account:
    account_id: str
    mailbox: RemoteMailbox
    health: WebhookHealth = WebhookHealth.PENDING
    retry_at: datetime | None = None
    failures: int = 0
    graph: GraphApp | None = None
    remote: Remote | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _is_validation_failure(exc: RemoteError) -> bool:
    # Facts §19.2: 400 InvalidRequest "Subscription validation request failed/timed out."
    text = str(exc).lower()
    return isinstance(exc, RemoteRejected) and "validation request" in text


def _is_expiration_refusal(exc: RemoteError) -> bool:
    text = str(exc).lower()
    return isinstance(exc, RemoteRejected) and exc.status == 400 and "expiration" in text


_MINUTES = re.compile(r"(\d+)\s*minutes")


def _shorter(current: int, exc: RemoteError) -> int:
    """The next lifetime to try after Graph refused ``current`` minutes (facts §19.6)."""
    named = [int(m) for m in _MINUTES.findall(str(exc))]
    cap = min(named) - 1 if named else 0
    candidate = cap if 0 < cap < current else current // 2
    return max(MIN_LIFETIME_MINUTES, candidate)


def _safe(text: object, limit: int = 80) -> str:
    """An untrusted value fit for one log line (no control characters, bounded)."""
    value = str(text)
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value[:limit])
    return cleaned + ("…" if len(value) > limit else "")


class SubscriptionManager:
    """Owns every account's Graph subscription and the verification of notifications."""

    def __init__(
        self,
        store: Store,
        graph_app_for_account: GraphAppForAccount,
        public_url: str,
        on_change: OnChange,
        *,
        clock: Callable[[], datetime] = _utcnow,
        lifetime_minutes: int = MAX_LIFETIME_MINUTES,
        renew_fraction: float = 0.5,
        debounce: float = 0.5,
        fallback_poll_seconds: float = 30.0,
        retry_minutes: float = 15.0,
        tick_seconds: float = 60.0,
        max_lookups: int = 8,
        maintenance_concurrency: int = 8,
        on_health: HealthCallback | None = None,
    ) -> None:
        if not 0 < renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        self.store = store
        self._graph_for = graph_app_for_account
        self.public_url = public_url.rstrip("/")
        self._clock = clock
        self.lifetime_minutes = max(
            MIN_LIFETIME_MINUTES, min(MAX_LIFETIME_MINUTES, lifetime_minutes)
        )
        self.renew_fraction = renew_fraction
        self.fallback_poll_seconds = fallback_poll_seconds
        self.retry_minutes = retry_minutes
        self.tick_seconds = tick_seconds
        self.maintenance_concurrency = max(1, maintenance_concurrency)
        self._on_health = on_health
        self.dispatcher = ChangeDispatcher(
            on_change, self.locate, debounce=debounce, max_lookups=max_lookups
        )
        self._accounts: dict[str, _Account] = {}
        self._records: dict[str, SubscriptionRecord] = {}
        self._removed: set[str] = set()
        self._creating = 0
        self._parked: list[tuple[str, str, ChangeKind, str]] = []
        self._warned: dict[tuple[str, str, str], tuple[datetime, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._loaded = False
        # Metrics (plain attributes; read by /metrics and tests).
        self.notifications_received = 0
        self.notifications_accepted = 0
        self.notifications_rejected = 0
        self.lifecycle_received = 0
        self.subscriptions_created = 0
        self.subscriptions_renewed = 0
        self.subscriptions_deleted = 0
        self.renewal_failures = 0
        self.reauthorizations = 0

    # -- URLs --------------------------------------------------------------------------
    @property
    def notification_url(self) -> str:
        return self.public_url + NOTIFICATION_PATH

    @property
    def lifecycle_url(self) -> str:
        return self.public_url + LIFECYCLE_PATH

    @staticmethod
    def resource_for(mailbox: RemoteMailbox) -> str:
        # Facts §19.1: the whole mailbox, by object id, without the base URL.
        return f"users/{mailbox.id}/messages"

    # -- lifecycle of the manager -------------------------------------------------------
    async def load(self) -> None:
        """Read the subscriptions a previous run left (idempotent)."""
        if self._loaded:
            return
        records = await self.store.read(pstore.load_all)
        self._records = {r.subscription_id: r for r in records}
        self._loaded = True

    async def start(self, *, background: bool = True) -> None:
        """Load state and start the dispatcher (and, with ``background``, the renewal
        loop that calls ``tick`` every ``tick_seconds``)."""
        await self.load()
        self.dispatcher.start()
        if background and self._loop_task is None:
            self._loop_task = asyncio.create_task(self._tick_loop(), name="push-renewals")

    async def stop(self) -> None:
        """Stop background work. Subscriptions stay alive in Graph for the next run."""
        task, self._loop_task = self._loop_task, None
        tasks = [t for t in (task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.dispatcher.stop()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("subscription maintenance failed")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("%s failed", name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait for lifecycle work started by notifications, then flush pending changes."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.dispatcher.flush()

    # -- accounts -----------------------------------------------------------------------
    async def add_account(self, account_id: str, mailbox: RemoteMailbox) -> WebhookHealth:
        """Make sure ``account_id`` has a live subscription on ``mailbox``; returns health."""
        await self.load()
        self._removed.discard(account_id)
        acct = self._accounts.get(account_id)
        if acct is None or acct.mailbox.id != mailbox.id:
            acct = _Account(account_id, mailbox)
            self._accounts[account_id] = acct
        async with acct.lock:
            await self._ensure(acct)
        return acct.health

    async def remove_account(self, account_id: str) -> None:
        """The account is gone: delete its subscriptions in Graph and forget them."""
        await self.load()
        self._removed.add(account_id)
        acct = self._accounts.pop(account_id, None)
        self.dispatcher.forget(account_id)
        if acct is not None:
            async with acct.lock:
                await self._delete_records(account_id, acct.graph)
        else:
            await self._delete_records(account_id, None)

    async def retain_accounts(self, account_ids: Iterable[str]) -> None:
        """Remove the subscriptions of every account not in ``account_ids`` (accounts
        deleted while the bridge was not running)."""
        await self.load()
        keep = set(account_ids)
        stale = {r.account_id for r in self._records.values()} | set(self._accounts)
        for account_id in sorted(stale - keep):
            await self.remove_account(account_id)

    def health(self, account_id: str) -> WebhookHealth:
        acct = self._accounts.get(account_id)
        return acct.health if acct else WebhookHealth.PENDING

    def webhooks_healthy(self, account_id: str) -> bool:
        """True while the account has a live subscription: the sync engine may poll slowly."""
        acct = self._accounts.get(account_id)
        if acct is None or acct.health is not WebhookHealth.ACTIVE:
            return False
        record = self._current(account_id)
        return record is not None and record.expires > self._clock()

    @property
    def subscriptions_active(self) -> int:
        now = self._clock()
        return sum(
            1
            for r in self._records.values()
            if r.account_id not in self._removed and r.expires > now
        )

    def subscription_ids(self, account_id: str) -> list[str]:
        return [r.subscription_id for r in self._records.values() if r.account_id == account_id]

    # -- maintenance --------------------------------------------------------------------
    async def tick(self) -> None:
        """Renew what is due, retry failed creations, finish deletions. Call it from a
        timer (``start`` does) or from tests with a controlled clock."""
        await self.load()
        now = self._clock()
        gate = asyncio.Semaphore(self.maintenance_concurrency)

        async def one(acct: _Account) -> None:
            async with gate, acct.lock:
                if self._accounts.get(acct.account_id) is not acct:
                    return  # removed or replaced meanwhile
                if acct.health is WebhookHealth.ACTIVE:
                    record = self._current(acct.account_id)
                    if record is None or self._renewal_due(record, now):
                        await self._ensure(acct)
                elif acct.retry_at is None or acct.retry_at <= now:
                    await self._ensure(acct)

        # Accounts created together come due together; a few at a time keeps the
        # app-level request gate (subscription calls have no mailbox) from queueing long.
        results = await asyncio.gather(
            *(one(a) for a in list(self._accounts.values())), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                log.error("subscription maintenance failed", exc_info=result)
        for account_id in sorted({r.account_id for r in self._records.values()} & self._removed):
            await self._delete_records(account_id, None)

    def _renewal_due(self, record: SubscriptionRecord, now: datetime) -> bool:
        left = record.expires - now
        return left <= timedelta(minutes=record.lifetime_minutes * self.renew_fraction)

    def _current(self, account_id: str) -> SubscriptionRecord | None:
        acct = self._accounts.get(account_id)
        for record in self._records.values():
            if record.account_id != account_id:
                continue
            if acct is None or self._matches(record, acct.mailbox):
                return record
        return None

    def _matches(self, record: SubscriptionRecord, mailbox: RemoteMailbox) -> bool:
        return (
            record.mailbox_id == mailbox.id
            and record.resource == self.resource_for(mailbox)
            and record.notification_url == self.notification_url
        )

    async def _graph(self, acct: _Account) -> GraphApp:
        if acct.graph is None:
            acct.graph = await self._graph_for(acct.account_id)
        return acct.graph

    async def _ensure(self, acct: _Account) -> None:
        """Reuse-and-renew or create the account's subscription (caller holds the lock)."""
        now = self._clock()
        try:
            graph = await self._graph(acct)
        except RemoteError as exc:
            self._failed(acct, f"cannot reach Graph for {acct.account_id}: {exc}")
            return
        mine = [r for r in self._records.values() if r.account_id == acct.account_id]
        keep = next((r for r in mine if self._matches(r, acct.mailbox) and r.expires > now), None)
        for record in mine:
            if record is not keep:
                # A different URL or mailbox, an expired one, or a duplicate: drop it.
                await self._delete_one(graph, record)
        recreated = any(r.expires <= now for r in mine)
        if keep is not None:
            if not self._renewal_due(keep, now) and acct.health is WebhookHealth.ACTIVE:
                return
            try:
                await self._renew(graph, keep)
            except RemoteNotFound:
                log.info("subscription of %s is gone in Graph; creating a new one", acct.account_id)
                self.renewal_failures += 1
                await self._forget(keep)
                recreated = True
            except RemoteError as exc:
                self.renewal_failures += 1
                # Still valid until it expires: keep using it, try again next turn.
                log.warning("renewing the subscription of %s failed: %s", acct.account_id, exc)
                self._set_health(acct, WebhookHealth.ACTIVE)
                return
            else:
                acct.failures = 0
                acct.retry_at = None
                self._set_health(acct, WebhookHealth.ACTIVE)
                return
        await self._create(acct, graph)
        if recreated and acct.health is WebhookHealth.ACTIVE:
            # Changes between the old subscription's end and the new one went unseen.
            self.dispatcher.resync(acct.account_id)

    async def _renew(self, graph: GraphApp, record: SubscriptionRecord) -> None:
        minutes = self.lifetime_minutes  # already shortened if Graph refused more before
        while True:
            now = self._clock()
            try:
                sub = await graph.renew_subscription(
                    record.subscription_id, now + timedelta(minutes=minutes)
                )
                break
            except RemoteError as exc:
                if _is_expiration_refusal(exc) and minutes > MIN_LIFETIME_MINUTES:
                    minutes = self._learn_shorter(minutes, exc)
                    continue
                raise
        updated = replace(record, expires=sub.expires, lifetime_minutes=minutes)
        await self._remember(updated)
        self.subscriptions_renewed += 1
        log.info(
            "renewed the subscription of %s until %s", record.account_id, sub.expires.isoformat()
        )

    def _learn_shorter(self, minutes: int, exc: RemoteError) -> int:
        shorter = _shorter(minutes, exc)
        log.info("Graph refused a %d-minute subscription; asking for %d", minutes, shorter)
        self.lifetime_minutes = min(self.lifetime_minutes, shorter)
        return shorter

    async def _create(self, acct: _Account, graph: GraphApp) -> None:
        secret = secrets.token_urlsafe(32)
        resource = self.resource_for(acct.mailbox)
        minutes = self.lifetime_minutes
        self._creating += 1
        try:
            while True:
                now = self._clock()
                try:
                    sub = await graph.create_subscription(
                        resource,
                        self.notification_url,
                        self.lifecycle_url,
                        secret,
                        now + timedelta(minutes=minutes),
                        change_type=CHANGE_TYPES,
                    )
                    break
                except RemoteError as exc:
                    if _is_expiration_refusal(exc) and minutes > MIN_LIFETIME_MINUTES:
                        minutes = self._learn_shorter(minutes, exc)
                        continue
                    self._creation_failed(acct, exc)
                    return
            await self._remember(self._record(acct, sub, resource, secret, minutes))
            self.subscriptions_created += 1
            acct.failures = 0
            acct.retry_at = None
            log.info("created the subscription of %s", acct.account_id)
            self._set_health(acct, WebhookHealth.ACTIVE)
        finally:
            self._creating -= 1
            self._unpark()

    def _record(
        self, acct: _Account, sub: Subscription, resource: str, secret: str, minutes: int
    ) -> SubscriptionRecord:
        # The secret is ours: Graph echoes it, but the value we generated is the truth.
        return SubscriptionRecord(
            subscription_id=sub.id,
            account_id=acct.account_id,
            mailbox_id=acct.mailbox.id,
            resource=resource,
            notification_url=self.notification_url,
            client_state=secret,
            expires=sub.expires,
            lifetime_minutes=minutes,
            created_at=self._clock(),
        )

    def _creation_failed(self, acct: _Account, exc: RemoteError) -> None:
        acct.failures += 1
        if _is_validation_failure(exc):
            acct.retry_at = self._clock() + timedelta(minutes=self.retry_minutes)
            if acct.health is not WebhookHealth.UNREACHABLE:
                log.warning(
                    "Graph cannot reach %s; webhooks disabled for %s, falling back to "
                    "polling every %ds",
                    self.notification_url,
                    acct.account_id,
                    round(self.fallback_poll_seconds),
                )
            self._set_health(acct, WebhookHealth.UNREACHABLE)
            return
        self._failed(acct, f"creating the subscription of {acct.account_id} failed: {exc}")

    def _failed(self, acct: _Account, sentence: str) -> None:
        acct.failures = max(acct.failures, 1)
        backoff = min(self.retry_minutes, 0.5 * 2 ** min(acct.failures, 10))
        acct.retry_at = self._clock() + timedelta(minutes=backoff)
        if acct.health is not WebhookHealth.FAILED:
            log.warning("%s; polling until it works", sentence)
        self._set_health(acct, WebhookHealth.FAILED)

    def _set_health(self, acct: _Account, health: WebhookHealth) -> None:
        before = acct.health is WebhookHealth.ACTIVE
        acct.health = health
        after = health is WebhookHealth.ACTIVE
        if before != after and self._on_health is not None:
            try:
                self._on_health(acct.account_id, after)
            except Exception:
                log.exception("on_health failed for %s", acct.account_id)

    async def _remember(self, record: SubscriptionRecord) -> None:
        await self.store.write(lambda db: pstore.save(db, record))
        self._records[record.subscription_id] = record

    async def _forget(self, record: SubscriptionRecord) -> None:
        await self.store.write(lambda db: pstore.delete(db, record.subscription_id))
        self._records.pop(record.subscription_id, None)

    async def _delete_one(self, graph: GraphApp, record: SubscriptionRecord) -> bool:
        """Delete in Graph, then the row. False (row kept) when Graph could not be asked."""
        try:
            await graph.delete_subscription(record.subscription_id)
        except RemoteNotFound:
            pass  # already gone (expired or removed by Graph)
        except RemoteError as exc:
            log.warning(
                "deleting a subscription of %s failed, will retry: %s", record.account_id, exc
            )
            return False
        await self._forget(record)
        self.subscriptions_deleted += 1
        return True

    async def _delete_records(self, account_id: str, graph: GraphApp | None) -> None:
        records = [r for r in self._records.values() if r.account_id == account_id]
        if not records:
            return
        if graph is None:
            try:
                graph = await self._graph_for(account_id)
            except Exception as exc:
                # Without the app there is no token to delete with; Graph expires the
                # subscription within its lifetime (facts §19.6), and we ignore it until then.
                log.warning(
                    "cannot delete the subscriptions of removed account %s (%s); they expire "
                    "on their own",
                    account_id,
                    type(exc).__name__ if not isinstance(exc, RemoteError) else exc,
                )
                for record in records:
                    await self._forget(record)
                return
        for record in records:
            await self._delete_one(graph, record)
        log.info("deleted the subscriptions of removed account %s", account_id)

    # -- notifications (called by the receiver; never block) ----------------------------
    def verify(self, subscription_id: object, client_state: object) -> SubscriptionRecord | None:
        """The subscription if the notification is ours and its clientState matches."""
        if not isinstance(subscription_id, str):
            return None
        record = self._records.get(subscription_id)
        if record is None or not isinstance(client_state, str):
            return None
        # Constant time, so a forger cannot learn the secret byte by byte (facts §19.3).
        if not hmac.compare_digest(client_state.encode(), record.client_state.encode()):
            return None
        return record

    def receive(self, item: dict[str, Any], remote_addr: str | None) -> bool:
        """One element of a change notification's ``value``; True if accepted."""
        self.notifications_received += 1
        sub_id = item.get("subscriptionId")
        record = self.verify(sub_id, item.get("clientState"))
        if record is None:
            if (
                self._creating
                and isinstance(sub_id, str)
                and sub_id not in self._records
                and len(self._parked) < _MAX_PARKED
            ):
                # Possibly a subscription whose create call has not returned yet.
                kind, message_id = _change_of(item)
                if kind is not None and message_id is not None:
                    self._parked.append((sub_id, str(item.get("clientState")), kind, message_id))
                    return True
            self._reject(sub_id, remote_addr, "change notification")
            return False
        if record.account_id in self._removed:
            return True  # ours, for an account being deleted: acknowledge, ignore
        kind, message_id = _change_of(item)
        self.notifications_accepted += 1
        if kind is None or message_id is None:
            self.dispatcher.resync(record.account_id)
        else:
            self.dispatcher.message_changed(record.account_id, kind, message_id)
        return True

    def _unpark(self) -> None:
        if self._creating or not self._parked:
            return
        parked, self._parked = self._parked, []
        for sub_id, client_state, kind, message_id in parked:
            record = self.verify(sub_id, client_state)
            if record is None:
                self._reject(sub_id, None, "change notification")
                continue
            self.notifications_accepted += 1
            self.dispatcher.message_changed(record.account_id, kind, message_id)

    def _reject(self, sub_id: object, remote_addr: str | None, what: str) -> None:
        self.notifications_rejected += 1
        known = isinstance(sub_id, str) and sub_id in self._records
        reason = "clientState does not match" if known else "unknown subscription"
        # One line per sender, kind and reason a minute: a stream of forgeries (or an
        # orphaned subscription of an earlier run) must not flood the log.
        key = (_safe(sub_id), what, reason)
        now = self._clock()
        last = self._warned.get(key)
        if last is not None and now - last[0] < REJECT_LOG_INTERVAL:
            self._warned[key] = (last[0], last[1] + 1)
            return
        suppressed = last[1] if last is not None else 0
        if len(self._warned) >= _MAX_WARNED:
            self._warned.clear()
        self._warned[key] = (now, 0)
        # Never the clientState itself: it is the secret being guessed.
        log.warning(
            "rejected a %s for subscription %s from %s: %s%s",
            what,
            key[0],
            remote_addr or "?",
            reason,
            f" ({suppressed} more since the last report)" if suppressed else "",
        )

    def lifecycle(self, item: dict[str, Any], remote_addr: str | None) -> bool:
        """One element of a lifecycle notification's ``value`` (facts §19.4)."""
        self.lifecycle_received += 1
        sub_id = item.get("subscriptionId")
        record = self.verify(sub_id, item.get("clientState"))
        if record is None:
            self._reject(sub_id, remote_addr, "lifecycle notification")
            return False
        event = item.get("lifecycleEvent")
        if record.account_id in self._removed:
            return True
        if event == "missed":
            log.info("Graph missed notifications for %s; resyncing", record.account_id)
            self.dispatcher.resync(record.account_id)
        elif event == "subscriptionRemoved":
            self._spawn(self._replace(record), f"push-recreate:{record.account_id}")
        elif event == "reauthorizationRequired":
            self._spawn(self._reauthorize(record), f"push-reauthorize:{record.account_id}")
        else:
            log.warning("ignored unknown lifecycle event %s", _safe(event))
            return False
        return True

    async def _replace(self, record: SubscriptionRecord) -> None:
        acct = self._accounts.get(record.account_id)
        if acct is None:
            await self._forget(record)  # an account not started in this run: next start
            return
        async with acct.lock:
            if record.subscription_id not in self._records:
                return  # handled already (a duplicated lifecycle event)
            log.info("Graph removed the subscription of %s; creating a new one", acct.account_id)
            await self._forget(record)
            await self._create(acct, await self._graph(acct))
        # Facts §19.4: after subscriptionRemoved, resync (notifications were lost).
        self.dispatcher.resync(acct.account_id)

    async def _reauthorize(self, record: SubscriptionRecord) -> None:
        acct = self._accounts.get(record.account_id)
        if acct is None:
            return
        async with acct.lock:
            if record.subscription_id not in self._records:
                return
            graph = await self._graph(acct)
            try:
                await graph.reauthorize_subscription(record.subscription_id)
            except RemoteNotFound:
                await self._forget(record)
                await self._create(acct, graph)
                self.dispatcher.resync(acct.account_id)
                return
            except RemoteError as exc:
                # The subscription keeps working until it expires; tick() renews it.
                log.warning("reauthorizing the subscription of %s failed: %s", acct.account_id, exc)
                return
            self.reauthorizations += 1
            log.info("reauthorized the subscription of %s", acct.account_id)

    # -- locating the folder of a change ------------------------------------------------
    async def locate(self, account_id: str, kind: ChangeKind, message_id: str) -> str | None:
        """The folder to sync for a change of ``message_id``; None means "all folders".

        Known messages are found in the store (no Graph call). A created message is
        always asked of Graph, because a move keeps the immutable id (facts §17) and
        the store would name the folder it left. Deleted messages are not asked: Graph
        no longer has them.
        """
        if kind is not ChangeKind.CREATED:
            folder = await self.store.read(
                lambda db: pstore.message_folder(db, account_id, message_id)
            )
            if folder is not None or kind is ChangeKind.DELETED:
                return folder
        acct = self._accounts.get(account_id)
        if acct is None:
            return None
        try:
            if acct.remote is None:
                acct.remote = (await self._graph(acct)).remote(acct.mailbox)
            message = await acct.remote.get_message(message_id)
        except RemoteNotFound:
            return None  # gone again already: let a full pass sort it out
        except RemoteError as exc:
            log.info("cannot locate a changed message of %s: %s", account_id, exc)
            return None
        return message.folder_id or None


def _change_of(item: dict[str, Any]) -> tuple[ChangeKind | None, str | None]:
    """The change type and message id of a notification (facts §19.3: parse
    ``resourceData.id``, not the resource path whose shape varies)."""
    try:
        kind: ChangeKind | None = ChangeKind(item.get("changeType"))
    except ValueError:
        kind = None
    data = item.get("resourceData")
    message_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(message_id, str) or not message_id or len(message_id) > 1024:
        message_id = None
    return kind, message_id
