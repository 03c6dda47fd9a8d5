"""The fault matrix: every Graph fault the simulator can inject x every client operation,
against the whole bridge in-process (issue 8, "Fault matrix"; issue 5, "Isolation and
safety").

Each cell: set up a mailbox with mail (no fault), start the fault, run the operation as
a real client would (``imaplib``/``smtplib``, reconnecting and retrying on ``NO`` or a
dropped connection, never with user action), stop the fault, let one sync pass run, and
check the invariants with ``assert_consistent`` (no message lost or duplicated, no UID
renumbered, UIDVALIDITY unchanged, fresh login + SELECT shows Graph's count) plus what
the operation itself promised (the flags reached Graph, the copy exists once, exactly
one message was sent for a ``250``, ...).

Change notifications: ``bridge/push`` exists but ``bridge.app`` does not wire it into
the daemon yet, so the dropped/duplicated notification cells are covered in
``test_notifications.py`` at the push layer; here the bridge runs on delta polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    ImapUnavailable,
    InProcessBridge,
    Snapshot,
    _check,
    _quote,
    assert_consistent,
    assert_sent_once,
    deliver_many,
    imap_login,
    in_process_bridge,
    make_mime,
    message_id,
    sim_message_ids,
    smtp_send_with_retries,
    snapshot,
    with_retries,
)

SEEDED = 6
APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")


# ---------------------------------------------------------------------------- faults
class Evidence(logging.Handler):
    """Proof that a fault actually hit the bridge: HTTP status lines httpx logged, the
    bridge's retry logs, injected faults the simulator drew, and the wall time."""

    def __init__(self, sim: Any) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.drawn = 0
        self.started = time.monotonic()
        self.elapsed = 0.0
        self._sim = sim

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    @contextlib.contextmanager
    def watching(self) -> Iterator[Evidence]:
        loggers = [logging.getLogger(name) for name in ("httpx", "bridge")]
        levels = [logger.level for logger in loggers]
        faults = self._sim.faults
        original = faults.chance

        def chance(rate: float) -> bool:
            hit = original(rate)
            self.drawn += hit
            return hit

        faults.chance = chance  # counts the simulator's injected errors and resets
        for logger in loggers:
            logger.addHandler(self)
            logger.setLevel(logging.INFO)
        try:
            yield self
        finally:
            self.elapsed = time.monotonic() - self.started
            del faults.chance
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(self)
                logger.setLevel(level)


@dataclass(frozen=True)
class Fault:
    name: str
    start: Callable[[Any, Any], None]  # (sim, tenant) → switch the fault on
    #: Whether the evidence shows the fault really hit (a cell that never met its fault
    #: would pass for the wrong reason).
    felt: Callable[[Evidence], bool]
    #: while the operation runs, repeat this every ``every`` seconds (faults that are
    #: events rather than conditions: token expiry, delta token expiry).
    repeat: Callable[[Any, Any], None] | None = None
    every: float = 0.3
    #: a spike: the condition ends by itself after this many seconds (None: it lasts
    #: until the operation is done).
    lasts: float | None = None


def _storm(sim: Any, _: Any) -> None:
    # A burst of throttling on every kind of request, each with a short Retry-After.
    sim.faults.fail_next("*", count=8, status=429, retry_after=0.1)


def _first_draw_hits(sim: Any, rate: float) -> None:
    """Seed the simulator's fault RNG so that its very next draw is a hit: an operation
    makes only a few Graph requests, and a cell whose fault never struck proves nothing.
    The draws after it stay random (reproducibly so)."""
    seed = next(n for n in range(1, 10_000) if random.Random(n).random() < rate)
    sim.faults.rng.seed(seed)


def _burst(status: int) -> Callable[[Any, Any], None]:
    def start(sim: Any, _: Any) -> None:
        _first_draw_hits(sim, 0.25)
        sim.set_faults(error_rate=0.25, error_status=status, retry_after=0.05)

    return start


def _resets(sim: Any, _: Any) -> None:
    _first_draw_hits(sim, 0.3)
    sim.set_faults(reset_rate=0.3)


