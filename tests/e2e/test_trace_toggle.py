"""The per-account wire trace, switched on and off at run time through the admin API."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import urllib.request

import pytest

from bridge.config import ensure_admin_token
from tests.e2e.conftest import PASSWORD, RunningBridge


def _admin(bridge: RunningBridge, method: str, path: str) -> tuple[int, dict]:
    token = ensure_admin_token(bridge.config)
    request = urllib.request.Request(
        f"http://127.0.0.1:{bridge.http_port}{path}",
        method=method,
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _session(port: int, login: str) -> None:
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(login, PASSWORD)
    imap.select("INBOX")
    imap.logout()


async def test_trace_toggles_at_run_time_and_never_logs_the_password(
    running_bridge: RunningBridge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(5, logger="bridge.trace")
    status, body = await asyncio.to_thread(_admin, running_bridge, "PUT", "/v1/trace/alice")
    assert status == 200 and body == {"trace": ["alice"]}
    # Without the token the trace cannot be switched.
    request = urllib.request.Request(
        f"http://127.0.0.1:{running_bridge.http_port}/v1/trace/bob", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        await asyncio.to_thread(urllib.request.urlopen, request, None, 10)
    assert denied.value.code == 401

    await asyncio.to_thread(_session, running_bridge.imap_port, "alice")
    await asyncio.to_thread(_session, running_bridge.imap_port, "bob")
    traced = [r.getMessage() for r in caplog.records if r.name == "bridge.trace"]
    assert any("SELECT INBOX" in line for line in traced), traced
    assert all(PASSWORD not in line for line in traced)
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    assert all(encoded not in line for line in traced)
    assert not any(
        getattr(r, "account", None) == "bob" for r in caplog.records if r.name == "bridge.trace"
    )

    status, body = await asyncio.to_thread(_admin, running_bridge, "DELETE", "/v1/trace/alice")
    assert status == 200 and body == {"trace": []}
    caplog.clear()
    await asyncio.to_thread(_session, running_bridge.imap_port, "alice")
    assert not [r for r in caplog.records if r.name == "bridge.trace"]
    status, _ = await asyncio.to_thread(_admin, running_bridge, "PUT", "/v1/trace/nobody")
    assert status == 404
