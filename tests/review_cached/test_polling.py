"""Polling cost of folders a client only passed through (issue 5/7 request budget)."""

from __future__ import annotations

import inspect
from dataclasses import replace

from bridge.backend.cached import CacheSettings
from bridge.imap.session.core import ImapSession
from bridge.sync import SyncEngine
from tests.cached.harness import Account


def _idle_poke_interval() -> float:
    default = inspect.signature(ImapSession.__init__).parameters["idle_poke_interval"].default
    return float(default)


def test_a_watch_outlives_idle_pokes_but_not_a_passing_select() -> None:
    ttl = CacheSettings().watch_ttl
    # An IDLE client re-pokes before the watch lapses (with room for one late poke)...
    assert ttl >= 2 * _idle_poke_interval()
    # ...but mbsync's one SELECT per folder must not buy half an hour of fast polling.
    assert ttl <= 600


async def test_polling_slows_down_once_the_selecting_client_is_gone(account: Account) -> None:
    now = [1000.0]
    settings = replace(account.settings, poll_jitter=0.0)
    engine = SyncEngine(
        account.store,
        account.remote,
        account.backend.account_id,
        account.bus,
        account.blobs,
        settings=settings,
        clock=lambda: now[0],
    )
    inbox = await account.backend.select("INBOX", read_only=True)
    engine.watch(inbox.mailbox_id)
    assert engine._interval(inbox.mailbox_id) == settings.poll_watched
    now[0] += settings.watch_ttl + 1
    assert engine._interval(inbox.mailbox_id) == settings.poll_idle