def _latency(sim: Any, _: Any) -> None:
    sim.set_faults(latency=2.0)


def _nothing(sim: Any, _: Any) -> None:
    sim.faults.clear()


def _expire_tokens(sim: Any, _: Any) -> None:
    sim.expire_tokens()


def _expire_delta(sim: Any, tenant: Any) -> None:
    sim.expire_delta_tokens(tenant.alice)


FAULTS = [
    Fault("429 storm", _storm, lambda e: e.saw(" 429") or e.saw("429, retry") or e.saw("hrottl")),
    Fault("503 burst", _burst(503), lambda e: e.drawn > 0),
    Fault("504 burst", _burst(504), lambda e: e.drawn > 0),
    Fault("connection resets", _resets, lambda e: e.drawn > 0),
    # A spike of 5 s, so that the initial sync (dozens of requests) stays short.
    Fault("2 s latency", _latency, lambda e: e.elapsed >= 2.0, lasts=5.0),
    Fault("token expiry", _expire_tokens, lambda e: e.saw(" 401"), _expire_tokens, 0.25),
    Fault("expired delta token", _expire_delta, lambda e: e.saw(" 410"), _expire_delta, 0.3),
]


@contextlib.asynccontextmanager
async def faulted(fault: Fault, tenant: Any) -> AsyncIterator[None]:
    sim = tenant.sim
    fault.start(sim, tenant)
    repeater: asyncio.Task[None] | None = None
    if fault.lasts is not None:
        lasts = fault.lasts

        async def spike_ends() -> None:
            await asyncio.sleep(lasts)
            sim.faults.clear()

        repeater = asyncio.ensure_future(spike_ends())
    elif fault.repeat is not None:
        repeat = fault.repeat

        async def loop() -> None:
            while True:
                await asyncio.sleep(fault.every)
                repeat(sim, tenant)

        repeater = asyncio.ensure_future(loop())
    try:
        yield
    finally:
        if repeater is not None:
            repeater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await repeater
        sim.faults.clear()


# ---------------------------------------------------------------------------- operations
@dataclass
class Cell:
    bridge: InProcessBridge
    tenant: Any
    fault: Fault
    before: Snapshot | None = None
    projects_before: Snapshot | None = None

    @property
    def sim(self) -> Any:
        return self.tenant.sim

    @property
    def port(self) -> int:
        return self.bridge.imap_port

    async def seed(self) -> None:
        """Mail in INBOX and an empty Projects folder, synced without faults."""
        await asyncio.to_thread(deliver_many, self.sim, self.tenant.alice, SEEDED)
        self.sim.create_folder(self.tenant.alice, "Projects")
        await self.bridge.sync_until_clean()
        self.before = await asyncio.to_thread(snapshot, self.port)
        self.projects_before = await asyncio.to_thread(snapshot, self.port, "Projects")
        assert self.before.exists == SEEDED

    async def settle(self) -> Snapshot:
        """After the fault: one clean sync pass, then every invariant on INBOX."""
        await self.bridge.sync_until_clean()
        return await asyncio.to_thread(
            assert_consistent, self.sim, self.tenant.alice, self.port, before=self.before
        )

    async def settle_projects(self) -> Snapshot:
        projects = self._projects_id()
        return await asyncio.to_thread(
            assert_consistent,
            self.sim,
            self.tenant.alice,
            self.port,
            mailbox="Projects",
            folder=projects,
            before=self.projects_before,
        )

    def _projects_id(self) -> str:
        return next(
            f["id"] for f in self.sim.folders(self.tenant.alice) if f["displayName"] == "Projects"
        )

    def imap(self, action: Callable[[imaplib.IMAP4], Any], mailbox: str = "INBOX") -> Any:
        """One client attempt: fresh connection, SELECT, action, logout."""

        def attempt() -> Any:
            imap = imap_login(self.port)
            try:
                _check(*imap.select(_quote(mailbox)), f"SELECT {mailbox}")
                return action(imap)
            finally:
                with contextlib.suppress(Exception):
                    imap.logout()

        return with_retries(attempt)


def _uids(snap: Snapshot, count: int) -> list[int]:
    return sorted(snap.by_uid)[:count]


