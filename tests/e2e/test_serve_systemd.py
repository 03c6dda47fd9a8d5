"""``serve`` as systemd runs it: READY/WATCHDOG/STOPPING over $NOTIFY_SOCKET, /health,
and the unit file passes ``systemd-analyze verify``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bridge.store import Store
from tests.e2e.conftest import seed_accounts

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, state_dir: Path) -> dict[str, int]:
    ports = {"imap": free_port(), "smtp": free_port(), "http": free_port()}
    path.write_text(
        f"state_dir: {state_dir}\n"
        f"imap:\n  port: {ports['imap']}\n"
        f"smtp:\n  port: {ports['smtp']}\n"
        f"http:\n  port: {ports['http']}\n"
        "logging:\n  level: info\n",
        encoding="utf-8",
    )
    return ports


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.timeout(180)
async def test_serve_notifies_systemd_and_reports_health(tenant: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = await Store.open(state / "bridge.db")
    try:
        await seed_accounts(store, tenant)
    finally:
        await store.close()
    config = tmp_path / "config.yaml"
    ports = write_config(config, state)

    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.setblocking(False)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "1000000",
        "PYTHONUNBUFFERED": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "serve",
        "--config",
        str(config),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    messages: list[str] = []
    loop = asyncio.get_running_loop()

    async def wait_for(field: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(field in m.split("\n") for m in messages):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {field} from the bridge; got {messages}"
            data = await asyncio.wait_for(loop.sock_recv(listener, 4096), remaining)
            messages.append(data.decode())

    try:
        await wait_for("READY=1")
        await wait_for("WATCHDOG=1", timeout=10)
        # Accounts become connected after their first sync; /health says so.
        deadline = time.monotonic() + 60
        while True:
            status, report = await asyncio.to_thread(_health, ports["http"])
            if status == 200:
                break
            assert time.monotonic() < deadline, report
            await asyncio.sleep(0.5)
        assert report["ready"] is True
        assert {a["login"]: a["state"] for a in report["accounts"]} == {
            "alice": "connected",
            "bob": "connected",
        }
        proc.send_signal(signal.SIGTERM)
        await wait_for("STOPPING=1", timeout=30)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        listener.close()
    stderr = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
    assert tenant.app.secret not in stderr


def test_unit_file_verifies(tmp_path: Path) -> None:
    unit = (REPO / "systemd" / "graph-mail-bridge.service").read_text()
    # verify checks that ExecStart's binary exists; point it at the installed script.
    installed = shutil.which("graph-mail-bridge") or sys.executable
    checked = tmp_path / "graph-mail-bridge.service"
    checked.write_text(unit.replace("/usr/local/bin/graph-mail-bridge", installed))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(checked)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "Invalid" not in result.stderr, result.stderr
