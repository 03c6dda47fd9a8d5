"""``GraphApp``: one app registration's HTTP client for Microsoft Graph.

Theory of operation
-------------------
Every Graph call goes through ``GraphApp.request``:

1. the per-mailbox gate is entered: a sliding-window budget (facts §4.1: 10,000 requests
   per 10 minutes per app and mailbox; we stay under ``budget_per_window``) and a
   semaphore of ``max_concurrency_per_mailbox`` in-flight requests (facts §4.1: 4);
2. a token comes from ``TokenProvider`` (MSAL's cache; cheap) and the request is sent
   with ``Prefer: IdType="ImmutableId"`` (facts §17) and a ``client-request-id`` (one per
   call, kept across its retries so Microsoft's logs show them together);
3. the answer is classified:
   - 2xx → returned;
   - 401 → the token is dropped and renewed once (facts §1.2), then the request repeats;
   - 429 / 503 → Graph refused before acting: wait ``Retry-After`` (float seconds, facts
     §4.2) or an exponential back-off with jitter, and repeat — for any method;
   - 500 / 502 / 504 → repeated only for idempotent requests; for create / send / copy /
     move the outcome is unknown (``OutcomeUnknown``);
   - network failure before the request left (connect error, pool timeout) → repeated;
     after it left (read timeout, reset) → repeated only when idempotent, otherwise
     ``OutcomeUnknown``;
   - anything else → the exception tree of ``bridge.backend.remote`` via
     ``bridge.graph.errors`` (one actionable sentence).
   Retries are bounded by ``max_retries`` and by ``max_total_wait`` seconds of waiting.

JSON batches (facts §18) go through ``GraphApp.batch``: at most 20 inner requests per
``POST /$batch``, costing N against the budget (Graph counts inner requests). For
concurrency a batch of N holds min(N, 4) slots of the mailbox, not one: Graph executes up
to 4 inner requests of a batch in parallel (facts §4.2) and each of them counts against
the 4-concurrent-requests limit, so counting the batch as one slot would let the bridge
put up to 7 requests in flight at Graph and collect MailboxConcurrency 429s. The batches
of one call are sent one after another. Inner 429/503 answers are retried
after the longest inner ``Retry-After``; SDKs do not do this, we do.

Must not import anything but httpx, msal (through ``auth``), the standard library,
``bridge.backend.remote`` and ``bridge.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import ssl
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from bridge.backend.remote import (
    RemoteError,
    RemoteMailbox,
    RemoteRejected,
    RemoteUnavailable,
    Subscription,
)
from bridge.graph.auth import AppCredentials, TokenProvider
from bridge.graph.clouds import Cloud
from bridge.graph.errors import (
    MAIL_READWRITE,
    USER_READ_ALL,
    GraphErrorInfo,
    graph_error,
    is_tls_failure,
    network_sentence,
    outcome_unknown,
    parse_graph_error,
    tls_sentence,
)
from bridge.graph.model import as_int, parse_datetime

if TYPE_CHECKING:
    from bridge.graph.remote import GraphRemote

log = logging.getLogger(__name__)

IMMUTABLE_ID = 'IdType="ImmutableId"'
BATCH_LIMIT = 20  # facts §18
_OUTLOOK_BATCH_PARALLELISM = 4  # facts §4.2: Graph runs up to 4 inner requests at once
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_USER_SELECT = "id,mail,userPrincipalName,displayName"
_QUERY_SAFE = "$,()'=:/@*"


def seg(value: str) -> str:
    """An id or name as one path segment (facts §0.1: ids must be percent-encoded)."""
    return quote(value, safe="")


def query(params: Mapping[str, str | int | bool]) -> str:
    """A query string that keeps ``$`` and OData punctuation readable, encodes the rest."""
    out = []
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(f"{key}={quote(text, safe=_QUERY_SAFE)}")
    return "?" + "&".join(out) if out else ""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a (possibly decimal, facts §4.2) number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now if now is not None else time.time()
        seconds = when.timestamp() - current
    return max(0.0, min(seconds, 3600.0))


def iso_utc(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class GraphResponse:
    status: int
    headers: httpx.Headers
    content: bytes
    request_id: str | None = None

    def json(self) -> Any:
        if not self.content:
            return {}
        try:
            return json.loads(self.content)
        except ValueError:
            # A proxy's HTML page or a truncated body: transient as far as we can tell.
            raise RemoteUnavailable(
                "Graph answered with a body that is not JSON; retry later.",
                status=self.status,
                request_id=self.request_id,
            ) from None


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One inner request of a JSON batch; ``url`` is relative to ``/v1.0`` (facts §18)."""

    id: str
    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class BatchResponse:
    id: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lowered:
                return str(v)
        return None


