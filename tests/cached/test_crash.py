"""Crash safety: SIGKILL in the middle of a delta round loses, duplicates and renumbers
nothing (transactions + idempotent replay)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .harness import mail, open_account

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_during_delta_apply(tenant: Any, tmp_path: Path) -> None:
    sim, alice = tenant.sim, tenant.alice
    state = tmp_path / "alice"
    acc, app = await open_account(tenant, state)
    await acc.sync()  # empty INBOX: the delta token is stored
    await acc.close()
    await app.aclose()

    base = datetime(2026, 2, 1, tzinfo=UTC)
    for n in range(1, 61):
        sim.deliver(alice, mail(n), received=base + timedelta(minutes=n))
    sim.faults.latency = 0.05  # six pages of ten: the kill lands mid-round
    settings = dict(tenant.cloud_settings(), user=alice.upn)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        str(state),
        json.dumps(settings),
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert child.stdout is not None
    committed = 0
    try:
        while committed == 0:
            line = (await asyncio.wait_for(child.stdout.readline(), timeout=60)).decode()
            assert line, "the child exited early"
            if line.startswith("committed"):
                committed = int(line.split()[1])
        child.send_signal(signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
        sim.faults.latency = 0.0
    assert 0 < committed < 60

    acc, app = await open_account(tenant, state)
    try:
        partial = await acc.backend.select("INBOX", read_only=True)
        assert 0 < len(partial.messages) < 60
        await acc.sync()
        snap = await acc.backend.select("INBOX", read_only=True)
        assert snap.uidvalidity == partial.uidvalidity
        assert [m.uid for m in snap.messages] == list(range(1, 61))
        # The UIDs given before the kill still name the same messages.
        ids = await acc.store.read(
            lambda db: db.execute(
                "SELECT uid, internet_message_id FROM ms_messages"
                " WHERE account_id = 'alice' ORDER BY uid"
            ).fetchall()
        )
        assert [imid for _, imid in ids] == [f"<cached-{n}@example.test>" for n in range(1, 61)]
    finally:
        await acc.close()
        await app.aclose()
