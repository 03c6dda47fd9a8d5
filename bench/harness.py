"""Shared machinery for the benchmarks in ``bench/`` (not a test module; pytest ignores it).

Owns: the machine description every benchmark prints, table printing and statistics, a
raw asyncio IMAP client that times a command from the first byte sent to the tagged
reply (no imaplib parsing in the measured path), a private Dovecot on a loopback port,
and the three server *roles* the benchmarks start as child processes so that the
measuring client never shares an interpreter (or a GIL) with the server it measures:

    python bench/harness.py serve-memory    # ImapServer over MemoryBackend
    python bench/harness.py serve-simulator # the Graph simulator with a seeded tenant
    python bench/harness.py serve-bridge    # run_daemon against a running simulator

Each role prints one JSON line on stdout when it is ready and then obeys one-word
commands on stdin (``rss``, ``lag``, ``lag-reset``, ``quit``), answering one JSON line
each; EOF on stdin stops it. ``ChildRole`` is the parent's side of that protocol.

Every failure of a dependency raises ``BenchError``; ``run`` turns it into a clear message
and exit status 2, so a benchmark never prints a number it did not measure.

May import anything from ``bridge`` and ``tests.corpus``; nothing in ``bridge`` imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PASSWORD = "bench-password-123"  # local IMAP/SMTP password of every benchmark account
BENCH_DATE = datetime(2024, 1, 1, tzinfo=UTC)


class BenchError(RuntimeError):
    """A dependency of the benchmark does not work; no figure can be reported."""


# -- process entry -----------------------------------------------------------------------
def run(main: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run an async benchmark ``main``; a ``BenchError`` is a loud failure (exit 2)."""
    try:
        code: int = asyncio.run(main())
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)


