"""Mailbox-state tables: UIDVALIDITY, UID allocation, modseq, isolation, restarts."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from bridge.store import Store
from bridge.store import mailstate as ms


def state(n: int, change: str = "c1") -> ms.MessageState:
    return ms.MessageState(
        message_id=f"m{n}",
        change_key=change,
        received=f"2026-01-0{n}T00:00:00+00:00",
        is_read=False,
        is_draft=False,
        flagged=False,
    )


def folder(db: sqlite_utils.Database, account: str, folder_id: str, now: float) -> ms.FolderRow:
    row, _ = ms.upsert_folder(
        db,
        account,
        folder_id=folder_id,
        parent_id=None,
        display_name=folder_id,
        well_known=None,
        hidden=False,
        is_search=False,
        now=now,
    )
    return row


async def test_uids_are_never_reused_and_survive_restart(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")

    def fill(db: sqlite_utils.Database) -> list[int]:
        folder(db, "a", "f", 1000.0)
        uids = [ms.add_message(db, "a", "f", state(n)).uid for n in (1, 2, 3)]
        # Idempotent: the same remote id keeps its UID.
        assert ms.add_message(db, "a", "f", state(2, "c2")).uid == uids[1]
        ms.remove_messages(db, "a", "f", [uids[2]])
        uids.append(ms.add_message(db, "a", "f", state(4)).uid)
        return uids

    uids = await store.write(fill)
    assert uids == [1, 2, 3, 4]
    before = await store.read(lambda db: ms.get_folder(db, "a", "f"))
    await store.close()
    store = await Store.open(tmp_path / "db.sqlite")
    after = await store.read(lambda db: ms.get_folder(db, "a", "f"))
    rows = await store.read(lambda db: ms.messages(db, "a", "f"))
    await store.close()
    assert before == after and after is not None
    assert after.uidnext == 5
    assert [r.uid for r in rows] == [1, 2, 4]


async def test_uidvalidity_grows_and_accounts_are_isolated(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")

    def make(db: sqlite_utils.Database) -> tuple[int, int, int]:
        first = folder(db, "a", "f1", 5000.0).uidvalidity
        second = folder(db, "a", "f2", 5000.0).uidvalidity  # same second: still new
        ms.delete_folder(db, "a", "f1")
        third = folder(db, "a", "f1", 10.0).uidvalidity  # clock went back: still grows
        return first, second, third

    first, second, third = await store.write(make)
    assert first == 5000 and second == 5001 and third == 5002
    assert await store.read(lambda db: ms.get_folder(db, "b", "f2")) is None
    assert await store.read(lambda db: ms.list_folders(db, "b")) == []
    await store.close()


async def test_modseq_and_quiet_updates(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")

    def work(db: sqlite_utils.Database) -> tuple[int, int, int, int]:
        folder(db, "a", "f", 1.0)
        row = ms.add_message(db, "a", "f", state(1))
        loud = ms.update_state(db, "a", "f", row.uid, state(1, "c2"))
        quiet = ms.update_state(db, "a", "f", row.uid, state(1, "c3"), bump=False)
        deleted = ms.set_deleted(db, "a", "f", row.uid, True)
        highest = ms.get_folder(db, "a", "f")
        assert highest is not None
        return loud, quiet, deleted, highest.highestmodseq

    loud, quiet, deleted, highest = await store.write(work)
    assert quiet == loud < deleted == highest
    await store.close()
