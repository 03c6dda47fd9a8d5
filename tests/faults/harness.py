"""Fault-matrix harness: the bridge in-process or as a killable subprocess, IMAP/SMTP
clients that retry the way real clients do, and ``assert_consistent``.

The invariants (issue 8, "Fault matrix"): no message lost, none duplicated, no UID
renumbered, UIDVALIDITY unchanged, every SMTP ``250`` matched by exactly one sent
message, and clients recover without user action (a fresh login + SELECT shows the
right count). ``assert_consistent`` checks the IMAP ones for one folder against the
Graph simulator; ``assert_sent_once`` the SMTP one.

Clients are the standard library's ``imaplib``/``smtplib`` run in threads, as a user's
client would run; they never see bridge internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import imaplib
import re
import smtplib
import socket
import sqlite3
import sys
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bridge.app import Listeners, run_daemon
from bridge.config import Config
from bridge.store import Store
from tests.e2e.conftest import PASSWORD, bridge_config, seed_accounts

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
#: Graph's own limit per mailbox (GRAPH-MAIL-FACTS §4.1); the bridge must never exceed it.
GRAPH_CONCURRENCY = 4
BASE_TIME = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)

_UID = re.compile(rb"UID (\d+)")
_MID = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
_COUNT = re.compile(rb"(\d+)")


# ---------------------------------------------------------------------------- messages
def make_mime(n: int, sender: str, to: str, *, tag: str = "fault", size: int = 0) -> bytes:
    """A small message with a unique, predictable Message-ID ``<tag-n@faults.test>``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"{tag} message {n}"
    msg["Date"] = email.utils.format_datetime(BASE_TIME + timedelta(minutes=n))
    msg["Message-ID"] = message_id(n, tag)
    msg.set_content(f"Body of {tag} message {n}.\n" + ("x" * 70 + "\n") * (size // 71))
    return msg.as_bytes().replace(b"\n", b"\r\n")


def message_id(n: int, tag: str = "fault") -> str:
    return f"<{tag}-{n}@faults.test>"


def deliver_many(sim: Any, user: Any, count: int, *, tag: str = "fault", start: int = 1) -> None:
    for n in range(start, start + count):
        sim.deliver(
            user,
            make_mime(n, "sender@example.net", user.mail, tag=tag),
            received=BASE_TIME + timedelta(minutes=n),
        )


# ---------------------------------------------------------------------------- the bridge
@dataclass
class InProcessBridge:
    """``bridge.app.run_daemon`` in the test's event loop (like tests/e2e's fixture)."""

    tenant: Any
    config: Config
    listeners: Listeners

    @property
    def sim(self) -> Any:
        return self.tenant.sim

    @property
    def imap_port(self) -> int:
        return int(self.listeners.imap.port)

    @property
    def smtp_port(self) -> int:
        return int(self.listeners.smtp.port)

    async def sync_now(self, login: str = "alice") -> None:
        from bridge.store import accounts as acct

        bridge, store = self.listeners.bridge, self.listeners.store
        assert bridge is not None and store is not None
        account = await store.read(lambda db: acct.get_account_by_login(db, login))
        runtime = await bridge.runtime(account)
        await runtime.engine.sync_now()

    async def sync_until_clean(self, login: str = "alice", attempts: int = 8) -> None:
        """``sync_now`` until one pass succeeds (a fault may fail a pass; the poller
        would simply try again later, this only does it sooner)."""
        last: Exception | None = None
        for _ in range(attempts):
            try:
                await self.sync_now(login)
                return
            except Exception as exc:  # a RemoteError of a faulted pass
                last = exc
        where = "".join(traceback.format_tb(last.__traceback__)[-4:]) if last else ""
        raise AssertionError(f"no clean sync pass in {attempts} attempts: {last!r}\n{where}")


@contextlib.asynccontextmanager
async def in_process_bridge(
    tenant: Any, state_dir: Path, **sync: Any
) -> AsyncIterator[InProcessBridge]:
    sync.setdefault("prefetch_days", 0)  # bodies come from Graph on demand, under the fault
    config = bridge_config(state_dir, **sync)
    # A retry of an unconfirmed send waits for Sent Items (2 min by default); short here so
    # a client's retry lands inside the test's time. The logic it exercises is unchanged.
    config = dataclasses.replace(
        config, smtp=dataclasses.replace(config.smtp, unconfirmed_send_wait=2.0)
    )
    store = await Store.open(config.state_dir / "bridge.db")
    try:
        await seed_accounts(store, tenant)
    finally:
        await store.close()
    ready: asyncio.Future[Listeners] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def on_ready(listeners: Listeners) -> None:
        ready.set_result(listeners)

    task = asyncio.ensure_future(run_daemon(config, stop=stop, on_ready=on_ready))
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready in done, "the bridge did not become ready within 60 s"
    listeners = ready.result()
    try:
        yield InProcessBridge(tenant, config, listeners)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BridgeProcess:
    """``python -m bridge serve`` as a child process that a test may SIGKILL."""

    tenant: Any
    state_dir: Path
    config_file: Path
    imap_port: int
    smtp_port: int
    http_port: int
    proc: asyncio.subprocess.Process | None = None
    log_file: Path | None = None
    starts: int = 0

    @property
    def db(self) -> Path:
        return self.state_dir / "bridge.db"

    async def start(self) -> None:
        assert self.proc is None or self.proc.returncode is not None
        self.starts += 1
        self.log_file = self.state_dir.parent / f"bridge-{self.starts}.log"
        with self.log_file.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridge",
                "serve",
                "--config",
                str(self.config_file),
                stdout=log,
                stderr=log,
                cwd=str(ROOT),
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"bridge exited at start:\n{self.log_text()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.imap_port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise AssertionError(f"bridge did not listen within 60 s:\n{self.log_text()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, exactly like a power cut of the process."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()

    async def wait(self) -> None:
        if self.proc is not None:
            await asyncio.wait_for(self.proc.wait(), timeout=30)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file else ""

    def db_count(self, sql: str, *params: Any) -> int:
        """A read-only query of the bridge's database while it runs (WAL readers never
        block the writer)."""
        if not self.db.exists():
            return 0
        uri = f"file:{self.db}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1)) as conn:
                row = conn.execute(sql, params).fetchone()
                return int(row[0]) if row and row[0] is not None else 0
        except sqlite3.OperationalError:  # the table does not exist yet
            return 0


async def bridge_process(tenant: Any, root: Path, **sync: Any) -> BridgeProcess:
    """Seed a state directory and write a YAML config for a subprocess bridge."""
    state = root / "state"
    store = await Store.open(state / "bridge.db")
    try:
        await seed_accounts(store, tenant)
    finally:
        await store.close()
    ports = free_port(), free_port(), free_port()
    sync_section = {"prefetch_days": 0, "poll_interval": "1s", "background_poll_interval": "1s"}
    sync_section.update(sync)
    document = {
        "state_dir": str(state),
        "imap": {"port": ports[0]},
        # See in_process_bridge: a short wait for unconfirmed sends keeps retries in time.
        "smtp": {"port": ports[1], "unconfirmed_send_wait": "2s"},
        "http": {"port": ports[2]},
        "sync": sync_section,
        "logging": {"level": "info"},
    }
    config_file = root / "bridge.yaml"
    config_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    return BridgeProcess(tenant, state, config_file, *ports)


# ---------------------------------------------------------------------------- IMAP clients
class ImapUnavailable(Exception):
    """The bridge answered NO (e.g. ``[UNAVAILABLE]``) or the connection broke."""


def imap_login(port: int, login: str = "alice") -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    imap.login(login, PASSWORD)
    return imap


def _check(typ: str, data: Any, doing: str) -> Any:
    if typ != "OK":
        raise ImapUnavailable(f"{doing}: {typ} {data!r}")
    return data


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a fresh client sees in one folder."""

    uidvalidity: int
    exists: int
    by_uid: dict[int, str]  # UID -> Message-ID ("" when the message has none)
    bodies: dict[int, bytes] = field(default_factory=dict)


def _uidvalidity(imap: imaplib.IMAP4) -> int:
    code = imap.response("UIDVALIDITY")[1]
    assert code and code[0] is not None, "SELECT answered no UIDVALIDITY"
    return int(code[0])


def snapshot(
    port: int, mailbox: str = "INBOX", login: str = "alice", bodies: bool = False
) -> Snapshot:
    """Fresh login, SELECT, and every UID with its Message-ID (and optionally BODY[])."""
    imap = imap_login(port, login)
    try:
        data = _check(*imap.select(_quote(mailbox), readonly=True), f"SELECT {mailbox}")
        exists = int(data[0])
        uidvalidity = _uidvalidity(imap)
        by_uid: dict[int, str] = {}
        got: dict[int, bytes] = {}
        if exists:
            items = "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
            if bodies:
                items = "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] BODY.PEEK[])"
            fetched = _check(*imap.uid("FETCH", "1:*", items), "UID FETCH")
            by_uid, got = parse_fetch(fetched, bodies)
        imap.close()
        return Snapshot(uidvalidity, exists, by_uid, got)
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


def parse_fetch(fetched: list[Any], bodies: bool) -> tuple[dict[int, str], dict[int, bytes]]:
    """imaplib's FETCH answer: per message, ``(prefix, literal)`` tuples (one per literal)
    and plain bytes for what follows the last literal; the UID may be in any of them."""
    groups: list[list[Any]] = []
    for part in fetched:
        if isinstance(part, tuple) and re.match(rb"^\d+ \(", part[0]):
            groups.append([])
        if groups:
            groups[-1].append(part)
    by_uid: dict[int, str] = {}
    got: dict[int, bytes] = {}
    for group in groups:
        text = b" ".join(p[0] if isinstance(p, tuple) else p for p in group)
        found = _UID.search(text)
        assert found is not None, f"FETCH response without UID: {text!r}"
        uid = int(found.group(1))
        for part in group:
            if not isinstance(part, tuple):
                continue
            prefix, literal = part
            if b"HEADER.FIELDS" in prefix.upper():
                match = _MID.search(literal)
                by_uid[uid] = match.group(1).decode() if match else ""
            elif re.search(rb"BODY\[\] \{\d+\}$", prefix.upper()):
                got[uid] = literal
        size = re.search(rb"RFC822\.SIZE (\d+)", text)
        if bodies:
            assert size is not None and uid in got, f"no BODY[]/RFC822.SIZE for UID {uid}"
            assert int(size.group(1)) == len(got[uid]), f"UID {uid}: RFC822.SIZE != len(BODY[])"
    return by_uid, got


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def with_retries(action: Callable[[], T], attempts: int = 12, pause: float = 0.1) -> T:
    """Run a client action the way a mail client does: on NO or a broken connection,
    reconnect and try again (no user action)."""
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            return action()
        except (ImapUnavailable, imaplib.IMAP4.error, OSError, smtplib.SMTPException) as exc:
            last = exc
            time.sleep(min(1.0, pause * (attempt + 1)))
    raise AssertionError(f"the client could not recover in {attempts} attempts: {last!r}")


# ---------------------------------------------------------------------------- invariants
def sim_message_ids(sim: Any, user: Any, folder: str) -> Counter[str]:
    return Counter(m.get("internetMessageId") or "" for m in sim.messages(user, folder))


def assert_consistent(
    sim: Any,
    user: Any,
    port: int,
    *,
    mailbox: str = "INBOX",
    folder: str = "inbox",
    login: str = "alice",
    before: Snapshot | None = None,
    check_bodies: bool = False,
) -> Snapshot:
    """The IMAP invariants for one folder after a fault; returns the new snapshot.

    - a fresh client logs in and SELECTs without help, and EXISTS is the Graph count;
    - every Graph message has exactly one UID (none lost), no Message-ID has more UIDs
      than Graph has messages with it (none duplicated);
    - UIDVALIDITY is what it was; a UID seen before names the same message now, and a
      message that is still in Graph keeps the UID it had (none renumbered); new UIDs
      are above every UID seen before (never reused);
    - with ``check_bodies``: BODY[] is byte-for-byte Graph's MIME, RFC822.SIZE its length.
    """
    snap = snapshot(port, mailbox, login, bodies=check_bodies)
    expected = sim_message_ids(sim, user, folder)
    seen = Counter(snap.by_uid.values())
    lost = expected - seen
    duplicated = seen - expected
    assert not lost, f"{mailbox}: messages lost (in Graph, no UID): {sorted(lost)}"
    assert not duplicated, f"{mailbox}: messages duplicated or phantom: {sorted(duplicated)}"
    assert snap.exists == sum(expected.values()), (snap.exists, expected)
    if before is not None:
        assert snap.uidvalidity == before.uidvalidity, "UIDVALIDITY changed"
        for uid, mid in before.by_uid.items():
            if uid in snap.by_uid:
                assert snap.by_uid[uid] == mid, f"UID {uid} renumbered: {mid} -> {snap.by_uid[uid]}"
            elif expected[mid] == 1 and seen[mid] == 1:
                assert mid not in snap.by_uid.values(), f"{mid} lost its UID {uid}"
        if before.by_uid:
            newest = max(before.by_uid)
            for uid, mid in snap.by_uid.items():
                if uid not in before.by_uid:
                    assert uid > newest, f"UID {uid} ({mid}) is not above the old UIDs"
    if check_bodies:
        mimes = {m.get("internetMessageId"): m["id"] for m in sim.messages(user, folder)}
        for uid, body in snap.bodies.items():
            graph = sim.mime(user, mimes[snap.by_uid[uid]])
            assert body == graph, f"BODY[] of UID {uid} differs from Graph's MIME"
    return snap


def assert_sent_once(sim: Any, user: Any, mid: str, answered_250: bool) -> None:
    """Every SMTP 250 is matched by exactly one sent message, a refusal by none."""
    sent = [r for r in sim.sent_log(user) if mid.encode() in bytes(r.mime)]
    if answered_250:
        assert len(sent) == 1, f"250 for {mid} but {len(sent)} messages were sent"
    else:
        assert not sent, f"no 250 for {mid} but {len(sent)} messages were sent"


def assert_concurrency(sim: Any, *users: Any) -> None:
    for user in users:
        seen = sim.counters(user).max_concurrency
        assert seen <= GRAPH_CONCURRENCY, f"{user.upn}: {seen} concurrent Graph requests"


# ---------------------------------------------------------------------------- SMTP client
def smtp_send_with_retries(
    port: int, sender: str, rcpt: str, mime: bytes, attempts: int = 10, pause: float = 0.3
) -> list[str]:
    """Submit like a scanner does: on 4xx or a dropped connection, try again. Returns the
    outcomes (``"250"``, ``"4xx ..."``, ``"conn ..."``); the last is ``"250"`` on success."""
    outcomes: list[str] = []
    for attempt in range(attempts):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.login("alice", PASSWORD)
                smtp.sendmail(sender, [rcpt], mime)
            outcomes.append("250")
            return outcomes
        except smtplib.SMTPResponseException as exc:
            outcomes.append(f"{exc.smtp_code} {exc.smtp_error!r}")
            if exc.smtp_code >= 500:
                return outcomes
        except smtplib.SMTPRecipientsRefused as exc:
            outcomes.append(f"refused {exc.recipients!r}")
            return outcomes
        except (OSError, smtplib.SMTPException) as exc:
            outcomes.append(f"conn {exc!r}")
        time.sleep(min(1.5, pause * (attempt + 1)))
    return outcomes


def replace_config(config: Config, **sync: Any) -> Config:
    return dataclasses.replace(config, sync=dataclasses.replace(config.sync, **sync))


def imap_count(imap: imaplib.IMAP4, mailbox: str) -> int:
    data = _check(*imap.select(_quote(mailbox)), f"SELECT {mailbox}")
    found = _COUNT.search(data[0])
    assert found is not None
    return int(found.group(1))
