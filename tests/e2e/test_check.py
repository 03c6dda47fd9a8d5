"""``graph-mail-bridge check`` against the simulator: what passes, and what it says when not."""

from __future__ import annotations

import asyncio
import io
import socket
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from bridge.cli import main
from bridge.store import Store
from tests.e2e.conftest import seed_accounts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _setup(tenant: Any, tmp_path: Path, extra: str = "") -> Path:
    state = tmp_path / "state"
    store = await Store.open(state / "bridge.db")
    try:
        await seed_accounts(store, tenant)
    finally:
        await store.close()
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {state}\nhttp:\n  port: {_free_port()}\n{extra}")
    return config


def _run(config: Path) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["check", "--config", str(config)])
    return code, out.getvalue()


async def test_check_names_roles_mailboxes_and_missing_encryption(
    tenant: Any, tmp_path: Path
) -> None:
    config = await _setup(tenant, tmp_path)
    code, out = await asyncio.to_thread(_run, config)
    assert f"Mailbox {tenant.alice.upn}" in out
    assert f"Mailbox {tenant.bob.upn}" in out
    assert "Mail.ReadWrite, Mail.Send, User.Read.All" in out
    # No encryption key is configured, which check reports as the one problem.
    assert "secrets.encryption_key is not set" in out
    assert code == 1 and "1 problem(s) found." in out
    assert tenant.app.secret not in out


async def test_check_names_the_missing_permission(tenant: Any, tmp_path: Path) -> None:
    tenant.sim.set_roles(tenant.app.client_id, ("Mail.ReadWrite", "User.Read.All"))
    config = await _setup(tenant, tmp_path)
    code, out = await asyncio.to_thread(_run, config)
    assert code == 1
    assert "lacks Mail.Send" in out


async def test_check_reports_an_expired_secret_in_one_sentence(tenant: Any, tmp_path: Path) -> None:
    tenant.sim.expire_secret(tenant.app.client_id)
    config = await _setup(tenant, tmp_path)
    code, out = await asyncio.to_thread(_run, config)
    assert code == 1
    assert "expired" in out and "AADSTS7000222" in out
    assert tenant.app.secret not in out


async def test_check_tests_webhook_reachability(tenant: Any, tmp_path: Path) -> None:
    port = _free_port()
    config = await _setup(
        tenant, tmp_path, f"sync:\n  webhook_public_url: http://127.0.0.1:{port}\n"
    )
    # The public URL points at a port where nothing answers: unreachable.
    code, out = await asyncio.to_thread(_run, config)
    assert "cannot be reached" in out
    # Pointing it at the bridge's own HTTP listener: the round trip works, and check
    # still says Graph needs https.
    text = config.read_text()
    http_port = int(text.split("port: ")[1].split()[0])
    config.write_text(text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{http_port}"))
    code, out = await asyncio.to_thread(_run, config)
    assert "answers, but Graph only delivers to https:// URLs" in out
    assert code == 1


def test_check_reports_config_mistakes_with_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("imap:\n  prot: 1143\n")
    code, out = _run(config)
    assert code == 2
    assert "config.yaml:2" in out and "imap.prot" in out and "port" in out