# -- machine and tables ---------------------------------------------------------------------
def machine_lines() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    load = ""
    with contextlib.suppress(OSError):
        load = f", load avg {os.getloadavg()[0]:.2f}"
    return [
        f"machine : {cpu}, {os.cpu_count()} cores{mem}{load}",
        f"python  : {platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.release()}",
        f"date    : {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def print_header(title: str, settings: dict[str, Any]) -> None:
    print(f"== {title} ==")
    for line in machine_lines():
        print(line)
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print(flush=True)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        # Text left, numbers right, as a reader scans them.
        parts = []
        for i, value in enumerate(row):
            numeric = bool(re.fullmatch(r"[-+]?[\d.,]+(?:\s?[a-zµx%/]+)?", value))
            parts.append(value.rjust(widths[i]) if numeric else value.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    print(fmt(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(fmt(row))
    print(flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) — no interpolation for small samples."""
    if not values:
        raise BenchError("no samples to take a percentile of")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the corpus as both servers see it ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BenchMessage:
    body: bytes
    flags: frozenset[str]
    internaldate: datetime


def corpus_flags(index: int) -> frozenset[str]:
    """A deterministic, realistic flag mix: a third unread, some flagged and answered."""
    flags = set()
    if index % 3 != 0:
        flags.add("\\Seen")
    if index % 10 == 0:
        flags.add("\\Flagged")
    if index % 7 == 0:
        flags.add("\\Answered")
    return frozenset(flags)


def header_date(message: bytes) -> datetime:
    match = re.search(rb"^Date:[ \t]*([^\r\n]+)", message.split(b"\r\n\r\n", 1)[0], re.M | re.I)
    if match:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            parsed = parsedate_to_datetime(match.group(1).decode("ascii", "replace"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    return BENCH_DATE


def bench_corpus(count: int, seed: int = 1) -> list[BenchMessage]:
    try:
        from tests.corpus import build_corpus
    except ImportError as exc:
        raise BenchError(f"tests/corpus.py cannot be imported: {exc}") from exc
    return [
        BenchMessage(body, corpus_flags(i), header_date(body))
        for i, body in enumerate(build_corpus(count, seed=seed))
    ]


# -- a raw IMAP client ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImapReply:
    status: str  # OK / NO / BAD
    data: bytes  # every byte of the response, untagged lines and literals included
    seconds: float

    def untagged_count(self, keyword: bytes) -> int:
        return len(re.findall(rb"(?:^|\r\n)\* \d+ " + keyword + rb"\b", self.data))

    def search_hits(self) -> int:
        hits = 0
        for match in re.finditer(rb"(?:^|\r\n)\* SEARCH([^\r\n]*)", self.data):
            hits += len(match.group(1).split())
        return hits


class ImapClient:
    """A minimal IMAP client on asyncio streams that reads a reply by its framing only:
    lines, and ``{n}`` literals skipped by length (RFC 3501 §4.3), until the tagged line.
    The same code measures every server, so its own cost cancels out of the ratios."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._buf = bytearray()
        self._tags = 0
        self.greeting = b""

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 30.0) -> ImapClient:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=1 << 20), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise BenchError(f"cannot connect to IMAP at {host}:{port}: {exc}") from exc
        client = cls(reader, writer)
        client.greeting = await asyncio.wait_for(client.read_line(), timeout)
        if not client.greeting.startswith((b"* OK", b"* PREAUTH")):
            raise BenchError(f"unexpected IMAP greeting: {client.greeting[:200]!r}")
        return client

    async def _fill(self) -> None:
        chunk = await self.reader.read(1 << 18)
        if not chunk:
            raise BenchError("the IMAP server closed the connection")
        self._buf += chunk

    async def read_line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[: end + 2])
                del self._buf[: end + 2]
                return line
            await self._fill()

    async def command(self, text: str | bytes, timeout: float = 600.0) -> ImapReply:
        self._tags += 1
        tag = b"b%d" % self._tags
        line = text.encode() if isinstance(text, str) else text
        started = time.perf_counter()
        self.writer.write(tag + b" " + line + b"\r\n")
        data = await asyncio.wait_for(self._read_reply(tag), timeout)
        seconds = time.perf_counter() - started
        start = data.rfind(b"\r\n", 0, len(data) - 2)
        last = data[start + 2 :] if start >= 0 else data
        status = last[len(tag) + 1 :].split(b" ", 1)[0].decode("ascii", "replace")
        return ImapReply(status, data, seconds)

    async def _read_reply(self, tag: bytes) -> bytes:
        marker = tag + b" "
        buf = self._buf
        pos = 0
        line_start = 0
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                await self._fill()
                continue
            if end > line_start and buf[end - 1] == 0x7D:  # "}": a literal follows
                opening = buf.rfind(b"{", line_start, end)
                size_text = bytes(buf[opening + 1 : end - 1]).rstrip(b"+")
                if opening >= 0 and size_text.isdigit():
                    need = end + 2 + int(size_text)
                    while len(buf) < need:
                        await self._fill()
                    pos = need  # the line goes on after the literal
                    continue
            if buf.startswith(marker, line_start):
                data = bytes(buf[: end + 2])
                del buf[: end + 2]
                return data
            pos = line_start = end + 2

    async def ok(self, text: str, timeout: float = 600.0) -> ImapReply:
        reply = await self.command(text, timeout)
        if reply.status != "OK":
            tail = reply.data[-300:].decode("utf-8", "replace").strip()
            raise BenchError(f"IMAP command {text!r} failed: {tail}")
        return reply

    async def login(self, user: str, password: str) -> None:
        await self.ok(f'LOGIN "{user}" "{password}"', timeout=60)

    async def start_idle(self) -> None:
        self._tags += 1
        self._idle_tag = b"b%d" % self._tags
        self.writer.write(self._idle_tag + b" IDLE\r\n")
        line = await asyncio.wait_for(self.read_line(), 30)
        if not line.startswith(b"+"):
            raise BenchError(f"IDLE refused: {line!r}")

    async def wait_untagged(self, pattern: bytes, timeout: float) -> bytes:
        """Read lines until one matches ``pattern`` (a regex); return that line."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            line = await asyncio.wait_for(self.read_line(), remaining)
            if regex.search(line):
                return line

    async def stop_idle(self) -> None:
        self.writer.write(b"DONE\r\n")
        await asyncio.wait_for(self._read_reply(self._idle_tag), 60)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(b"z LOGOUT\r\n")
            await asyncio.wait_for(self.writer.drain(), 5)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 5)


async def imap_folder_count(port: int, login: str) -> int:
    """Selectable mailboxes the account's LIST shows (what the bridge keeps in sync)."""
    client = await ImapClient.connect("127.0.0.1", port)
    try:
        await client.login(login, PASSWORD)
        reply = await client.ok('LIST "" "*"', timeout=120)
    finally:
        await client.close()
    lines = re.findall(rb"(?:^|\r\n)\* LIST \(([^)]*)\)", reply.data)
    return sum(1 for attrs in lines if b"\\noselect" not in attrs.lower())


# -- Dovecot --------------------------------------------------------------------------------
DOVECOT = "/usr/sbin/dovecot"
_MAILDIR_FLAGS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S"}


class DovecotServer:
    """Debian's Dovecot on a loopback port with a private config and one maildir user.

    Mail processes run as ``nobody`` (Dovecot refuses root); login is plaintext LOGIN
    against a static password, like the bridge on loopback."""

    user = "bench"

    def __init__(self, messages: Sequence[BenchMessage]) -> None:
        self.messages = messages
        self.root = Path(tempfile.mkdtemp(prefix="bench-dovecot-", dir="/tmp"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        if not os.path.exists(DOVECOT):
            raise BenchError(f"{DOVECOT} not found: install Debian's dovecot-imapd")
        owner = "nobody" if os.getuid() == 0 else None
        import pwd

        entry = pwd.getpwnam(owner) if owner else pwd.getpwuid(os.getuid())
        mail = self.root / "mail"
        for sub in ("cur", "new", "tmp"):
            (mail / sub).mkdir(parents=True)
        (self.root / "home").mkdir()
        base = 1_600_000_000
        for i, message in enumerate(self.messages):
            letters = "".join(sorted(_MAILDIR_FLAGS[f] for f in message.flags))
            # Names sort in corpus order, so Dovecot assigns UIDs in the same order as
            # the bridge's APPENDs.
            path = mail / "cur" / f"{base + i}.M{i}P1.bench,S={len(message.body)}:2,{letters}"
            path.write_bytes(message.body)
            stamp = message.internaldate.timestamp()
            os.utime(path, (stamp, stamp))  # maildir INTERNALDATE is the file's mtime
        config = self.root / "dovecot.conf"
        config.write_text(
            f"base_dir = {self.root}/run\nstate_dir = {self.root}/state\n"
            f"log_path = {self.root}/log\nssl = no\nprotocols = imap\n"
            "listen = 127.0.0.1\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\n"
            f"passdb {{\n  driver = static\n  args = password={PASSWORD}\n}}\n"
            f"userdb {{\n  driver = static\n  args = uid={entry.pw_uid} gid={entry.pw_gid} "
            f"home={self.root}/home\n}}\n"
            f"mail_location = maildir:{mail}\nfirst_valid_uid = 0\nfirst_valid_gid = 0\n"
            "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n"
            f"    port = {self.port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
        )
        if os.getuid() == 0:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise BenchError(f"Dovecot exited at start: {err.strip()} {self.log()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"Dovecot did not listen on port {self.port} within 20 s: {self.log()}")

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "log").read_text()[-2000:]
        return ""

    async def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self._process.wait, 20)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


# -- child roles (parent side) --------------------------------------------------------------
class ChildRole:
    """A ``harness.py`` role in a child process; see the module docstring."""

    def __init__(self, role: str, args: Sequence[str], ready_timeout: float = 300.0) -> None:
        self.role = role
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> dict[str, Any]:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            self.role,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        self.info = await self._answer(self.ready_timeout)
        return self.info

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise BenchError(f"{self.role} did not answer within {timeout:.0f} s") from None
        if not line:
            code = await self.process.wait()
            raise BenchError(f"{self.role} exited with status {code} (its stderr is above)")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"{self.role}: {answer['error']}")
        return answer

    async def ask(self, word: str, timeout: float = 60.0) -> dict[str, Any]:
        async with self._lock:
            assert self.process is not None and self.process.stdin is not None
            self.process.stdin.write(word.encode() + b"\n")
            await self.process.stdin.drain()
            return await self._answer(timeout)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 60)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def expected_idle_per_hour(
    folders: int, watched: int = 1, sync: dict[str, Any] | None = None
) -> float:
    """Graph requests per hour the configured poll intervals imply for one idle account:
    one delta round per watched folder every ``poll_interval``, one per other folder every
    ``background_poll_interval``, one folder-tree read every ``poll_tree`` (the sync
    engine's fixed default). A cross-check for the extrapolated measurement."""
    from bridge.backend.cached import CacheSettings
    from bridge.config import SyncConfig

    config = SyncConfig(**(sync or {}))
    tree = CacheSettings().poll_tree
    return (
        watched * 3600 / config.poll_interval
        + max(0, folders - watched) * 3600 / config.background_poll_interval
        + 3600 / tree
    )


