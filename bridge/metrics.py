"""Prometheus metrics for the bridge: one registry per ``BridgeMetrics``, ``GET /metrics``.

Owns the metric names and labels, the push-style instruments the IMAP layer and the
composition root update (``BridgeMetrics`` implements ``bridge.imap.session.ImapObserver``;
``record_submission`` counts SMTP outcomes), and pull-style collectors evaluated at scrape
time from objects the composition root registers:

=============================== ===============================================================
``watch_store(store)``          account states; per-folder sync lag (``ms_folders.synced_at``)
``watch_graph(app_id, app)``    Graph requests, throttled answers, waits, in flight per mailbox
                                (``GraphApp.stats(mailbox_id)``, mailbox ids from the store)
``watch_sync(account, engine)`` the engine's ``progress()``; queue depths if it offers them
``watch_blob_cache(cache)``     body-cache size and cap; hit rate with ``CountingBlobCache``
=============================== ===============================================================

Store reads are asynchronous, so ``render()`` first refreshes a snapshot (``refresh()``)
and then serialises; ``metrics_route`` does both. A plain ``generate_latest(registry)``
sees the snapshot of the last refresh. Everything else is read live at scrape time.

Label values are bounded: command names come from the parser's command classes, response
codes are our own first atoms, SMTP outcomes are mapped onto a fixed set, and per-account
labels grow with the configured accounts only (never with peers or message ids).

May import anything but is imported by nobody below ``bridge.app``: the IMAP layer sees
``BridgeMetrics`` only through its ``ImapObserver`` protocol.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.backend.cached import folder_names
from bridge.store import Store
from bridge.store import accounts as acct
from bridge.store import mailstate as ms
from bridge.store.blobs import BlobCache

__all__ = [
    "SUBMISSION_OUTCOMES",
    "BlobCacheObservable",
    "BridgeMetrics",
    "CountingBlobCache",
    "GraphStatsSource",
    "SyncObservable",
    "SyncQueues",
    "metrics_route",
]

log = logging.getLogger(__name__)

#: What ``bridge.smtp.replies.Reply.outcome`` says; anything else is counted as "other".
SUBMISSION_OUTCOMES = ("sent", "deferred", "refused")
#: Seconds; IMAP commands range from NOOP (sub-millisecond) to a cold FETCH of a mailbox.
_COMMAND_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)


# ------------------------------------------------------------------------- sources


class GraphStatsSource(Protocol):
    """``bridge.graph.GraphApp``: per-mailbox counters (``MailboxStats``)."""

    def stats(self, mailbox_id: str) -> Any: ...


class SyncObservable(Protocol):
    """``bridge.sync.SyncEngine``: ``progress()`` returns at least ``phase``
    (``initial``/``steady``), ``folders_total``, ``folders_done``, ``messages_seen``,
    ``prefetched``, ``failed_folders`` and ``last_pass`` (wall-clock seconds or None)."""

    def progress(self) -> Mapping[str, Any]: ...


@runtime_checkable
class SyncQueues(Protocol):
    """Optional, for the sync engine to implement: the lengths of its work queues by
    name (e.g. ``{"nudged": 2, "due": 5, "prefetch": 120}``). Exposed as
    ``sync_queue_depth{account,queue}`` when the registered engine has it."""

    def queue_depths(self) -> Mapping[str, int]: ...


class BlobCacheObservable(Protocol):
    """``bridge.store.blobs.BlobCache``: ``stats()`` returns ``BlobStats``. Hit and miss
    counts come from ``hits``/``misses`` attributes when present (``CountingBlobCache``)."""

    def stats(self) -> Any: ...


class CountingBlobCache(BlobCache):
    """A ``BlobCache`` that counts reads that found their bytes (hits) and reads that did
    not (misses: never stored, evicted, or dropped as corrupt), for the hit rate.

    Construct it as the composition root constructs the cache:
    ``await CountingBlobCache.open(root, max_bytes)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()  # get_sync runs in worker threads
        self.hits = 0
        self.misses = 0

    def get_sync(self, digest: str) -> bytes | None:
        data = super().get_sync(digest)
        with self._count_lock:
            if data is None:
                self.misses += 1
            else:
                self.hits += 1
        return data


