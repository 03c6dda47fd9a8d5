"""The backend contract suite's fixtures: one suite, every ``MailBackend``.

``backend_factory`` is parameterised over ``FACTORIES``: each entry is a callable
returning an async context manager that yields a fresh backend holding INBOX and the
special-use mailboxes (Sent, Drafts, Trash, Junk, Archive) and nothing else. To put a
new backend under contract, add one factory here (the Graph-backed ``CachedBackend``
over the simulator will be one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from bridge.backend.events import MailEvent
from bridge.backend.memory import MemoryBackend
from bridge.backend.protocol import MailBackend

BackendFactory = Callable[[], AbstractAsyncContextManager[MailBackend]]


@asynccontextmanager
async def memory_backend() -> AsyncIterator[MailBackend]:
    yield MemoryBackend()


FACTORIES: dict[str, BackendFactory] = {"memory": memory_backend}


@pytest.fixture(params=sorted(FACTORIES))
def backend_factory(request: pytest.FixtureRequest) -> BackendFactory:
    return FACTORIES[request.param]


@pytest.fixture
async def backend(backend_factory: BackendFactory) -> AsyncIterator[MailBackend]:
    async with backend_factory() as fresh:
        yield fresh


@pytest.fixture
def events(backend: MailBackend) -> list[MailEvent]:
    """Every event the backend publishes from now on."""
    seen: list[MailEvent] = []
    backend.events.subscribe(seen.append)
    return seen