def rss_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process from /proc/<pid>/status, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


class LagProbe:
    """Event-loop lag: a task sleeps ``interval`` again and again and records how late it
    woke up. A loop blocked by CPU work or a synchronous call shows as overshoot."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(time.perf_counter() - before - self.interval)

    def report(self) -> dict[str, Any]:
        s = self.samples or [0.0]
        return {
            "samples": len(self.samples),
            "p50_ms": percentile(s, 50) * 1000,
            "p99_ms": percentile(s, 99) * 1000,
            "max_ms": max(s) * 1000,
        }

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# -- child roles (child side) -----------------------------------------------------------------
def _say(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _obey(extra: dict[str, Callable[[], Awaitable[dict[str, Any]]]] | None = None) -> None:
    """Answer stdin words until ``quit`` or EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    probe = LagProbe()
    probe.start()
    try:
        while True:
            line = await reader.readline()
            word = line.decode().strip()
            if not line or word == "quit":
                return
            if word == "rss":
                _say(rss_kib())
            elif word == "lag":
                _say(probe.report())
            elif word == "lag-reset":
                probe.samples.clear()
                _say({"ok": True})
            elif extra and word in extra:
                try:
                    _say(await extra[word]())
                except Exception as exc:  # reported to the parent, which fails loudly
                    _say({"error": f"{word}: {type(exc).__name__}: {exc}"})
            else:
                _say({"error": f"unknown command {word!r}"})
    finally:
        await probe.stop()


