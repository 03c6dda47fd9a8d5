"""Submission through the whole bridge with swaks, msmtp and smtplib.

The recipient's copy in the simulator (what Bob's mailbox serves as MIME) must carry the
attachment byte for byte; sending as the shared mailbox goes through that mailbox (its
Sent Items); sending as someone one may not send as is refused with 550.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
import smtplib
from email.message import EmailMessage
from pathlib import Path

from tests.e2e.conftest import RunningBridge

from .helpers import PASSWORD, run_client


def _received(bridge: RunningBridge, user_id: str, subject: str) -> EmailMessage:
    """The only message with ``subject`` in ``user_id``'s Inbox, parsed from its MIME."""
    found = [m for m in bridge.sim.messages(user_id, "inbox") if m["subject"] == subject]
    assert len(found) == 1, [m["subject"] for m in bridge.sim.messages(user_id, "inbox")]
    assert found[0]["isRead"] is False and found[0]["isDraft"] is False
    parsed = email.message_from_bytes(
        bridge.sim.mime(user_id, found[0]["id"]), policy=email.policy.default
    )
    assert isinstance(parsed, EmailMessage)
    return parsed


def _attachment(received: EmailMessage, filename: str) -> bytes:
    parts = [p for p in received.iter_attachments() if p.get_filename() == filename]
    assert len(parts) == 1, [p.get_filename() for p in received.iter_attachments()]
    content = parts[0].get_content()
    assert isinstance(content, bytes)
    return content


async def test_swaks_with_attachment(running_bridge: RunningBridge, tmp_path: Path) -> None:
    bridge = running_bridge
    tenant = bridge.tenant
    payload = random.Random(31).randbytes(300_000)
    (tmp_path / "report.pdf").write_bytes(payload)
    await run_client(
        "swaks",
        "--server",
        "127.0.0.1",
        "--port",
        str(bridge.smtp_port),
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice",
        "--auth-password",
        PASSWORD,
        "--from",
        tenant.alice.mail,
        "--to",
        tenant.bob.mail,
        "--header",
        "Subject: Quarterly report from swaks",
        "--body",
        "Report attached.",
        "--attach-type",
        "application/pdf",
        "--attach-name",
        "report.pdf",
        "--attach",
        f"@{tmp_path / 'report.pdf'}",
        "--suppress-data",
        timeout=60,
    )
    received = _received(bridge, tenant.bob.id, "Quarterly report from swaks")
    assert _attachment(received, "report.pdf") == payload
    sent = [r for r in bridge.sim.sent_log(tenant.alice.id) if b"from swaks" in r.mime]
    assert len(sent) == 1 and [a.lower() for a in sent[0].recipients] == [tenant.bob.mail]


async def test_msmtp_with_attachment_and_envelope_bcc(
    running_bridge: RunningBridge, tmp_path: Path
) -> None:
    bridge = running_bridge
    tenant = bridge.tenant
    msg = EmailMessage()
    msg["From"] = tenant.alice.mail
    msg["To"] = tenant.bob.mail
    msg["Subject"] = "Scan from msmtp — Größe"
    msg["Message-ID"] = "<msmtp-1@t.example>"
    msg.set_content("Bitte prüfen.\n")
    image = random.Random(32).randbytes(80_000)
    msg.add_attachment(image, maintype="image", subtype="png", filename="scan 1.png")
    # msmtp takes the password from --passwordeval's output (stdin carries the message).
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    run = await run_client(
        "msmtp",
        "--host=127.0.0.1",
        f"--port={bridge.smtp_port}",
        "--tls=off",
        "--auth=plain",
        "--user=alice",
        f"--passwordeval=cat {pw}",
        f"--from={tenant.alice.mail}",
        "--",
        tenant.bob.mail,
        tenant.shared.mail,
        stdin=msg.as_bytes(),
        env={"HOME": str(tmp_path)},
        timeout=60,
    )
    assert run.returncode == 0
    received = _received(bridge, tenant.bob.id, "Scan from msmtp — Größe")
    assert _attachment(received, "scan 1.png") == image
    assert "Bcc" not in received  # Bob must not learn about the hidden recipient
    shared_copy = _received(bridge, tenant.shared.id, "Scan from msmtp — Größe")
    assert _attachment(shared_copy, "scan 1.png") == image
    sent = [r for r in bridge.sim.sent_log(tenant.alice.id) if b"<msmtp-1@t.example>" in r.mime]
    assert len(sent) == 1
    assert sorted(a.lower() for a in sent[0].recipients) == sorted(
        [tenant.bob.mail, tenant.shared.mail]
    )


def _send(port: int, login: str, mail_from: str, to: str, subject: str) -> tuple[int, bytes]:
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(f"{subject}\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.login(login, PASSWORD)
        try:
            smtp.send_message(msg)
        except smtplib.SMTPSenderRefused as refused:
            return refused.smtp_code, refused.smtp_error
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code, refused.smtp_error
    return 250, b""


async def test_smtplib_send_as_shared_mailbox(running_bridge: RunningBridge) -> None:
    bridge = running_bridge
    sim, tenant = bridge.sim, bridge.tenant
    code, _ = await asyncio.to_thread(
        _send, bridge.smtp_port, "alice", tenant.shared.mail, tenant.bob.mail, "From the desk"
    )
    assert code == 250
    received = _received(bridge, tenant.bob.id, "From the desk")
    assert tenant.shared.mail in str(received["From"])
    shared_sent = [m["subject"] for m in sim.messages(tenant.shared.id, "sentitems")]
    alice_sent = [m["subject"] for m in sim.messages(tenant.alice.id, "sentitems")]
    assert "From the desk" in shared_sent and "From the desk" not in alice_sent
    record = [r for r in sim.sent_log(tenant.shared.id) if b"From the desk" in r.mime]
    assert len(record) == 1


async def test_smtplib_send_as_someone_else_is_refused(running_bridge: RunningBridge) -> None:
    bridge = running_bridge
    sim, tenant = bridge.sim, bridge.tenant
    before = len(sim.sent_log())
    code, reply = await asyncio.to_thread(
        _send, bridge.smtp_port, "bob", tenant.alice.mail, tenant.shared.mail, "Impostor"
    )
    assert code == 550, reply
    assert reply.startswith(b"5.7.1"), reply
    assert len(sim.sent_log()) == before
    assert all(m["subject"] != "Impostor" for m in sim.messages(tenant.shared.id, "inbox"))
