"""The whole bridge against the simulator, driven by imaplib and smtplib as a user would."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from tests.e2e.conftest import PASSWORD, RunningBridge


def _mime(subject: str, sender: str, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@test.example>"
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes()


async def test_imap_sees_delivered_mail_and_flags_reach_graph(
    running_bridge: RunningBridge,
) -> None:
    sim, tenant = running_bridge.sim, running_bridge.tenant
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for n in range(3):
        await asyncio.to_thread(
            sim.deliver,
            tenant.alice.id,
            _mime(f"hello {n}", "x@example.net", tenant.alice.mail),
            received=start + timedelta(minutes=n),
        )
    await running_bridge.sync_now("alice")

    def client() -> tuple[list[bytes], bytes]:
        imap = imaplib.IMAP4("127.0.0.1", running_bridge.imap_port)
        imap.login("alice", PASSWORD)
        typ, data = imap.select("INBOX")
        assert typ == "OK", data
        typ, data = imap.uid("SEARCH", "ALL")
        uids = data[0].split()
        typ, fetched = imap.uid("FETCH", uids[0].decode(), "(BODY.PEEK[] RFC822.SIZE)")
        body = fetched[0][1]
        imap.uid("STORE", uids[0].decode(), "+FLAGS", r"(\Seen \Flagged)")
        imap.logout()
        return uids, body

    uids, body = await asyncio.to_thread(client)
    assert len(uids) == 3
    assert b"Subject: hello 0" in body
    first = min(sim.messages(tenant.alice.id, "inbox"), key=lambda m: m["receivedDateTime"])
    assert first["isRead"] is True
    assert first["flag"]["flagStatus"] == "flagged"


async def test_smtp_submission_reaches_recipient(running_bridge: RunningBridge) -> None:
    sim, tenant = running_bridge.sim, running_bridge.tenant
    mime = _mime("smtp first light", tenant.alice.mail, tenant.bob.mail)

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", running_bridge.smtp_port) as smtp:
            smtp.login("alice", PASSWORD)
            smtp.sendmail(tenant.alice.mail, [tenant.bob.mail], mime)

    await asyncio.to_thread(send)
    subjects = [m["subject"] for m in sim.messages(tenant.bob.id, "inbox")]
    assert "smtp first light" in subjects


async def test_metrics_and_health_after_real_traffic(running_bridge: RunningBridge) -> None:
    import json
    import urllib.request

    tenant = running_bridge.tenant
    mime = _mime("metrics traffic", tenant.alice.mail, tenant.bob.mail)

    def traffic() -> None:
        imap = imaplib.IMAP4("127.0.0.1", running_bridge.imap_port)
        imap.login("alice", PASSWORD)
        imap.select("INBOX")
        imap.logout()
        with smtplib.SMTP("127.0.0.1", running_bridge.smtp_port) as smtp:
            smtp.login("alice", PASSWORD)
            smtp.sendmail(tenant.alice.mail, [tenant.bob.mail], mime)

    await asyncio.to_thread(traffic)
    await running_bridge.sync_now("alice")
    await running_bridge.sync_now("bob")
    base = f"http://127.0.0.1:{running_bridge.http_port}"

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    status, body = await asyncio.to_thread(get, "/metrics")
    text = body.decode()
    assert status == 200
    assert 'imap_commands_total{command="SELECT",status="OK"} 1.0' in text
    assert 'imap_commands_total{command="LOGIN",status="OK"} 1.0' in text
    assert 'smtp_submissions_total{outcome="sent"} 1.0' in text
    assert "graph_requests_total{" in text
    assert 'bridge_account_state{account="alice",login="alice",state="connected"} 1.0' in text
    status, body = await asyncio.to_thread(get, "/health")
    report = json.loads(body)
    states = {a["login"]: a["state"] for a in report["accounts"]}
    assert states["alice"] == "connected"
    assert states["bob"] == "connected"
    assert status == 200 and report["ready"] is True, report


async def test_account_show_reports_sync_progress(running_bridge: RunningBridge) -> None:
    import io
    import json
    from contextlib import redirect_stdout

    from bridge.cli import main

    sim, tenant = running_bridge.sim, running_bridge.tenant
    await asyncio.to_thread(
        sim.deliver, tenant.alice.id, _mime("progress", "x@example.net", tenant.alice.mail)
    )
    await running_bridge.sync_now("alice")
    config = running_bridge.config.state_dir.parent / "config.yaml"
    config.write_text(f"state_dir: {running_bridge.config.state_dir}\n")

    def show() -> dict:
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["account", "show", "alice", "--config", str(config), "--json"]) == 0
        return json.loads(out.getvalue())

    data = await asyncio.to_thread(show)
    sync = data["sync"]
    assert sync["folders"] >= 6
    assert sync["foldersSynced"] == sync["folders"]
    assert sync["messages"] >= 1