async def op_initial_sync(cell: Cell) -> None:
    """The bridge starts while the fault is on: initial sync, then a full FETCH with
    bodies. Set up by the test (the bridge must not exist before the fault)."""
    await cell.bridge.sync_until_clean()
    seen = await asyncio.to_thread(with_retries, lambda: _full_fetch(cell.port, expected=SEEDED))
    cell.before = seen
    cell.sim.faults.clear()
    await cell.bridge.sync_until_clean()
    await asyncio.to_thread(
        assert_consistent,
        cell.sim,
        cell.tenant.alice,
        cell.port,
        before=seen,
        check_bodies=True,
    )


def _full_fetch(port: int, expected: int) -> Snapshot:
    try:
        snap = snapshot(port, bodies=True)
    except AssertionError:
        raise
    except Exception as exc:
        raise ImapUnavailable(repr(exc)) from exc
    if snap.exists != expected or len(snap.bodies) != expected:
        raise ImapUnavailable(f"{snap.exists} of {expected} messages, {len(snap.bodies)} bodies")
    return snap


async def op_append(cell: Cell) -> None:
    mime = make_mime(900, cell.tenant.alice.mail, "x@example.net", tag="append")
    answers: list[bytes] = []

    def append(imap: imaplib.IMAP4) -> None:
        typ, data = imap.append("INBOX", r"(\Seen)", None, mime)
        _check(typ, data, "APPEND")
        answers.append(data[0])

    async with faulted(cell.fault, cell.tenant):
        await asyncio.to_thread(cell.imap, append)
    after = await cell.settle()
    mid = message_id(900, "append")
    assert sim_message_ids(cell.sim, cell.tenant.alice, "inbox")[mid] == 1
    found = APPENDUID.search(answers[-1])
    assert found, f"no APPENDUID in {answers[-1]!r}"
    assert int(found.group(1)) == after.uidvalidity
    assert after.by_uid[int(found.group(2))] == mid


async def op_store(cell: Cell) -> None:
    assert cell.before is not None
    uids = _uids(cell.before, 3)
    uid_set = ",".join(map(str, uids))

    def store(imap: imaplib.IMAP4) -> None:
        _check(*imap.uid("STORE", uid_set, "+FLAGS", r"(\Seen \Flagged)"), "STORE")

    async with faulted(cell.fault, cell.tenant):
        await asyncio.to_thread(cell.imap, store)
    await cell.settle()
    mids = {cell.before.by_uid[uid] for uid in uids}
    for message in cell.sim.messages(cell.tenant.alice, "inbox"):
        changed = message["internetMessageId"] in mids
        assert message["isRead"] is changed, message["internetMessageId"]
        assert (message["flag"]["flagStatus"] == "flagged") is changed

    def flags(imap: imaplib.IMAP4) -> list[bytes]:
        return list(_check(*imap.uid("FETCH", uid_set, "(FLAGS)"), "FETCH FLAGS"))

    for line in await asyncio.to_thread(cell.imap, flags):
        assert b"\\Seen" in line and b"\\Flagged" in line, line


async def _transfer(cell: Cell, command: str) -> None:
    assert cell.before is not None
    uids = _uids(cell.before, 2)
    uid_set = ",".join(map(str, uids))

    def transfer(imap: imaplib.IMAP4) -> None:
        _check(*imap.uid(command, uid_set, "Projects"), command)

    async with faulted(cell.fault, cell.tenant):
        await asyncio.to_thread(cell.imap, transfer)
    after = await cell.settle()
    projects = await cell.settle_projects()
    moved = {cell.before.by_uid[uid] for uid in uids}
    assert set(projects.by_uid.values()) == moved
    if command == "MOVE":
        assert not moved & set(after.by_uid.values())
        assert after.exists == SEEDED - 2
    else:
        assert after.exists == SEEDED


async def op_copy(cell: Cell) -> None:
    await _transfer(cell, "COPY")


async def op_move(cell: Cell) -> None:
    await _transfer(cell, "MOVE")