async def _serve_memory(args: argparse.Namespace) -> None:
    from bridge.backend.memory import MemoryAuthenticator, MemoryBackend
    from bridge.imap.server import ImapServer

    backend = MemoryBackend()
    for message in bench_corpus(args.count, args.seed):
        await backend.append("INBOX", message.body, message.flags, message.internaldate)
    server = ImapServer(
        MemoryAuthenticator({"bench": (PASSWORD, backend)}),
        host="127.0.0.1",
        port=0,
        max_literal=64 * 1024 * 1024,
    )
    await server.start()
    _say({"port": server.port, "pid": os.getpid()})
    try:
        await _obey()
    finally:
        await server.stop(grace=2)


# The simulator role seeds one tenant: one app with the three roles, ``users`` mailboxes
# named user1..userN (user1 is the one that gets the corpus), and a shared mailbox.
async def _serve_simulator(args: argparse.Namespace) -> None:
    from bridge.simulator import Faults, Simulator

    faults = Faults(latency=args.latency, seed=1)
    sim = Simulator(
        state_dir=Path(args.state),
        budget=args.budget,
        budget_window=args.budget_window,
        faults=faults,
    )
    sim.start()
    try:
        domain = "bench.contoso.example"
        tenant = sim.add_tenant(domain)
        app = sim.add_app(tenant.id, roles=("Mail.ReadWrite", "Mail.Send", "User.Read.All"))
        users = [
            sim.add_user(tenant.id, f"user{n}@{domain}", display_name=f"User {n}")
            for n in range(1, args.users + 1)
        ]
        loaded = 0
        skipped: list[str] = []
        if args.corpus:
            # Delivered with latency off: seeding is not what is measured.
            saved, faults.latency = faults.latency, 0.0
            # With --skip-undeliverable, messages the simulator cannot take are replaced
            # by further corpus messages (and reported); without it they are an error.
            spare = args.corpus // 5 + 50 if args.skip_undeliverable else 0
            for message in bench_corpus(args.corpus + spare, args.seed):
                if loaded == args.corpus:
                    break
                try:
                    mid = sim.deliver(
                        users[0],
                        message.body,
                        received=message.internaldate,
                        is_read="\\Seen" in message.flags,
                    )
                    if "\\Flagged" in message.flags:
                        sim.set_flag(users[0], mid, True)
                except Exception as exc:
                    if not args.skip_undeliverable:
                        raise BenchError(
                            f"the simulator cannot deliver corpus message {loaded + len(skipped)}"
                            f": {type(exc).__name__}: {exc}"
                        ) from exc
                    skipped.append(f"{type(exc).__name__}: {exc}")
                    continue
                loaded += 1
            faults.latency = saved
            if loaded < args.corpus:
                raise BenchError(f"only {loaded} of {args.corpus} corpus messages delivered")
        _say(
            {
                "pid": os.getpid(),
                "login_url": sim.login_url,
                "graph_url": sim.graph_url,
                "base_url": sim.base_url,
                "ca_file": str(sim.ca_file),
                "tenant_id": tenant.id,
                "client_id": app.client_id,
                "client_secret": app.secret or "",
                "users": [{"id": u.id, "upn": u.upn, "mail": u.mail} for u in users],
                "loaded": loaded,
                "skipped": skipped,
            }
        )
        await _obey()
    finally:
        await asyncio.to_thread(sim.stop)