@dataclass(frozen=True, slots=True)
class MailboxStats:
    """Counters for one mailbox (``GraphApp.stats``), for metrics."""

    requests: int = 0  # HTTP requests sent (a batch counts once here)
    budget_used: int = 0  # units charged against the window (a batch of N counts N)
    throttled: int = 0  # 429/503 answers, outer and inner
    in_flight: int = 0
    max_in_flight: int = 0
    waits: int = 0  # times a request waited for the budget or a concurrency slot
    wait_seconds: float = 0.0  # time spent waiting for the budget and for Retry-After


class _Slots:
    """A FIFO weighted semaphore: a request takes 1 slot, a JSON batch up to 4."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def busy(self, weight: int) -> bool:
        return bool(self._waiters) or self.used + weight > self.size

    async def acquire(self, weight: int) -> None:
        weight = min(weight, self.size)
        if not self.busy(weight):
            self.used += weight
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (weight, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(weight)  # granted just as we were cancelled
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, weight: int) -> None:
        self.used -= min(weight, self.size)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.size:
            weight, fut = self._waiters.popleft()
            if fut.done():
                continue
            self.used += weight
            fut.set_result(None)


class _MailboxGate:
    """Per-mailbox concurrency slots plus a sliding-window request budget."""

    def __init__(
        self,
        concurrency: int,
        budget: int,
        window: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        self._slots = _Slots(concurrency)
        self._budget = budget
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[tuple[float, int]] = deque()
        self._used = 0
        self._budget_lock = asyncio.Lock()
        self.requests = 0
        self.budget_used = 0
        self.throttled = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.waits = 0
        self.wait_seconds = 0.0

    def _prune(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - self._window:
            _, cost = self._sent.popleft()
            self._used -= cost

    async def _charge(self, cost: int) -> None:
        cost = min(cost, self._budget)
        async with self._budget_lock:  # FIFO: waiters are served in arrival order
            while True:
                now = self._clock()
                self._prune(now)
                if self._used + cost <= self._budget:
                    self._sent.append((now, cost))
                    self._used += cost
                    self.budget_used += cost
                    return
                # Wait until enough of the oldest entries leave the window.
                need = self._used + cost - self._budget
                freed = 0
                until = now
                for stamp, c in self._sent:
                    freed += c
                    until = stamp + self._window
                    if freed >= need:
                        break
                delay = max(until - now, 0.001)
                self.waits += 1
                self.wait_seconds += delay
                await self._sleep(delay)

    @contextlib.asynccontextmanager
    async def slot(self, cost: int, weight: int = 1) -> AsyncIterator[None]:
        """Charge ``cost`` budget units, then hold ``weight`` concurrency slots."""
        await self._charge(cost)
        if self._slots.busy(weight):
            self.waits += 1
        await self._slots.acquire(weight)
        self.in_flight += weight
        self.requests += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= weight
            self._slots.release(weight)

    def snapshot(self) -> MailboxStats:
        return MailboxStats(
            self.requests,
            self.budget_used,
            self.throttled,
            self.in_flight,
            self.max_in_flight,
            self.waits,
            self.wait_seconds,
        )


class GraphApp:
    """Microsoft Graph for one app registration: tokens, HTTP, limits, retries, batches."""

    def __init__(
        self,
        cloud: Cloud,
        credentials: AppCredentials,
        *,
        max_concurrency_per_mailbox: int = 4,
        budget_per_window: int = 9_000,
        budget_window: float = 600.0,
        timeout: float = 60.0,
        max_retries: int = 6,
        max_total_wait: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        tokens: TokenProvider | None = None,
        max_connections: int = 200,
    ) -> None:
        if max_concurrency_per_mailbox < 1 or budget_per_window < BATCH_LIMIT:
            raise ValueError("concurrency must be >= 1 and the budget >= 20")
        self.cloud = cloud
        self.credentials = credentials
        self.tokens = tokens or TokenProvider(cloud, credentials, timeout=timeout)
        self._concurrency = max_concurrency_per_mailbox
        self._budget = budget_per_window
        self._window = budget_window
        self._max_retries = max_retries
        self._max_total_wait = max_total_wait
        self._clock = clock
        self._sleep = sleep
        self._gates: dict[str, _MailboxGate] = {}
        self._host = urlsplit(cloud.graph_url).netloc
        self._origin = (urlsplit(cloud.graph_url).scheme, self._host)
        verify: ssl.SSLContext | bool = True
        if cloud.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(cloud.ca_file))
        # HTTP/1.1 keep-alive; the pool is shared by all mailboxes of the app, the
        # per-mailbox gate keeps each mailbox at <= 4 of those connections.
        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0), pool=timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max(10, max_connections // 2),
                keepalive_expiry=30.0,
            ),
            trust_env=True,
            follow_redirects=False,
            headers={"User-Agent": "graph-mail-bridge/0.1"},
        )

    def __repr__(self) -> str:
        return f"GraphApp(cloud={self.cloud.name!r}, client_id={self.credentials.client_id!r})"

    # --- limits and stats -------------------------------------------------------------

    def _gate(self, mailbox: str | None) -> _MailboxGate:
        key = mailbox or ""  # directory and subscription calls share an app-level gate
        gate = self._gates.get(key)
        if gate is None:
            gate = _MailboxGate(
                self._concurrency if mailbox else 16,
                self._budget,
                self._window,
                self._clock,
                self._sleep,
            )
            self._gates[key] = gate
        return gate

    def stats(self, mailbox_id: str) -> MailboxStats:
        gate = self._gates.get(mailbox_id)
        return gate.snapshot() if gate else MailboxStats()

    def _backoff(self, attempt: int) -> float:
        base: float = min(30.0, 0.5 * (2.0**attempt))
        return base + random.uniform(0.0, base / 2)

    # --- the request core -------------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url  # nextLink / deltaLink / uploadUrl: verbatim (facts §16.2)
        return self.cloud.api_root + path_or_url

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        mailbox: str | None,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        auth: bool = True,
        needs: Iterable[str] = (MAIL_READWRITE,),
        what: str = "",
        cost: int = 1,
        slots: int = 1,
        retry_gateway_timeout: bool = True,
        ok_statuses: Iterable[int] = (),
    ) -> GraphResponse:
        """Send one request with the retry rules in the module docstring.

        ``mailbox`` is the gate key (the mailbox's object id; None for directory and
        subscription calls). ``ok_statuses`` are non-2xx statuses returned instead of
        raised (e.g. 404 where the caller has a fallback).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        full = self.url(path_or_url)
        parts = urlsplit(full)
        host = parts.netloc
        if auth and (parts.scheme, parts.netloc) != self._origin:
            # A nextLink pointing elsewhere must never receive our bearer token.
            raise RemoteRejected(f"Refusing to send the app's token to foreign host {host}.")
        body: bytes | None = content
        hdrs: dict[str, str] = {"Prefer": IMMUTABLE_ID} if auth else {}
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if content_type:
            hdrs["Content-Type"] = content_type
        if headers:
            for k, v in headers.items():
                if k.lower() == "prefer" and auth:
                    hdrs["Prefer"] = f"{IMMUTABLE_ID}, {v}"  # facts §0.2: comma-separated
                else:
                    hdrs[k] = v
        if method in {"POST", "PUT", "PATCH"} and body is None:
            body = b""  # Content-Length: 0 (facts §13.3)
        ok = set(ok_statuses)
        gate = self._gate(mailbox)
        label = what or f"{method} {parts.path.rsplit('/', 1)[-1] or parts.path}"
        attempt = 0
        renewed = False
        waited = 0.0
        client_request_id = str(uuid.uuid4())
        while True:
            hdrs["client-request-id"] = client_request_id
            token = await self.tokens.token() if auth else None
            if token is not None:
                hdrs["Authorization"] = "Bearer " + token
            try:
                async with gate.slot(cost, slots):
                    resp = await self._http.request(method, full, content=body, headers=hdrs)
                    payload = resp.content  # read inside the slot: still in flight
            except httpx.TransportError as exc:
                if is_tls_failure(exc):
                    raise RemoteUnavailable(tls_sentence(host)) from None
                sent = not isinstance(exc, _NOT_SENT)
                if sent and not idempotent:
                    log.warning("%s to %s: outcome unknown (%s)", label, host, type(exc).__name__)
                    raise outcome_unknown(label, host) from None
                delay = self._backoff(attempt)
                if attempt >= self._max_retries or waited + delay > self._max_total_wait:
                    raise RemoteUnavailable(network_sentence(host, exc)) from None
                log.info("%s: %s, retry %d in %.1fs", label, type(exc).__name__, attempt + 1, delay)
                attempt += 1
                waited += delay
                await self._sleep(delay)
                continue
            status = resp.status_code
            request_id = resp.headers.get("request-id")
            if 200 <= status < 300 or status in ok:
                return GraphResponse(status, resp.headers, payload, request_id)
            info = parse_graph_error(payload)
            if status == 401 and auth and not renewed:
                # Facts §1.2: drop the cached token and acquire once more.
                renewed = True
                await self.tokens.invalidate(token)
                continue
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if status in (429, 503):
                gate.throttled += 1
            retryable = status in (429, 503) or (
                idempotent and (status in (500, 502) or (status == 504 and retry_gateway_timeout))
            )
            if not retryable and not idempotent and status in (500, 502, 504):
                log.warning("%s: HTTP %d after sending; outcome unknown", label, status)
                raise outcome_unknown(label, host, status=status, request_id=request_id)
            if retryable:
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                if attempt < self._max_retries and waited + delay <= self._max_total_wait:
                    log.info("%s: HTTP %d, retry %d in %.1fs", label, status, attempt + 1, delay)
                    attempt += 1
                    waited += delay
                    gate.waits += 1
                    gate.wait_seconds += delay
                    await self._sleep(delay)
                    continue
            raise graph_error(
                status,
                info,
                mailbox=mailbox,
                retry_after=retry_after,
                roles=self.tokens.cached_roles(),
                needs=needs,
                request_id=request_id,
            )

    async def get_json(
        self,
        path_or_url: str,
        *,
        mailbox: str | None,
        headers: Mapping[str, str] | None = None,
        needs: Iterable[str] = (MAIL_READWRITE,),
    ) -> Any:
        resp = await self.request("GET", path_or_url, mailbox=mailbox, headers=headers, needs=needs)
        return resp.json()

    async def pages(
        self,
        path_or_url: str,
        *,
        mailbox: str | None,
        headers: Mapping[str, str] | None = None,
        needs: Iterable[str] = (MAIL_READWRITE,),
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page's ``value``, following ``@odata.nextLink`` verbatim (facts §7.2)."""
        url: str | None = path_or_url
        seen: set[str] = set()
        while url:
            if url in seen:  # a server that loops must not hang the bridge
                raise RemoteUnavailable("Graph returned a paging loop; retry later.")
            seen.add(url)
            data = await self.get_json(url, mailbox=mailbox, headers=headers, needs=needs)
            value = data.get("value") if isinstance(data, dict) else None
            yield [v for v in value or [] if isinstance(v, dict)]
            nxt = data.get("@odata.nextLink") if isinstance(data, dict) else None
            url = nxt if isinstance(nxt, str) and nxt else None

    async def get_all(
        self,
        path_or_url: str,
        *,
        mailbox: str | None,
        headers: Mapping[str, str] | None = None,
        needs: Iterable[str] = (MAIL_READWRITE,),
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        async for page in self.pages(path_or_url, mailbox=mailbox, headers=headers, needs=needs):
            items.extend(page)
        return items

    # --- JSON batching ----------------------------------------------------------------

    async def batch(
        self,
        mailbox: str | None,
        requests: Sequence[BatchRequest],
        *,
        idempotent: bool,
        needs: Iterable[str] = (MAIL_READWRITE,),
    ) -> dict[str, BatchResponse | RemoteError]:
        """Run ``requests`` as JSON batches of <= 20; answers correlated by id.

        An outer failure becomes the error of every request of that batch. Inner 429/503
        are retried (they were refused, never executed); so are inner 500/502/504 when
        the batch is ``idempotent`` (a read or an absolute PATCH may safely run twice),
        exactly as single requests are. Other inner answers are returned as they are
        for the caller to interpret.
        """
        ids = [r.id for r in requests]
        if len({i.lower() for i in ids}) != len(ids):
            raise ValueError("batch request ids must be unique (case-insensitively)")
        results: dict[str, BatchResponse | RemoteError] = {}
        for start in range(0, len(requests), BATCH_LIMIT):
            chunk = list(requests[start : start + BATCH_LIMIT])
            await self._run_batch(mailbox, chunk, results, idempotent=idempotent, needs=needs)
        return results

    async def _run_batch(
        self,
        mailbox: str | None,
        pending: list[BatchRequest],
        results: dict[str, BatchResponse | RemoteError],
        *,
        idempotent: bool,
        needs: Iterable[str],
    ) -> None:
        gate = self._gate(mailbox)
        rounds = 0
        waited = 0.0
        while pending:
            body = {"requests": [self._inner(r) for r in pending]}
            try:
                resp = await self.request(
                    "POST",
                    "/$batch",
                    mailbox=mailbox,
                    json_body=body,
                    idempotent=idempotent,
                    cost=len(pending),
                    slots=min(len(pending), _OUTLOOK_BATCH_PARALLELISM),
                    needs=needs,
                    what="batch",
                )
            except RemoteError as exc:
                for r in pending:
                    results[r.id] = exc
                return
            answers: dict[str, BatchResponse] = {}
            envelope = resp.json()
            raw_list = envelope.get("responses") if isinstance(envelope, dict) else None
            for raw in raw_list if isinstance(raw_list, list) else []:
                if not isinstance(raw, dict) or "id" not in raw:
                    continue
                headers = raw.get("headers") if isinstance(raw.get("headers"), dict) else {}
                answers[str(raw["id"]).lower()] = BatchResponse(
                    str(raw["id"]), as_int(raw.get("status")), headers or {}, raw.get("body")
                )
            retry: list[BatchRequest] = []
            longest = 0.0
            for r in pending:
                answer = answers.get(r.id.lower())
                if answer is None:
                    results[r.id] = (
                        RemoteUnavailable("Graph's batch answer left this request out.")
                        if idempotent
                        else outcome_unknown("batched", self._host)
                    )
                    continue
                transient = answer.status in (429, 503)
                if transient or (idempotent and answer.status in (500, 502, 504)):
                    gate.throttled += transient
                    retry.append(r)
                    ra = parse_retry_after(answer.header("Retry-After"))
                    longest = max(longest, ra if ra is not None else self._backoff(rounds))
                results[r.id] = answer
            if not retry:
                return
            if rounds >= self._max_retries or waited + longest > self._max_total_wait:
                return  # the last transient answers stay in results for the caller to map
            rounds += 1
            waited += longest
            gate.waits += 1
            gate.wait_seconds += longest
            # Facts §4.2: retry only the throttled (or, for reads, failed) inner requests,
            # after the longest wait.
            await self._sleep(longest)
            pending = retry

    def _inner(self, r: BatchRequest) -> dict[str, Any]:
        headers = {"Prefer": IMMUTABLE_ID}
        if r.headers:
            headers.update(r.headers)
        inner: dict[str, Any] = {"id": r.id, "method": r.method.upper(), "url": r.url}
        if r.body is not None:
            headers.setdefault("Content-Type", "application/json")
            inner["body"] = r.body
        inner["headers"] = headers
        return inner

    def batch_error(
        self,
        answer: BatchResponse | RemoteError,
        *,
        mailbox: str | None,
        idempotent: bool,
        needs: Iterable[str] = (MAIL_READWRITE,),
    ) -> RemoteError | None:
        """None for a 2xx inner answer, else the exception it stands for."""
        if isinstance(answer, RemoteError):
            return answer
        if answer.ok:
            return None
        if not idempotent and answer.status in (500, 502, 504):
            return outcome_unknown("batched", self._host, status=answer.status)
        return graph_error(
            answer.status,
            parse_graph_error(answer.body if isinstance(answer.body, dict) else None),
            mailbox=mailbox,
            retry_after=parse_retry_after(answer.header("Retry-After")),
            roles=self.tokens.cached_roles(),
            needs=needs,
        )

    # --- directory ------------------------------------------------------------------

    @staticmethod
    def _user_path(user: str) -> str:
        if user.startswith("$"):
            # Facts §0.1: UPNs starting with "$" need the key-as-parameter form.
            return "/users('" + quote(user.replace("'", "''"), safe="@$") + "')"
        return "/users/" + quote(user, safe="@")

    async def resolve_mailbox(self, user: str) -> RemoteMailbox:
        """Find a mailbox by UPN, object id or SMTP address (facts §5)."""
        user = user.strip()
        resp = await self.request(
            "GET",
            f"{self._user_path(user)}{query({'$select': _USER_SELECT})}",
            mailbox=None,
            needs=(USER_READ_ALL,),
            ok_statuses=(404,),
        )
        if resp.status == 200:
            return _mailbox_from(resp.json())
        if "@" in user:
            address = user.replace("'", "''")
            for flt in (
                f"mail eq '{address}'",
                f"proxyAddresses/any(a:a eq 'smtp:{address}')",
            ):
                found = await self.get_json(
                    f"/users{query({'$filter': flt, '$select': _USER_SELECT})}",
                    mailbox=None,
                    needs=(USER_READ_ALL,),
                )
                value = found.get("value") if isinstance(found, dict) else None
                if value:
                    return _mailbox_from(value[0])
        info = parse_graph_error(resp.content)
        if not info.has_code("Request_ResourceNotFound", "ErrorInvalidUser"):
            info = GraphErrorInfo("Request_ResourceNotFound", info.message, None, info.request_id)
        raise graph_error(
            404, info, mailbox=user, needs=(USER_READ_ALL,), request_id=resp.request_id
        )

    async def token_roles(self) -> frozenset[str]:
        return await self.tokens.roles()

    def remote(self, mailbox: RemoteMailbox, *, delta_page_size: int = 200) -> GraphRemote:
        from bridge.graph.remote import GraphRemote

        return GraphRemote(self, mailbox, delta_page_size=delta_page_size)

    # --- subscriptions (facts §19) -----------------------------------------------------

    async def create_subscription(
        self,
        resource: str,
        notification_url: str,
        lifecycle_url: str | None,
        client_state: str,
        expires: datetime,
        *,
        change_type: str = "created,updated,deleted",
    ) -> Subscription:
        if len(client_state) > 128:
            raise ValueError("clientState is limited to 128 characters (facts §19.1)")
        body: dict[str, Any] = {
            "changeType": change_type,
            "notificationUrl": notification_url,
            "resource": resource,
            "expirationDateTime": iso_utc(expires),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        }
        if lifecycle_url:
            body["lifecycleNotificationUrl"] = lifecycle_url
        resp = await self.request(
            "POST", "/subscriptions", mailbox=None, json_body=body, what="subscription create"
        )
        return _subscription_from(resp.json(), client_state)

    async def renew_subscription(self, subscription_id: str, expires: datetime) -> Subscription:
        resp = await self.request(
            "PATCH",
            f"/subscriptions/{seg(subscription_id)}",
            mailbox=None,
            json_body={"expirationDateTime": iso_utc(expires)},
        )
        return _subscription_from(resp.json(), "")

    async def delete_subscription(self, subscription_id: str) -> None:
        await self.request("DELETE", f"/subscriptions/{seg(subscription_id)}", mailbox=None)

    async def reauthorize_subscription(self, subscription_id: str) -> None:
        # Repeating a reauthorization is harmless, so it may be retried like a read.
        await self.request(
            "POST",
            f"/subscriptions/{seg(subscription_id)}/reauthorize",
            mailbox=None,
            idempotent=True,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.tokens.aclose()

    async def __aenter__(self) -> GraphApp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _mailbox_from(data: Any) -> RemoteMailbox:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise RemoteUnavailable("Graph returned a user without an id; retry later.")
    upn = data.get("userPrincipalName") or data.get("mail") or data["id"]
    return RemoteMailbox(
        id=data["id"],
        email=data.get("mail") if isinstance(data.get("mail"), str) else None,
        user_principal_name=str(upn),
        display_name=str(data.get("displayName") or upn),
    )


def _subscription_from(data: Any, client_state: str) -> Subscription:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise RemoteUnavailable("Graph returned a subscription without an id; retry later.")
    expires = parse_datetime(data.get("expirationDateTime")) or datetime.now(UTC)
    return Subscription(
        id=data["id"],
        resource=str(data.get("resource", "")),
        expires=expires,
        client_state=str(data.get("clientState") or client_state),
    )