async def op_expunge(cell: Cell) -> None:
    assert cell.before is not None
    uids = _uids(cell.before, 2)
    uid_set = ",".join(map(str, uids))

    def expunge(imap: imaplib.IMAP4) -> None:
        _check(*imap.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
        _check(*imap.expunge(), "EXPUNGE")

    async with faulted(cell.fault, cell.tenant):
        await asyncio.to_thread(cell.imap, expunge)
    after = await cell.settle()
    gone = {cell.before.by_uid[uid] for uid in uids}
    assert not gone & set(sim_message_ids(cell.sim, cell.tenant.alice, "inbox"))
    assert after.exists == SEEDED - 2


async def op_smtp(cell: Cell) -> None:
    tenant = cell.tenant
    mime = make_mime(1, tenant.alice.mail, tenant.bob.mail, tag="smtp-matrix")
    async with faulted(cell.fault, tenant):
        outcomes = await asyncio.to_thread(
            smtp_send_with_retries, cell.bridge.smtp_port, tenant.alice.mail, tenant.bob.mail, mime
        )
    assert outcomes[-1] == "250", outcomes
    assert_sent_once(cell.sim, tenant.alice, message_id(1, "smtp-matrix"), answered_250=True)
    await cell.settle()  # nothing in INBOX changed


OPERATIONS: dict[str, Callable[[Cell], Awaitable[None]]] = {
    "initial sync + FETCH": op_initial_sync,
    "APPEND": op_append,
    "STORE flags": op_store,
    "COPY": op_copy,
    "MOVE": op_move,
    "EXPUNGE": op_expunge,
    "SMTP send": op_smtp,
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_operation_under_fault(
    fault: Fault,
    operation: str,
    tenant: Any,
    tmp_path: Path,
    matrix: Callable[[str, str], None],
) -> None:
    matrix(fault.name, operation)
    with Evidence(tenant.sim).watching() as evidence:
        await _run_cell(fault, operation, tenant, tmp_path)
    assert fault.felt(evidence), f"the fault never hit: {evidence.lines[-20:]}"


async def _run_cell(fault: Fault, operation: str, tenant: Any, tmp_path: Path) -> None:
    if operation == "initial sync + FETCH":
        await asyncio.to_thread(deliver_many, tenant.sim, tenant.alice, SEEDED)
        async with (
            faulted(fault, tenant),
            in_process_bridge(tenant, tmp_path / "state") as bridge,
        ):
            await OPERATIONS[operation](Cell(bridge, tenant, fault))
        return
    async with in_process_bridge(tenant, tmp_path / "state") as bridge:
        cell = Cell(bridge, tenant, fault)
        await cell.seed()
        await OPERATIONS[operation](cell)


async def test_one_gateway_timeout_inside_a_batch_read_is_retried(
    tenant: Any, tmp_path: Path, matrix: Callable[[str, str], None]
) -> None:
    """The deterministic core of the 504-burst initial-sync cell: ONE 504 on one inner
    request of an idempotent ``$batch`` read (the well-known folder lookup at the start of
    the first sync pass) must be retried like the same 504 on a plain GET is, instead of
    failing the account's first sync."""
    from bridge.store import accounts as acct

    matrix("504 once (in $batch)", "initial sync + FETCH")
    sim = tenant.sim
    await asyncio.to_thread(deliver_many, sim, tenant.alice, 2)
    sim.faults.fail_next("folder.get", count=1, status=504)
    async with in_process_bridge(tenant, tmp_path / "state") as bridge:
        store, core = bridge.listeners.store, bridge.listeners.bridge
        assert store is not None and core is not None
        # The rule serves whichever mailbox asks first (alice or bob): watch both.
        engines = []
        for login in ("alice", "bob"):
            account = await store.read(lambda db, login=login: acct.get_account_by_login(db, login))
            engines.append((await core.runtime(account)).engine)
        deadline = time.monotonic() + 30
        while any(engine.state.value == "connecting" for engine in engines):
            assert time.monotonic() < deadline, "a first sync pass never ended"
            await asyncio.sleep(0.01)
        assert not sim.faults.rules, "the 504 was never served (the test proves nothing)"
        for engine in engines:
            assert engine.state.value == "connected", f"first sync failed: {engine.error}"