async def seed_bridge_store(
    state_dir: Path, settings: dict[str, Any], users: Sequence[dict[str, Any]]
) -> None:
    """The app registration and one account per user (login = the UPN's local part) in a
    fresh store, as ``tests/e2e/conftest.py`` does for its tests."""
    from bridge.secrets import SecretBox, hash_password
    from bridge.store import Store
    from bridge.store import accounts as acct

    store = await Store.open(state_dir / "bridge.db")
    try:
        app = await store.write(
            lambda db: acct.create_app(
                db,
                sealer=SecretBox(None),
                name="bench tenant",
                cloud="custom",
                login_url=settings["login_url"],
                graph_url=settings["graph_url"],
                ca_file=settings["ca_file"],
                client_id=settings["client_id"],
                tenant_id=settings["tenant_id"],
                client_secret=settings["client_secret"],
            )
        )
        hashed = hash_password(PASSWORD)

        def create(db: Any, login: str, user: dict[str, Any]) -> Any:
            return acct.create_account(
                db,
                account_id=login,
                name=login,
                email=user["mail"],
                app_id=app.id,
                auth_user=user["upn"],
                login=login,
                password_hash=hashed,
                send_as=(),
            )

        for user in users:
            login = user["upn"].split("@")[0]
            await store.write(functools.partial(create, login=login, user=user))
    finally:
        await store.close()


def bridge_config(
    state_dir: Path, sync: dict[str, Any], limits: dict[str, Any], http_port: int = 0
) -> Any:
    import dataclasses

    from bridge.config import default_config

    config = default_config(state_dir)
    return dataclasses.replace(
        config,
        imap=dataclasses.replace(config.imap, port=0),
        smtp=dataclasses.replace(config.smtp, port=0),
        http=dataclasses.replace(config.http, port=http_port),
        sync=dataclasses.replace(config.sync, **sync),
        limits=dataclasses.replace(config.limits, **limits),
    )


async def _serve_bridge(args: argparse.Namespace) -> None:
    import logging

    from bridge.app import run_daemon

    settings = json.loads(Path(args.settings).read_text())
    state_dir = Path(args.state)
    state_dir.mkdir(parents=True, exist_ok=True)
    users = settings["users"][: args.accounts] if args.accounts else settings["users"]
    await seed_bridge_store(state_dir, settings, users)
    config = bridge_config(
        state_dir, json.loads(args.sync), json.loads(args.limits), args.http_port
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def on_ready(listeners: Any) -> None:
        if not ready.done():
            ready.set_result(listeners)

    task = asyncio.ensure_future(run_daemon(config, stop=stop, on_ready=on_ready))
    done, _ = await asyncio.wait({task, ready}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        exc = task.exception()
        _say({"error": f"run_daemon ended at start: {exc!r}"})
        return
    if ready not in done:
        _say({"error": "the bridge did not become ready within 120 s"})
        return
    listeners = ready.result()

    async def sync_all() -> dict[str, Any]:
        """Run a full sync pass of every account and wait for it (the tests' sync_now)."""
        from bridge.store import accounts as acct

        bridge = listeners.bridge
        started = time.perf_counter()
        for account in await acct.fetch_accounts(listeners.store):
            runtime = await bridge.runtime(account)
            await runtime.engine.sync_now()
        return {"seconds": time.perf_counter() - started}

    _say(
        {
            "pid": os.getpid(),
            "imap_port": listeners.imap.port,
            "smtp_port": listeners.smtp.port if listeners.smtp is not None else None,
            "http_port": listeners.http_port,
        }
    )
    try:
        await _obey({"sync": sync_all})
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)


def _child_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description="benchmark child roles (see module docstring)")
    sub = parser.add_subparsers(dest="role", required=True)
    memory = sub.add_parser("serve-memory")
    memory.add_argument("--count", type=int, required=True)
    memory.add_argument("--seed", type=int, default=1)
    sim = sub.add_parser("serve-simulator")
    sim.add_argument("--state", required=True)
    sim.add_argument("--users", type=int, default=2)
    sim.add_argument("--corpus", type=int, default=0)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--latency", type=float, default=0.0)
    sim.add_argument("--budget", type=int, default=10_000)
    sim.add_argument("--budget-window", type=float, default=600.0)
    sim.add_argument("--skip-undeliverable", action="store_true")
    bridge = sub.add_parser("serve-bridge")
    bridge.add_argument("--settings", required=True, help="JSON file: serve-simulator's answer")
    bridge.add_argument("--state", required=True)
    bridge.add_argument("--accounts", type=int, default=0, help="first N users (0: all)")
    bridge.add_argument("--sync", default="{}", help="JSON: SyncConfig overrides")
    bridge.add_argument("--limits", default="{}", help="JSON: LimitsConfig overrides")
    bridge.add_argument("--http-port", type=int, default=0)
    args = parser.parse_args(argv)
    role = {
        "serve-memory": _serve_memory,
        "serve-simulator": _serve_simulator,
        "serve-bridge": _serve_bridge,
    }[args.role]
    try:
        asyncio.run(role(args))
    except BenchError as exc:
        _say({"error": str(exc)})
        sys.exit(2)


