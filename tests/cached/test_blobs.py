"""The body blob cache: content addressing, LRU eviction, pins, crash leftovers."""

from __future__ import annotations

from pathlib import Path

from bridge.store.blobs import BlobCache, blob_hash


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_put_get_round_trip_and_dedup(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=10_000)
    digest = cache.put_sync(b"hello")
    assert digest == blob_hash(b"hello")
    assert cache.put_sync(b"hello") == digest
    assert cache.get_sync(digest) == b"hello"
    assert cache.stats().blobs == 1 and cache.stats().bytes == 5


def test_lru_eviction_skips_pinned(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=250, clock=Clock())
    a = cache.put_sync(b"a" * 100, pin=True)
    b = cache.put_sync(b"b" * 100)
    c = cache.put_sync(b"c" * 100)  # over the cap: b is the oldest unpinned
    assert cache.contains(a) and not cache.contains(b) and cache.contains(c)
    assert cache.get_sync(c) == b"c" * 100  # c is now the most recent
    d = cache.put_sync(b"d" * 100)
    assert cache.contains(a) and not cache.contains(c) and cache.contains(d)
    cache.unpin_sync(a)
    cache.put_sync(b"e" * 100)
    assert not cache.contains(a)


def test_state_survives_reopen_and_corruption_is_a_miss(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=10_000)
    kept = cache.put_sync(b"kept", pin=True)
    broken = cache.put_sync(b"broken")
    (tmp_path / "objects" / broken[:2] / broken).write_bytes(b"tampered")
    (tmp_path / "objects" / kept[:2] / ".tmp-crash").write_bytes(b"partial")
    again = BlobCache(tmp_path, max_bytes=10_000)
    assert again.is_pinned(kept)
    assert again.get_sync(kept) == b"kept"
    assert again.get_sync(broken) is None
    assert not again.contains(broken)
    assert not (tmp_path / "objects" / kept[:2] / ".tmp-crash").exists()
