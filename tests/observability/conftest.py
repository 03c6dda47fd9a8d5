"""Fixtures for the observability tests: a real ``ImapServer`` on 127.0.0.1 (port 0) over
two ``MemoryBackend`` accounts, with ``BridgeMetrics`` as its observer and a
``WireTracer`` as its wire tap; ``/metrics`` served by a real aiohttp server; the trace
captured from the ``bridge.trace`` logger. imaplib runs in a thread so the server keeps
running in the test's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
from bridge.imap.server import ImapServer
from bridge.imap.session import LoginThrottle
from bridge.metrics import BridgeMetrics, metrics_route
from bridge.trace import LOGGER_NAME, WireTracer

USER_PASSWORD = "user-Pa55word-quartz"
OTHER_PASSWORD = "other-Pa55word-basalt"


class TraceRecords(logging.Handler):
    """Keeps every trace record (message and account) the tracer writes."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, account: str | None = None) -> list[str]:
        return [
            r.getMessage()
            for r in self.records
            if account is None or getattr(r, "account", None) == account
        ]

    def text(self) -> str:
        return "\n".join(self.lines())


@pytest.fixture
def trace_records() -> Iterator[TraceRecords]:
    handler = TraceRecords()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@dataclass
class Imap:
    server: ImapServer
    user: MemoryBackend
    other: MemoryBackend
    metrics: BridgeMetrics
    tracer: WireTracer

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
async def imap(trace_records: TraceRecords) -> AsyncIterator[Imap]:
    user, other = MemoryBackend(), MemoryBackend()
    metrics = BridgeMetrics()
    tracer = WireTracer()
    server = ImapServer(
        MemoryAuthenticator({"user": (USER_PASSWORD, user), "other": (OTHER_PASSWORD, other)}),
        host="127.0.0.1",
        port=0,
        throttle=LoginThrottle(base_delay=0.0, step_delay=0.0),
        observer=metrics,
        wire_tap=tracer,
    )
    await server.start()
    try:
        yield Imap(server, user, other, metrics, tracer)
    finally:
        await server.stop(grace=2)


class Scraper:
    """GET /metrics over a real aiohttp server, parsed."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def text(self) -> str:
        response = await self.client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return await response.text()

    async def value(self, name: str, **labels: str) -> float | None:
        return sample(await self.text(), name, **labels)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


@pytest.fixture
async def scrape(imap: Imap) -> AsyncIterator[Scraper]:
    app = web.Application()
    app.add_routes([metrics_route(imap.metrics)])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Scraper(client)
