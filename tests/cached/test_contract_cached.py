"""The backend contract suite (tests/contract) run against CachedBackend.

The suite's test functions are collected here a second time, so that their ``backend``
and ``events`` fixtures resolve to this directory's: a fresh CachedBackend over the real
GraphRemote and the simulator (see conftest.py), after its initial sync.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import tests.contract.test_hierarchy as hierarchy_suite
import tests.contract.test_messages as messages_suite
from bridge.backend.events import MailEvent
from bridge.backend.protocol import MailBackend

from .harness import Account

for _suite in (hierarchy_suite, messages_suite):
    for _name in dir(_suite):
        if _name.startswith("test_"):
            globals()[_name] = getattr(_suite, _name)


@pytest.fixture
async def backend(account: Account) -> AsyncIterator[MailBackend]:
    yield account.backend


@pytest.fixture
def events(backend: MailBackend) -> list[MailEvent]:
    seen: list[MailEvent] = []
    backend.events.subscribe(seen.append)
    return seen


def test_collected_the_whole_suite() -> None:
    assert len([name for name in globals() if name.startswith("test_")]) > 20
