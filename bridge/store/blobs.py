"""The body blob cache: message bytes on disk, content-addressed, size-capped, with pins.

Theory of operation. A blob is stored once under ``objects/ab/<sha256 hex>``, written to
a temporary file and renamed into place, so a crash never leaves a torn blob; every read
re-hashes the bytes and treats a mismatch as a miss (the file is removed). The cache
keeps an in-memory index (size and last access per blob) built by scanning the directory
at open; last access survives restarts through the file's mtime.

Eviction is LRU by last access over *unpinned* blobs, run after each ``put`` until the
total size is within ``max_bytes``. A pinned blob is never evicted: the mailbox state
pins the bytes a client has seen (or appended), so that what the bridge served for a
UID can always be served again byte-for-byte even if Exchange would now generate
different MIME. Pins are marker files under ``pins/`` (so they survive restarts) and are
set and cleared by the mailbox-state writer, which knows whether any message still needs
the bytes. Pinned bytes count toward the total but are not limited by the cap; the cap
bounds what prefetch and unseen downloads may occupy.

Thread-safe: methods may be called from the store's writer thread and from worker
threads; the ``async`` helpers run the file I/O off the event loop. May import only the
standard library.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def blob_hash(data: bytes) -> str:
    """The content address of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(slots=True)
class _Entry:
    size: int
    last_access: float


#: Last-access times are written to disk at most this often per blob (seconds).
ACCESS_RESOLUTION = 60.0


@dataclass(frozen=True, slots=True)
class BlobStats:
    blobs: int
    bytes: int
    pinned_blobs: int
    pinned_bytes: int
    max_bytes: int


class BlobCache:
    """Size-capped, content-addressed byte store. Construct with ``BlobCache.open``."""

    def __init__(
        self, root: Path, max_bytes: int, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._clock: Callable[[], float] = clock or time.time
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._pins: set[str] = set()
        # Blobs whose bytes were hashed since this process started: a blob is verified on
        # its first read, not on every read (a 10,000-message TEXT search would otherwise
        # hash every body each time). Files are written once, atomically, never modified.
        self._verified: set[str] = set()
        self._total = 0
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "pins").mkdir(parents=True, exist_ok=True)
        self._scan()

    @classmethod
    async def open(cls, root: Path | str, max_bytes: int) -> BlobCache:
        return await asyncio.to_thread(cls, Path(root), max_bytes)

    def _now(self) -> float:
        return self._clock()

    def _path(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def _scan(self) -> None:
        for sub in (self.root / "objects").iterdir():
            if not sub.is_dir():
                continue
            for path in sub.iterdir():
                if path.name.startswith("."):
                    # A temporary file a crash left behind.
                    path.unlink(missing_ok=True)
                    continue
                stat = path.stat()
                self._entries[path.name] = _Entry(stat.st_size, stat.st_mtime)
                self._total += stat.st_size
        for marker in (self.root / "pins").iterdir():
            self._pins.add(marker.name)

    # -- synchronous API (any thread) ------------------------------------------------
    def contains(self, digest: str) -> bool:
        with self._lock:
            return digest in self._entries

    def put_sync(self, data: bytes, *, pin: bool = False) -> str:
        """Store ``data`` (pinned first if ``pin``); returns its hash. Evicts LRU
        unpinned blobs beyond the cap, never the one just stored."""
        digest = blob_hash(data)
        if pin:
            self.pin_sync(digest)
        path = self._path(digest)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                # Checked and touched in one step: an eviction cannot slip in between.
                entry.last_access = self._now()
        if entry is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                # The rename and the index entry change together (under the lock), so
                # an eviction sees either neither or both.
                with self._lock:
                    os.replace(tmp, path)
                    if digest not in self._entries:
                        self._entries[digest] = _Entry(len(data), self._now())
                        self._total += len(data)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        self._evict(keep=digest)
        return digest

    def get_sync(self, digest: str) -> bytes | None:
        """The bytes for ``digest``, or None if absent (or found corrupt and dropped)."""
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None:
            return None
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._forget(digest)
            return None
        if digest not in self._verified:
            if len(data) != entry.size or blob_hash(data) != digest:
                log.warning("blob %s was corrupt on disk; dropped it", digest[:12])
                path.unlink(missing_ok=True)
                self._forget(digest)
                return None
            self._verified.add(digest)
        now = self._now()
        with self._lock:
            stale = now - entry.last_access > ACCESS_RESOLUTION
            entry.last_access = now
        if stale:
            # The file's mtime carries the LRU order across restarts; coarse is enough.
            try:
                os.utime(path, (now, now))
            except OSError:
                pass
        return data

    def get_many_sync(self, digests: Iterable[str]) -> dict[str, bytes]:
        """Several blobs in one go (one thread hop for a whole FETCH/SEARCH chunk)."""
        found: dict[str, bytes] = {}
        for digest in digests:
            data = self.get_sync(digest)
            if data is not None:
                found[digest] = data
        return found

    def pin_sync(self, digest: str) -> None:
        """Pin ``digest``; once this returns, no eviction deletes it (see ``_evict``)."""
        with self._lock:
            if digest in self._pins:
                return
            self._pins.add(digest)
        (self.root / "pins" / digest).touch()

    def unpin_sync(self, digest: str) -> None:
        with self._lock:
            self._pins.discard(digest)
        (self.root / "pins" / digest).unlink(missing_ok=True)

    def is_pinned(self, digest: str) -> bool:
        with self._lock:
            return digest in self._pins

    def stats(self) -> BlobStats:
        with self._lock:
            pinned = [self._entries[d].size for d in self._pins if d in self._entries]
            return BlobStats(
                blobs=len(self._entries),
                bytes=self._total,
                pinned_blobs=len(pinned),
                pinned_bytes=sum(pinned),
                max_bytes=self.max_bytes,
            )

    def _forget(self, digest: str) -> None:
        with self._lock:
            entry = self._entries.pop(digest, None)
            if entry is not None:
                self._total -= entry.size
            self._verified.discard(digest)

    def _evict(self, keep: str | None = None) -> None:
        victims: list[str] = []
        with self._lock:
            if self._total <= self.max_bytes:
                return
            candidates = sorted(
                (entry.last_access, digest)
                for digest, entry in self._entries.items()
                if digest not in self._pins and digest != keep
            )
            total = self._total
            for _, digest in candidates:
                if total <= self.max_bytes:
                    break
                total -= self._entries[digest].size
                victims.append(digest)
        paths = {digest: self._path(digest) for digest in victims}
        evicted = 0
        with self._lock:
            # Re-checked under the lock that pin_sync takes: a blob pinned since it was
            # chosen (the mailbox state pins from the store's writer thread) stays.
            # Unlinking here is a metadata operation, short enough to hold the lock.
            for digest, path in paths.items():
                entry = self._entries.get(digest)
                if entry is None or digest in self._pins:
                    continue
                path.unlink(missing_ok=True)
                del self._entries[digest]
                self._total -= entry.size
                evicted += 1
        if evicted:
            log.debug("evicted %d blobs to stay within %d bytes", evicted, self.max_bytes)

    # -- async helpers (event loop) --------------------------------------------------
    async def put(self, data: bytes, *, pin: bool = False) -> str:
        return await asyncio.to_thread(lambda: self.put_sync(data, pin=pin))

    async def get(self, digest: str) -> bytes | None:
        return await asyncio.to_thread(self.get_sync, digest)

    async def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        return await asyncio.to_thread(self.get_many_sync, list(digests))
