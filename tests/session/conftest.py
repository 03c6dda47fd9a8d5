"""Fixtures for session transcript tests: a MemoryBackend with messages, and clients."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.backend.memory import MemoryAuthenticator, MemoryBackend

from .transcript import Client, message


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def authenticator(backend: MemoryBackend) -> MemoryAuthenticator:
    return MemoryAuthenticator({"user": ("secret", backend)})


@pytest.fixture
def client(authenticator: MemoryAuthenticator) -> Client:
    return Client(authenticator)


@pytest.fixture
def new_client(authenticator: MemoryAuthenticator) -> Callable[..., Client]:
    def make(**options: object) -> Client:
        return Client(authenticator, **options)

    return make


async def deliver(
    backend: MemoryBackend, count: int, mailbox: str = "INBOX", flags: frozenset[str] = frozenset()
) -> list[int]:
    uids = []
    for n in range(1, count + 1):
        uids.append((await backend.append(mailbox, message(n), flags, None)).uid)
    return uids