# -- the simulator + bridge pair used by benchmarks 2-5 ----------------------------------------
class SimulatorControl:
    """The simulator's ``/_sim`` control API over HTTPS (it trusts the simulator's CA)."""

    def __init__(self, info: dict[str, Any]) -> None:
        import httpx

        self.info = info
        self.client = httpx.AsyncClient(
            base_url=info["base_url"], verify=info["ca_file"], timeout=60
        )

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.client.request(method, "/_sim" + path, json=body)
        if response.status_code >= 400:
            raise BenchError(
                f"simulator control {method} {path}: {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    async def counters(self, user: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/users/{user}/counters"))

    async def reset_counters(self) -> None:
        await self.call("DELETE", "/counters")

    async def set_faults(self, **changes: Any) -> None:
        await self.call("PATCH", "/faults", changes)

    async def deliver(self, user: str, mime: bytes, is_read: bool = False) -> str:
        import base64

        answer = await self.call(
            "POST",
            f"/users/{user}/deliver",
            {"mime_base64": base64.b64encode(mime).decode(), "is_read": is_read},
        )
        return str(answer["id"])

    async def close(self) -> None:
        await self.client.aclose()


class SimAndBridge:
    """Start the simulator and the bridge as two child processes; stop both."""

    def __init__(
        self,
        *,
        users: int = 2,
        corpus: int = 0,
        latency: float = 0.0,
        budget: int = 10_000,
        budget_window: float = 600.0,
        sync: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
        start_bridge: bool = True,
        accounts: int = 0,
        http_port: int = 0,
        skip_undeliverable: bool = False,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
        self.sim = ChildRole(
            "serve-simulator",
            [
                "--state",
                str(self.root / "sim"),
                "--users",
                str(users),
                "--corpus",
                str(corpus),
                "--latency",
                str(latency),
                "--budget",
                str(budget),
                "--budget-window",
                str(budget_window),
                *(["--skip-undeliverable"] if skip_undeliverable else []),
            ],
            ready_timeout=600,
        )
        self.sync = sync or {}
        self.limits = limits or {}
        self.start_bridge = start_bridge
        self.accounts = accounts  # bridge accounts for the first N users (0: all)
        self.http_port = http_port
        self.bridge: ChildRole | None = None
        self.control: SimulatorControl | None = None
        self.settings: dict[str, Any] = {}

    async def __aenter__(self) -> SimAndBridge:
        try:
            self.settings = await self.sim.start()
            self.control = SimulatorControl(self.settings)
            if self.start_bridge:
                await self.start_bridge_process()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def start_bridge_process(self) -> dict[str, Any]:
        settings_file = self.root / "sim-settings.json"
        settings_file.write_text(json.dumps(self.settings))
        self.bridge = ChildRole(
            "serve-bridge",
            [
                "--settings",
                str(settings_file),
                "--state",
                str(self.root / "bridge"),
                "--sync",
                json.dumps(self.sync),
                "--limits",
                json.dumps(self.limits),
                "--accounts",
                str(self.accounts),
                "--http-port",
                str(self.http_port),
            ],
        )
        return await self.bridge.start()

    def report_skipped(self) -> None:
        skipped = self.settings.get("skipped") or []
        if skipped:
            kinds = sorted(set(skipped))
            print(
                f"NOTE: {len(skipped)} corpus messages the simulator could not deliver were "
                f"replaced by the next corpus messages ({'; '.join(kinds)[:300]})",
                flush=True,
            )

    @property
    def users(self) -> list[dict[str, Any]]:
        return list(self.settings["users"])

    async def __aexit__(self, *exc: object) -> None:
        if self.bridge is not None:
            await self.bridge.stop()
        if self.control is not None:
            await self.control.close()
        await self.sim.stop()
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
