"""SQLite under asyncio: one writer thread, a few reader threads, migrations in code.

Theory of operation. SQLite allows one writer at a time; WAL lets readers proceed
while it writes. So every write goes through ``Store.write(fn)``: ``fn`` runs in the
single writer thread inside one transaction (committed when ``fn`` returns, rolled back
if it raises), and the awaiting coroutine gets ``fn``'s result. Reads run ``fn`` on a
small pool of reader connections. The event loop never touches a connection.

Migrations are registered per component (``register_migrations("accounts", [...])``),
each a list of SQL scripts or callables applied in order; the applied count per component
is kept in ``schema_versions``. Components own their tables and never share a list, so
two features can grow their schemas independently.

Must not import anything from the bridge except itself.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

log = logging.getLogger(__name__)

T = TypeVar("T")
Migration = str | Callable[[sqlite_utils.Database], None]

_MIGRATIONS: dict[str, list[Migration]] = {}


def register_migrations(component: str, migrations: list[Migration]) -> None:
    """Declare ``component``'s schema history. Append to the list; never edit old entries."""
    _MIGRATIONS[component] = migrations


def _connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class Store:
    """The bridge's database. Create with ``await Store.open(path)``; ``close()`` at exit."""

    def __init__(self, path: Path, readers: int = 3) -> None:
        self.path = path
        self._writes: queue.Queue[
            tuple[Callable[[sqlite_utils.Database], Any], Future[Any]] | None
        ] = queue.Queue()
        self._writer_db = sqlite_utils.Database(_connect(path))
        self._reader_pool: queue.Queue[sqlite_utils.Database] = queue.Queue()
        for _ in range(readers):
            self._reader_pool.put(sqlite_utils.Database(_connect(path)))
        self._readers = readers
        self._thread = threading.Thread(target=self._writer_loop, name="store-writer", daemon=True)
        self._closed = False

    @classmethod
    async def open(cls, path: Path | str, readers: int = 3) -> Store:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = await asyncio.to_thread(cls, path, readers)
        store._thread.start()
        await store.write(_migrate)
        return store

    @classmethod
    def open_sync(cls, path: Path | str) -> Store:
        """For command-line tools that run no event loop."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, readers=1)
        store._thread.start()
        store.write_sync(_migrate)
        return store

    def _writer_loop(self) -> None:
        db = self._writer_db
        while True:
            item = self._writes.get()
            if item is None:
                break
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                db.conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(db)
                except BaseException:
                    db.conn.execute("ROLLBACK")
                    raise
                db.conn.execute("COMMIT")
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
        db.conn.close()

    async def write(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn(db)`` in the writer thread inside one transaction."""
        return await asyncio.wrap_future(self._submit(fn))

    def write_sync(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        return self._submit(fn).result()

    def _submit(self, fn: Callable[[sqlite_utils.Database], T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("store is closed")
        future: Future[T] = Future()
        self._writes.put((fn, future))
        return future

    async def read(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn(db)`` on a reader connection in a worker thread."""
        return await asyncio.to_thread(self.read_sync, fn)

    def read_sync(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        db = self._reader_pool.get()
        try:
            # A read transaction gives fn one consistent snapshot across its queries.
            db.conn.execute("BEGIN")
            try:
                return fn(db)
            finally:
                db.conn.execute("ROLLBACK")
        finally:
            self._reader_pool.put(db)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writes.put(None)
        self._thread.join(timeout=30)
        for _ in range(self._readers):
            self._reader_pool.get().conn.close()


def _migrate(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions"
        " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    for component, migrations in sorted(_MIGRATIONS.items()):
        row = db.execute(
            "SELECT version FROM schema_versions WHERE component = ?", [component]
        ).fetchone()
        applied = row[0] if row else 0
        for index in range(applied, len(migrations)):
            step = migrations[index]
            if isinstance(step, str):
                for statement in _split_sql(step):
                    db.execute(statement)
            else:
                step(db)
            log.debug("applied migration %s #%d", component, index + 1)
        if len(migrations) != applied:
            db.execute(
                "INSERT INTO schema_versions(component, version) VALUES (?, ?) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                [component, len(migrations)],
            )


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT for us)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