# ------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class _FolderLag:
    account_id: str
    folder: str
    synced_at: float


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What ``refresh`` read from the store for the next scrapes."""

    accounts: tuple[acct.Account, ...] = ()
    folders: tuple[_FolderLag, ...] = ()
    taken_at: float = 0.0


@dataclass(slots=True)
class _Sources:
    stores: list[tuple[Store, bool]] = field(default_factory=list)
    graph: dict[str, GraphStatsSource] = field(default_factory=dict)
    sync: dict[str, SyncObservable] = field(default_factory=dict)
    blobs: list[BlobCacheObservable] = field(default_factory=list)


# ------------------------------------------------------------------------- the metrics


class BridgeMetrics:
    """The bridge's metrics in their own ``CollectorRegistry`` (``self.registry``).

    Push side (call from anywhere on the event loop): the ``ImapObserver`` methods
    ``command``, ``connection_opened``, ``connection_closed``, ``auth_failed``, and
    ``record_submission``. Pull side: the ``watch_*`` methods (see the module docstring).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        registry = self.registry
        self.imap_connections = Gauge(
            "imap_connections", "Open IMAP connections.", ["listener"], registry=registry
        )
        self.imap_commands = Counter(
            "imap_commands",
            "IMAP commands by name and tagged status (RFC 3501 §7.1).",
            ["command", "status"],
            registry=registry,
        )
        self.imap_response_codes = Counter(
            "imap_response_codes",
            "Tagged replies that carried a response code, by command and code.",
            ["command", "code"],
            registry=registry,
        )
        self.imap_command_seconds = Histogram(
            "imap_command_duration_seconds",
            "Time from a command's arrival to its tagged reply (IDLE excluded).",
            ["command"],
            buckets=_COMMAND_BUCKETS,
            registry=registry,
        )
        self.imap_auth_failures = Counter(
            "imap_auth_failures",
            "Failed IMAP logins (wrong credentials or refused after too many failures).",
            registry=registry,
        )
        self.smtp_submissions = Counter(
            "smtp_submissions",
            "SMTP submissions by outcome (sent, deferred = 4xx, refused = 5xx).",
            ["outcome"],
            registry=registry,
        )
        for outcome in SUBMISSION_OUTCOMES:
            self.smtp_submissions.labels(outcome)  # present (at 0) before the first one
        self._sources = _Sources()
        self._snapshot = _Snapshot()
        registry.register(_PullCollector(self))

    # -- ImapObserver ------------------------------------------------------------------
    def command(self, name: str, status: str, code: str | None, seconds: float) -> None:
        self.imap_commands.labels(name, status).inc()
        if code:
            self.imap_response_codes.labels(name, code).inc()
        if name != "IDLE":
            # IDLE lasts as long as the client likes (RFC 2177): not a latency.
            self.imap_command_seconds.labels(name).observe(seconds)

    def connection_opened(self, listener: str) -> None:
        self.imap_connections.labels(listener).inc()

    def connection_closed(self, listener: str) -> None:
        self.imap_connections.labels(listener).dec()

    def auth_failed(self, peer: str) -> None:
        # The peer is not a label: it would make one series per attacker address.
        self.imap_auth_failures.inc()

    # -- SMTP ----------------------------------------------------------------------------
    def record_submission(self, outcome: str) -> None:
        """Count one SMTP submission; ``outcome`` is ``Reply.outcome`` (sent, deferred,
        refused); other words are counted as ``other``."""
        self.smtp_submissions.labels(outcome if outcome in SUBMISSION_OUTCOMES else "other").inc()

    # -- pull sources ------------------------------------------------------------------
    def watch_store(self, store: Store, *, include_hidden: bool = False) -> None:
        """Account states and per-folder sync lag from ``store``; ``include_hidden`` as
        the sync config's (it decides which folders have IMAP names)."""
        self._sources.stores.append((store, include_hidden))

    def watch_graph(self, app_id: str, app: GraphStatsSource) -> None:
        """Graph counters of the mailboxes of the accounts that use app ``app_id``
        (their ``mailbox_id`` in the store), plus the app-level (directory) budget."""
        self._sources.graph[app_id] = app

    def unwatch_graph(self, app_id: str) -> None:
        self._sources.graph.pop(app_id, None)

    def watch_sync(self, account_id: str, engine: SyncObservable) -> None:
        self._sources.sync[account_id] = engine

    def unwatch_sync(self, account_id: str) -> None:
        self._sources.sync.pop(account_id, None)

    def watch_blob_cache(self, cache: BlobCacheObservable) -> None:
        self._sources.blobs.append(cache)

    # -- scraping ----------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read what the pull collectors need from the store (in its reader threads)."""
        accounts: list[acct.Account] = []
        folders: list[_FolderLag] = []
        for store, include_hidden in self._sources.stores:
            found = await acct.fetch_accounts(store)
            accounts.extend(found)
            ids = [a.id for a in found]
            folders.extend(
                await store.read(functools.partial(_lags, ids=ids, hidden=include_hidden))
            )
        self._snapshot = _Snapshot(tuple(accounts), tuple(folders), self._clock())

    async def render(self) -> bytes:
        """Refresh, then the text exposition format."""
        await self.refresh()
        return generate_latest(self.registry)

    # -- the pull collector's work -----------------------------------------------------
    def _collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        now = self._clock()
        yield from self._collect_accounts(snapshot)
        yield from self._collect_graph(snapshot)
        yield from self._collect_sync(snapshot, now)
        yield from self._collect_blobs()

    def _collect_accounts(self, snapshot: _Snapshot) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "bridge_account_state",
            "1 for each account's current state, 0 for the others.",
            labels=["account", "login", "state"],
        )
        for account in snapshot.accounts:
            for value in acct.AccountState:
                state.add_metric(
                    [account.id, account.login, value.value], 1.0 if value is account.state else 0.0
                )
        yield state

    def _collect_graph(self, snapshot: _Snapshot) -> Iterator[Metric]:
        labels = ["app", "account", "mailbox"]
        requests = CounterMetricFamily(
            "graph_requests", "HTTP requests sent to Graph (a batch counts once).", labels=labels
        )
        budget = CounterMetricFamily(
            "graph_budget_units",
            "Units charged against the per-mailbox request budget (a batch of N counts N).",
            labels=labels,
        )
        throttled = CounterMetricFamily(
            "graph_throttled_responses",
            "Graph answers 429 or 503 (throttling), batch parts included.",
            labels=labels,
        )
        waits = CounterMetricFamily(
            "graph_throttle_waits",
            "Requests that waited for the request budget or a concurrency slot.",
            labels=labels,
        )
        wait_seconds = CounterMetricFamily(
            "graph_throttle_wait_seconds",
            "Seconds spent waiting for the budget and for Retry-After.",
            labels=labels,
        )
        in_flight = GaugeMetricFamily(
            "graph_requests_in_flight", "Graph requests in flight.", labels=labels
        )
        for app_id, app in list(self._sources.graph.items()):
            rows = [("", "", "")]  # the app-level gate: directory and subscription calls
            rows += [
                (a.mailbox_id, a.id, a.email)
                for a in snapshot.accounts
                if a.app_id == app_id and a.mailbox_id
            ]
            for mailbox_id, account_id, email in rows:
                stats = app.stats(mailbox_id)
                values = [app_id, account_id, email]
                requests.add_metric(values, stats.requests)
                budget.add_metric(values, stats.budget_used)
                throttled.add_metric(values, stats.throttled)
                waits.add_metric(values, stats.waits)
                wait_seconds.add_metric(values, stats.wait_seconds)
                in_flight.add_metric(values, stats.in_flight)
        yield from (requests, budget, throttled, waits, wait_seconds, in_flight)

    def _collect_sync(self, snapshot: _Snapshot, now: float) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "sync_folder_lag_seconds",
            "Seconds since the folder's last completed delta round.",
            labels=["account", "folder"],
        )
        for row in snapshot.folders:
            lag.add_metric([row.account_id, row.folder], max(0.0, now - row.synced_at))
        yield lag
        complete = GaugeMetricFamily(
            "sync_initial_complete", "1 once the first full pass finished.", labels=["account"]
        )
        pass_age = GaugeMetricFamily(
            "sync_last_pass_age_seconds",
            "Seconds since the last full pass over every folder.",
            labels=["account"],
        )
        folders = GaugeMetricFamily(
            "sync_folders", "Folders to sync in the current pass.", labels=["account"]
        )
        done = GaugeMetricFamily(
            "sync_folders_done", "Folders synced in the current pass.", labels=["account"]
        )
        failed = GaugeMetricFamily(
            "sync_failed_folders", "Folders whose last sync failed.", labels=["account"]
        )
        seen = CounterMetricFamily(
            "sync_messages_seen", "Messages seen in delta rounds.", labels=["account"]
        )
        prefetched = CounterMetricFamily(
            "sync_prefetched_bodies", "Bodies downloaded ahead of a FETCH.", labels=["account"]
        )
        queues = GaugeMetricFamily(
            "sync_queue_depth", "Work waiting in the sync engine.", labels=["account", "queue"]
        )
        for account_id, engine in list(self._sources.sync.items()):
            progress = engine.progress()
            complete.add_metric([account_id], 1.0 if progress.get("phase") == "steady" else 0.0)
            last_pass = progress.get("last_pass")
            if isinstance(last_pass, int | float):
                pass_age.add_metric([account_id], max(0.0, now - float(last_pass)))
            folders.add_metric([account_id], float(progress.get("folders_total") or 0))
            done.add_metric([account_id], float(progress.get("folders_done") or 0))
            failed.add_metric([account_id], float(progress.get("failed_folders") or 0))
            seen.add_metric([account_id], float(progress.get("messages_seen") or 0))
            prefetched.add_metric([account_id], float(progress.get("prefetched") or 0))
            if isinstance(engine, SyncQueues):
                for queue, depth in engine.queue_depths().items():
                    queues.add_metric([account_id, queue], float(depth))
        yield from (complete, pass_age, folders, done, failed, seen, prefetched, queues)

    def _collect_blobs(self) -> Iterator[Metric]:
        caches = self._sources.blobs
        if not caches:
            return
        size = GaugeMetricFamily("body_cache_bytes", "Bytes in the body cache (pinned included).")
        blobs = GaugeMetricFamily("body_cache_blobs", "Message bodies in the body cache.")
        pinned = GaugeMetricFamily(
            "body_cache_pinned_bytes", "Bytes pinned because a client has seen them."
        )
        cap = GaugeMetricFamily("body_cache_max_bytes", "The cap for unpinned bytes.")
        hits = CounterMetricFamily("body_cache_hits", "Body reads served from the cache.")
        misses = CounterMetricFamily("body_cache_misses", "Body reads the cache could not serve.")
        ratio = GaugeMetricFamily(
            "body_cache_hit_ratio", "hits / (hits + misses) since start (absent before a read)."
        )
        totals = [0.0] * 6
        counted = False
        for cache in caches:
            stats = cache.stats()
            totals[0] += stats.bytes
            totals[1] += stats.blobs
            totals[2] += stats.pinned_bytes
            totals[3] += stats.max_bytes
            cache_hits, cache_misses = getattr(cache, "hits", None), getattr(cache, "misses", None)
            if isinstance(cache_hits, int) and isinstance(cache_misses, int):
                counted = True
                totals[4] += cache_hits
                totals[5] += cache_misses
        size.add_metric([], totals[0])
        blobs.add_metric([], totals[1])
        pinned.add_metric([], totals[2])
        cap.add_metric([], totals[3])
        yield from (size, blobs, pinned, cap)
        if counted:
            hits.add_metric([], totals[4])
            misses.add_metric([], totals[5])
            yield from (hits, misses)
            if totals[4] + totals[5]:
                ratio.add_metric([], totals[4] / (totals[4] + totals[5]))
                yield ratio


