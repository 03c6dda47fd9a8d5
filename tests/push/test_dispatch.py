"""ChangeDispatcher on its own: coalescing, the lookup bound, failure isolation.

The locator here is a plain function (the folder map a store would give); the manager's
real locator is exercised against the simulator in test_subscriptions and test_engine.
"""

from __future__ import annotations

import logging

import pytest

from bridge.push import ChangeDispatcher, ChangeKind
from tests.push.conftest import Changes

FOLDERS = {"m1": "inbox", "m2": "inbox", "m3": "archive"}


class Locator:
    def __init__(self) -> None:
        self.asked: list[tuple[str, ChangeKind, str]] = []

    async def __call__(self, account_id: str, kind: ChangeKind, message_id: str) -> str | None:
        self.asked.append((account_id, kind, message_id))
        if message_id == "boom":
            raise RuntimeError("locator failure")
        return FOLDERS.get(message_id)


async def test_a_burst_becomes_one_call_per_folder() -> None:
    changes, locate = Changes(), Locator()
    d = ChangeDispatcher(changes, locate)
    for mid in ("m1", "m2", "m1", "m3", "m1"):
        d.message_changed("a", ChangeKind.UPDATED, mid)
    d.message_changed("b", ChangeKind.CREATED, "m3")
    await d.flush()
    assert sorted(changes.calls) == [("a", "archive"), ("a", "inbox"), ("b", "archive")]
    assert len(locate.asked) == 4  # duplicates of m1 were looked up once
    assert d.nudges == 3
    await d.flush()
    assert d.nudges == 3  # nothing pending: nothing called


async def test_unknown_folder_or_too_many_messages_mean_all_folders() -> None:
    changes, locate = Changes(), Locator()
    d = ChangeDispatcher(changes, locate, max_lookups=3)
    d.message_changed("a", ChangeKind.DELETED, "not-in-store")
    for n in range(4):
        d.message_changed("b", ChangeKind.CREATED, f"new-{n}")
    await d.flush()
    assert sorted(changes.calls, key=str) == [("a", None), ("b", None)]
    assert [a for a, _, _ in locate.asked] == ["a"]  # b overflowed before any lookup


async def test_resync_subsumes_message_changes() -> None:
    changes, locate = Changes(), Locator()
    d = ChangeDispatcher(changes, locate)
    d.message_changed("a", ChangeKind.UPDATED, "m1")
    d.resync("a")
    d.message_changed("a", ChangeKind.UPDATED, "m3")
    await d.flush()
    assert changes.calls == [("a", None)]
    assert locate.asked == []


async def test_failures_are_isolated(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[str, str | None]] = []

    def on_change(account_id: str, folder_id: str | None) -> None:
        calls.append((account_id, folder_id))
        if account_id == "a":
            raise RuntimeError("engine failure")

    d = ChangeDispatcher(on_change, Locator())
    d.message_changed("a", ChangeKind.UPDATED, "m1")
    d.message_changed("b", ChangeKind.UPDATED, "boom")
    with caplog.at_level(logging.ERROR, logger="bridge.push"):
        await d.flush()
    assert sorted(calls, key=str) == [("a", "inbox"), ("b", None)]
    assert "on_change failed" in caplog.text and "locating a changed message" in caplog.text


async def test_the_worker_debounces_then_calls() -> None:
    changes = Changes()
    d = ChangeDispatcher(changes, Locator(), debounce=0.05)
    d.start()
    try:
        d.message_changed("a", ChangeKind.UPDATED, "m1")
        d.message_changed("a", ChangeKind.UPDATED, "m2")
        assert await changes.wait() == [("a", "inbox")]
    finally:
        await d.stop()
