"""The blob cache under threads: a pin must protect a blob from an eviction in progress.

The mailbox state pins the bytes a client saw from the store's writer thread while other
threads ``put`` blobs and evict. If a pin lands after an eviction chose its victims but
before it deleted them, the pinned bytes must survive, and a put racing an eviction must
never leave an index entry without its file.
"""

from __future__ import annotations

from pathlib import Path

from bridge.store.blobs import BlobCache


class _PinDuringEviction(BlobCache):
    """Pins ``target`` at the moment an eviction looks up its victims' paths: the
    latest point at which the writer thread's pin can interleave with the eviction."""

    target: str | None = None

    def _path(self, digest: str) -> Path:
        if digest == self.target:
            self.target = None
            self.pin_sync(digest)
        return super()._path(digest)


def test_a_pin_landing_during_an_eviction_keeps_the_blob(tmp_path: Path) -> None:
    cache = _PinDuringEviction(tmp_path, max_bytes=150)
    old = cache.put_sync(b"o" * 100)
    cache.target = old  # the next eviction picks ``old``; the pin arrives meanwhile
    cache.put_sync(b"n" * 100)
    assert cache.is_pinned(old)
    assert cache.get_sync(old) == b"o" * 100


def test_a_put_of_a_blob_being_evicted_leaves_file_and_entry_together(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=150)
    first = cache.put_sync(b"f" * 100)
    cache.put_sync(b"s" * 100)  # evicts ``first``
    assert cache.get_sync(first) is None
    assert cache.put_sync(b"f" * 100, pin=True) == first
    assert cache.get_sync(first) == b"f" * 100
    assert cache.contains(first)
