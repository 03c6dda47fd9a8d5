"""No CPU-heavy or blocking work on the event loop (or in the store's single writer).

Hashing and summarising a 30 MB body takes tens of milliseconds; on the event loop that
stalls every client of every account, and in the store's writer thread it stalls every
account's writes. The tests record on which thread the SHA-256 and the blob writes of a
large body run while a client FETCHes it and APPENDs one.
"""

from __future__ import annotations

import threading

import pytest

from bridge.backend import cached
from bridge.backend.types import FetchNeed
from bridge.store.blobs import BlobCache
from bridge.sync import engine
from tests.cached.harness import Account, mail

BIG = 2_000_000


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names of the threads that hashed bodies and wrote blobs."""
    seen: dict[str, list[str]] = {"hash": [], "put": []}
    real_hash = cached.blob_hash
    real_put = BlobCache.put_sync

    def hashing(data: bytes) -> str:
        if len(data) >= BIG:
            seen["hash"].append(threading.current_thread().name)
        return real_hash(data)

    def putting(self: BlobCache, data: bytes, *, pin: bool = False) -> str:
        if len(data) >= BIG:
            seen["put"].append(threading.current_thread().name)
        return real_put(self, data, pin=pin)

    monkeypatch.setattr(cached, "blob_hash", hashing)
    monkeypatch.setattr(engine, "blob_hash", hashing)
    monkeypatch.setattr(BlobCache, "put_sync", putting)
    return seen


async def test_large_bodies_are_hashed_and_stored_off_the_loop(
    account: Account, threads: dict[str, list[str]]
) -> None:
    sim, alice = account.tenant.sim, account.tenant.alice
    sim.deliver(alice, mail(1, body="y" * BIG))
    await account.sync()
    snap = await account.backend.select("INBOX", read_only=False)
    data = await account.backend.fetch(
        snap.mailbox_id, [snap.messages[0].uid], FetchNeed.BODY | FetchNeed.SIZE
    )
    assert data[0].size == len(data[0].body or b"") > BIG
    await account.backend.append("INBOX", mail(2, body="z" * BIG), frozenset({"\\Draft"}), None)
    loop_thread = threading.main_thread().name
    assert threads["hash"], "the body was never hashed"
    assert loop_thread not in threads["hash"]
    assert loop_thread not in threads["put"]
    assert "store-writer" not in threads["put"], "a large blob was written by the store writer"