class _PullCollector(Collector):
    def __init__(self, metrics: BridgeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._metrics._collect())
        except Exception:
            # A broken source must not take /metrics (and the push metrics) down with it.
            log.exception("metrics collection failed")
            return []

    def describe(self) -> Iterable[Metric]:
        # Nothing to check at registration: names are fixed and distinct from the push side.
        return []


def _lags(db: Any, *, ids: list[str], hidden: bool) -> list[_FolderLag]:
    out: list[_FolderLag] = []
    for account_id in ids:
        try:
            rows = ms.list_folders(db, account_id)
        except sqlite3.OperationalError:
            # The mailbox-state tables are created when the cached backend is imported
            # before the store is opened; a store without them has no folders to report.
            return out
        names = folder_names(rows, hidden)
        for row in rows:
            name = names.get(row.folder_id)
            if name is not None and row.synced_at is not None:
                out.append(_FolderLag(account_id, name, float(row.synced_at)))
    return out


# ------------------------------------------------------------------------- HTTP


def metrics_route(metrics: BridgeMetrics | CollectorRegistry) -> web.RouteDef:
    """``GET /metrics`` in the Prometheus text format, for the loopback HTTP listener."""

    async def handle(request: web.Request) -> web.Response:
        if isinstance(metrics, BridgeMetrics):
            body = await metrics.render()
        else:
            body = generate_latest(metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return web.get("/metrics", handle)
