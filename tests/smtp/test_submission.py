"""End-to-end submission: real SMTP clients → SubmissionServer → GraphRemote → simulator.

The simulator's sent log is what Graph accepted (what recipients get); mailbox contents
show where copies landed; ``sim.mime`` is a recipient's copy byte for byte.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from pathlib import Path

import pytest

from bridge.backend.remote import RemoteUnavailable
from bridge.simulator import UserHandle
from bridge.simulator.model import SentRecord
from tests.smtp.clients import RawSMTP, msmtp, smtplib_send, swaks
from tests.smtp.harness import PASSWORDS, Harness, MakeHarness, TLSMaterial

ALICE = ("alice", PASSWORDS["alice"])
DATE = "Thu, 26 Nov 2026 10:00:00 +0000"


def text_message(
    sender: str,
    to: str,
    *,
    subject: str = "Hello",
    msgid: str | None = None,
    cc: str | None = None,
    body: str = "Plain text body.\nSecond line.\n",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = DATE
    if msgid is not None:
        msg["Message-ID"] = msgid
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP_POLICY)


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def with_attachments(
    sender: str, to: str, files: list[tuple[str, str, bytes]], msgid: str
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Report with attachments"
    msg["Date"] = DATE
    msg["Message-ID"] = msgid
    msg.set_content("See the attached files.\n")
    msg.add_alternative(
        "<html><body><p>See the <b>attached</b> files.</p></body></html>\n", subtype="html"
    )
    for name, ctype, payload in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP_POLICY)


def attachments_of(mime: bytes) -> dict[str, bytes]:
    parsed = message_from_bytes(mime, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    out: dict[str, bytes] = {}
    for part in parsed.iter_attachments():
        name = part.get_filename()
        payload = part.get_payload(decode=True)
        assert name is not None and isinstance(payload, bytes)
        out[name] = payload
    return out


def body_text(mime: bytes, subtype: str = "plain") -> str:
    parsed = message_from_bytes(mime, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def only_record(h: Harness, user: UserHandle) -> SentRecord:
    log = h.tenant.sim.sent_log(user)
    assert len(log) == 1, log
    return log[0]


def all_sent(h: Harness) -> list[SentRecord]:
    """This tenant's sent log (the simulator is shared by the whole test session)."""
    t = h.tenant
    return [r for user in (t.alice, t.bob, t.shared) for r in t.sim.sent_log(user)]


def inbox_mime(h: Harness, user: UserHandle, subject: str) -> bytes:
    sim = h.tenant.sim
    inbox = sim.messages(user, "inbox")
    found = [m for m in inbox if m.get("subject") == subject]
    assert len(found) == 1, [m.get("subject") for m in inbox]
    return sim.mime(user, found[0]["id"])


def header_block(mime: bytes) -> bytes:
    return mime.split(b"\r\n\r\n", 1)[0]


# ---------------------------------------------------------------------------- content


async def test_plain_text_with_smtplib(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, msgid="<plain-1@client.example>")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert outcome.code == 250, outcome
    record = only_record(h, h.tenant.alice)
    assert record.mime == data  # nothing to add: Message-ID present, no envelope-only rcpt
    assert [r.lower() for r in record.recipients] == [h.bob.lower()]
    assert record.sender.lower() == h.alice.lower()
    copy = inbox_mime(h, h.tenant.bob, "Hello")
    assert body_text(copy) == "Plain text body.\nSecond line.\n"
    sent_items = h.tenant.sim.messages(h.tenant.alice, "sentitems")
    assert [m["internetMessageId"] for m in sent_items] == ["<plain-1@client.example>"]
    assert [(s.identity.login, s.message_id) for s in h.sent] == [
        ("alice", "<plain-1@client.example>")
    ]


async def test_plain_text_with_swaks_pipelining(make_harness: MakeHarness, tmp_path: Path) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="From swaks", msgid="<swaks-1@client.example>")
    path = tmp_path / "message.eml"
    assert data.endswith(b"\r\n")
    path.write_bytes(data[:-2])  # swaks ends the data with its own CRLF
    result = await swaks(h.port, "alice", PASSWORDS["alice"], h.alice, [h.bob], path, "--pipeline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PIPELINING" in result.stdout
    assert only_record(h, h.tenant.alice).mime == data


async def test_html_and_attachments_with_msmtp(make_harness: MakeHarness, tmp_path: Path) -> None:
    h = await make_harness()
    files = [
        ("report.pdf", "application/pdf", blob(300_000, 1)),
        ("photo.png", "image/png", blob(120_000, 2)),
        ("notes.txt", "text/plain", "Ünïcödé notes\n".encode()),
    ]
    data = with_attachments(h.alice, h.bob, files, "<html-1@client.example>")
    result = await msmtp(tmp_path, h.port, "alice", PASSWORDS["alice"], h.alice, [h.bob], data)
    assert result.returncode == 0, result.stdout + result.stderr
    record = only_record(h, h.tenant.alice)
    assert record.mime == data
    copy = inbox_mime(h, h.tenant.bob, "Report with attachments")
    assert attachments_of(copy) == {name: payload for name, _, payload in files}
    assert "<b>attached</b>" in body_text(copy, "html")


async def test_msmtp_auth_login(make_harness: MakeHarness, tmp_path: Path) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="Login mech", msgid="<login-1@client.example>")
    result = await msmtp(
        tmp_path, h.port, "alice", PASSWORDS["alice"], h.alice, [h.bob], data, auth="login"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert only_record(h, h.tenant.alice).mime == data


async def test_eight_bit_and_utf8_headers_pass_through_intact(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = (
        f"From: Jörg Müller <{h.alice}>\r\n"
        f"To: Zoë Ærø <{h.bob}>\r\n"
        "Subject: Grüße aus Köln — 日本語\r\n"
        f"Date: {DATE}\r\n"
        "Message-ID: <utf8-1@client.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Schöne Grüße, naïve café, 日本語のテキスト.\r\n"
    ).encode()
    data += bytes([0xE2, 0x82, 0xAC]) + b" euro\r\n"
    outcome = await smtplib_send(
        h.port, ALICE, h.alice, [h.bob], data, mail_options=["SMTPUTF8", "BODY=8BITMIME"]
    )
    assert outcome.code == 250, outcome
    assert only_record(h, h.tenant.alice).mime == data  # byte for byte, raw UTF-8 kept
    # (Found by Message-ID: the simulator mis-decodes raw UTF-8 Subject headers in its
    # JSON view; the MIME it delivers is what matters here.)
    inbox = h.tenant.sim.messages(h.tenant.bob, "inbox")
    assert [m["internetMessageId"] for m in inbox] == ["<utf8-1@client.example>"]
    copy = h.tenant.sim.mime(h.tenant.bob, inbox[0]["id"])
    assert copy.endswith(data)  # the transport copy only prepends trace fields


async def test_eight_bit_body_without_smtputf8(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = (
        f"From: {h.alice}\r\nTo: {h.bob}\r\nSubject: latin1\r\n"
        "Message-ID: <latin1-1@client.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + "Grüße\r\n".encode("latin-1")
    outcome = await smtplib_send(
        h.port, ALICE, h.alice, [h.bob], data, mail_options=["BODY=8BITMIME"]
    )
    assert outcome.code == 250, outcome
    assert only_record(h, h.tenant.alice).mime == data


@pytest.mark.parametrize(("megabytes", "raw_size"), [(10, 7_310_000), (30, 21_930_000)])
async def test_large_messages_arrive_with_the_same_attachment_bytes(
    make_harness: MakeHarness, megabytes: int, raw_size: int
) -> None:
    h = await make_harness()
    payload = blob(raw_size, megabytes)
    data = with_attachments(
        h.alice, h.bob, [("big.bin", "application/octet-stream", payload)], f"<big-{megabytes}@c>"
    )
    assert megabytes * 1_000_000 <= len(data) < (megabytes + 1) * 1_000_000
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert outcome.code == 250, outcome
    record = only_record(h, h.tenant.alice)
    assert attachments_of(record.mime) == {"big.bin": payload}
    copy = inbox_mime(h, h.tenant.bob, "Report with attachments")
    assert attachments_of(copy) == {"big.bin": payload}
    # Above ~4 MB Graph's draft path rebuilds the structure: the HTML alternative is the
    # body that survives (GraphRemote.send_mime docstring); its text must be intact.
    assert "See the <b>attached</b> files." in body_text(copy, "html")


async def test_message_over_the_size_limit_is_refused(make_harness: MakeHarness) -> None:
    h = await make_harness(max_message_size=100_000)
    client = await RawSMTP.connect(h.port)
    try:
        ehlo = await client.command("EHLO c.example")
        assert "250-SIZE 100000" in ehlo and "8BITMIME" in ehlo and "SMTPUTF8" in ehlo
        auth = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode()).decode()
        assert (await client.command(f"AUTH PLAIN {auth}")).startswith("235")
        reply = await client.command(f"MAIL FROM:<{h.alice}> SIZE=200000")
        assert reply.startswith("552")  # RFC 1870 §6
    finally:
        await client.close()
    big = text_message(h.alice, h.bob, body="x" * 150_000)
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], big)
    assert outcome.code == 552
    assert h.tenant.sim.sent_log(h.tenant.alice) == []


async def test_missing_message_id_is_added_at_byte_level(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="No id")
    assert b"Message-ID" not in data
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert outcome.code == 250, outcome
    record = only_record(h, h.tenant.alice)
    head, body = data.split(b"\r\n\r\n", 1)
    new_head, new_body = record.mime.split(b"\r\n\r\n", 1)
    assert new_body == body
    assert new_head.startswith(head + b"\r\nMessage-ID: <")
    assert new_head.endswith(b"@bridge.test>")
    message_id = new_head.rsplit(b"Message-ID: ", 1)[1].decode()
    assert h.sent[0].message_id == message_id
    assert message_id in outcome.text


# ------------------------------------------------------------------------- recipients


async def test_envelope_only_recipient_becomes_bcc(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="With bcc", msgid="<bcc-1@client.example>")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob, h.shared], data)
    assert outcome.code == 250, outcome
    record = only_record(h, h.tenant.alice)
    head, body = data.split(b"\r\n\r\n", 1)
    assert record.mime == head + f"\r\nBcc: {h.shared}\r\n\r\n".encode() + body
    assert {r.lower() for r in record.recipients} == {h.bob.lower(), h.shared.lower()}
    to_copy = inbox_mime(h, h.tenant.bob, "With bcc")
    assert b"bcc:" not in header_block(to_copy).lower()
    assert h.shared.encode() not in to_copy
    bcc_copy = inbox_mime(h, h.tenant.shared, "With bcc")
    assert bcc_copy.endswith(body)


async def test_undisclosed_recipients_all_become_bcc(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = (
        f"From: {h.alice}\r\nTo: undisclosed-recipients:;\r\nSubject: Newsletter\r\n"
        "Message-ID: <news-1@c>\r\n\r\nHello all.\r\n"
    ).encode()
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob, h.shared], data)
    assert outcome.code == 250, outcome
    record = only_record(h, h.tenant.alice)
    bcc = f"Bcc: {h.bob},\r\n {h.shared}\r\n".encode()
    assert record.mime == data.replace(b"\r\n\r\n", b"\r\n" + bcc + b"\r\n", 1)
    for user in (h.tenant.bob, h.tenant.shared):
        copy = inbox_mime(h, user, "Newsletter")
        assert b"bcc:" not in header_block(copy).lower()


async def test_header_recipient_missing_from_the_envelope_is_refused(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, cc=h.shared, subject="Cc only in header")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert outcome.code == 550, outcome
    assert outcome.text.startswith("5.7.0 Header recipient " + h.shared)
    assert h.tenant.sim.sent_log(h.tenant.alice) == []
    assert h.tenant.sim.messages(h.tenant.shared, "inbox") == []
    # Case differences between envelope and header are the same mailbox for Exchange.
    upper = text_message(h.alice, h.bob.upper(), subject="Case", msgid="<case@c>")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], upper)
    assert outcome.code == 250, outcome


async def test_header_address_without_domain_is_refused(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.alice, "bob", subject="No domain")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert outcome.code == 554 and outcome.text.startswith("5.6.0"), outcome


# --------------------------------------------------------------------------- senders


async def test_send_as_shared_mailbox_goes_through_its_mailbox(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.shared, h.bob, subject="From the desk", msgid="<desk-1@c>")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert outcome.code == 250, outcome
    record = only_record(h, h.tenant.shared)
    assert record.sender.lower() == h.shared.lower() and record.mime == data
    assert h.tenant.sim.sent_log(h.tenant.alice) == []
    shared_sent = h.tenant.sim.messages(h.tenant.shared, "sentitems")
    assert [m["internetMessageId"] for m in shared_sent] == ["<desk-1@c>"]
    assert h.tenant.sim.messages(h.tenant.alice, "sentitems") == []
    assert h.sent[0].mailbox_id == h.tenant.shared.id


async def test_send_as_refused_for_envelope_and_header(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.bob, h.shared, subject="Spoof")
    outcome = await smtplib_send(h.port, ALICE, h.bob, [h.shared], data)
    assert outcome.code == 550 and outcome.text == f"5.7.1 alice may not send as {h.bob}"
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.shared], data)
    assert outcome.code == 550 and outcome.text == f"5.7.1 alice may not send as {h.bob}"
    # bob may not send as the shared mailbox, which alice may.
    data = text_message(h.shared, h.alice, subject="Spoof 2")
    outcome = await smtplib_send(h.port, ("bob", PASSWORDS["bob"]), h.bob, [h.alice], data)
    assert outcome.code == 550 and outcome.text.startswith("5.7.1 bob may not send as")
    assert all_sent(h) == []


async def test_graph_send_as_denial_is_permanent(make_harness: MakeHarness) -> None:
    """The directory allows it but Exchange does not: Graph's 403 becomes 550 5.7.1."""
    h = await make_harness()
    h.directory.extra_routes[("alice", h.bob.casefold())] = h.directory.remotes[h.alice.casefold()]
    data = text_message(h.bob, h.shared, subject="Denied by Exchange")
    outcome = await smtplib_send(h.port, ALICE, h.bob, [h.shared], data)
    assert outcome.code == 550, outcome
    assert outcome.text.startswith("5.7.1 Microsoft 365 refused this sender")
    assert "\n" not in outcome.text
    assert all_sent(h) == []


# ------------------------------------------------------------------------------ AUTH


async def test_submission_without_auth_is_refused(make_harness: MakeHarness) -> None:
    h = await make_harness()
    outcome = await smtplib_send(h.port, None, h.alice, [h.bob], text_message(h.alice, h.bob))
    assert (outcome.code, outcome.text) == (530, "5.7.0 Authentication required")
    assert all_sent(h) == []


async def test_wrong_password_is_delayed_and_refused(make_harness: MakeHarness) -> None:
    h = await make_harness()
    outcome = await smtplib_send(
        h.port, ("alice", "wrong"), h.alice, [h.bob], text_message(h.alice, h.bob)
    )
    assert (outcome.code, outcome.text) == (535, "5.7.8 Authentication credentials invalid")
    # smtplib tries PLAIN, then LOGIN: two failed attempts, each delayed.
    assert h.sleeps == [1.5, 1.5]
    outcome = await smtplib_send(
        h.port, ("mallory", "x"), h.alice, [h.bob], text_message(h.alice, h.bob)
    )
    assert outcome.code == 535
    assert h.sleeps == [1.5] * 4
    assert all_sent(h) == []


async def test_repeated_failures_lock_out_without_checking(make_harness: MakeHarness) -> None:
    from bridge.smtp import AuthLimits

    h = await make_harness(
        auth_limits=AuthLimits(max_failures_per_login=2, failure_delay_seconds=1)
    )
    # smtplib tries PLAIN then LOGIN: one failed login() is two failed attempts.
    outcome = await smtplib_send(h.port, ("alice", "guess"), h.alice, [h.bob], b"x")
    assert outcome.code == 535
    assert len(h.directory.auth_calls) == 2
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], b"x")  # even the right one
    assert outcome.code == 454 and outcome.text.startswith("4.7.0"), outcome
    assert len(h.directory.auth_calls) == 2  # the password was not even checked
    assert len(h.sleeps) == 4  # locked-out attempts are delayed too
    bob = await smtplib_send(
        h.port, ("bob", PASSWORDS["bob"]), h.bob, [h.alice], text_message(h.bob, h.alice)
    )
    assert bob.code == 250  # another login from the same client is not locked out yet


async def test_auth_plain_initial_response_and_authzid(make_harness: MakeHarness) -> None:
    h = await make_harness()
    client = await RawSMTP.connect(h.port)
    try:
        await client.command("EHLO c.example")
        other = base64.b64encode(b"bob\0alice\0" + PASSWORDS["alice"].encode()).decode()
        assert (await client.command(f"AUTH PLAIN {other}")).startswith("535 5.7.8")
        assert (await client.command("AUTH PLAIN !!!")).startswith("501 5.5.2")
        good = base64.b64encode(b"alice\0alice\0" + PASSWORDS["alice"].encode()).decode()
        assert (await client.command(f"AUTH PLAIN {good}")).startswith("235 2.7.0")
    finally:
        await client.close()


async def test_pipelined_transaction_and_smtputf8_rules(make_harness: MakeHarness) -> None:
    h = await make_harness()
    client = await RawSMTP.connect(h.port)
    try:
        ehlo = await client.command("EHLO c.example")
        assert "250-PIPELINING" in ehlo and "AUTH LOGIN PLAIN" in ehlo
        auth = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode()).decode()
        assert (await client.command(f"AUTH PLAIN {auth}")).startswith("235")
        # RFC 6531 §3.5: a non-ASCII address needs SMTPUTF8 on MAIL.
        assert (await client.command(f"MAIL FROM:<{h.alice}>")).startswith("250 2.1.0")
        assert (await client.command("RCPT TO:<zoë@example.com>")).startswith("553 5.6.7")
        assert (await client.command("RSET")).startswith("250")
        data = text_message(h.alice, h.bob, subject="Pipelined", msgid="<pipe-1@c>")
        # RFC 2920: MAIL, RCPT and DATA sent in one go; replies come back in order.
        await client.send(f"MAIL FROM:<{h.alice}>", f"RCPT TO:<{h.bob}>", "DATA")
        assert (await client.reply()).startswith("250 2.1.0")
        assert (await client.reply()).startswith("250 2.1.5")
        assert (await client.reply()).startswith("354")
        client.writer.write(data + b".\r\n")
        assert (await client.reply()).startswith("250 2.0.0")
    finally:
        await client.close()
    assert only_record(h, h.tenant.alice).mime == data


# ----------------------------------------------------------------------- Graph trouble


async def test_throttled_graph_defers_then_succeeds_on_retry(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="Throttled", msgid="<throttle-1@c>")
    h.tenant.sim.faults.fail_next("sendMail", 1, status=429, retry_after=30)
    first = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert first.code == 451 and first.text.startswith("4.4.5"), first
    assert all_sent(h) == []
    second = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert second.code == 250, second
    assert only_record(h, h.tenant.alice).mime == data


async def test_graph_down_defers(make_harness: MakeHarness) -> None:
    h = await make_harness()
    h.tenant.sim.set_faults(error_rate=1.0, error_status=503)
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], text_message(h.alice, h.bob))
    h.tenant.sim.faults.clear()
    assert outcome.code == 451 and outcome.text[:4] in ("4.4.", "4.3."), outcome
    assert all_sent(h) == []


async def test_graph_permanent_error_is_5xx_one_line(make_harness: MakeHarness) -> None:
    h = await make_harness()
    h.tenant.sim.faults.fail_next("sendMail", 1, status=400)
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], text_message(h.alice, h.bob))
    assert outcome.code == 554 and outcome.text.startswith("5.6.0 Microsoft 365 refused"), outcome
    assert "\n" not in outcome.text
    assert all_sent(h) == []


async def test_outcome_unknown_not_sent_retry_sends_once(make_harness: MakeHarness) -> None:
    """504 on sendMail: Graph may or may not have sent. Here it did not."""
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="Unknown", msgid="<unknown-1@c>")
    h.tenant.sim.faults.fail_next("sendMail", 1, status=504)
    first = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert first.code == 451 and first.text.startswith("4.4.2"), first
    assert [e.message_id for e in h.server.uncertain.entries()] == ["<unknown-1@c>"]
    # An immediate retry finds nothing in Sent Items yet: still too early to risk a resend.
    early = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert early.code == 451 and early.text.startswith("4.4.2"), early
    assert all_sent(h) == []
    h.clock[0] += 600  # the settle window has passed: it really was not sent
    later = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert later.code == 250, later
    assert only_record(h, h.tenant.alice).mime == data
    assert h.server.uncertain.entries() == ()


async def test_outcome_unknown_but_sent_retry_does_not_send_again(
    make_harness: MakeHarness,
) -> None:
    """The request reached Graph, which sent the message, but the answer never came
    back (client timeout): the retry finds it in Sent Items and answers 250."""
    h = await make_harness(graph={"timeout": 0.5})
    data = text_message(h.alice, h.bob, subject="Slow", msgid="<slow-1@c>")
    h.tenant.sim.set_faults(latency=1.5)
    first = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert first.code == 451 and first.text.startswith("4.4.2"), first
    for _ in range(100):  # the simulator finishes the send after its latency
        if h.tenant.sim.sent_log(h.tenant.alice):
            break
        await asyncio.sleep(0.05)
    h.tenant.sim.faults.clear()
    assert len(h.tenant.sim.sent_log(h.tenant.alice)) == 1
    retry = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert retry.code == 250 and "Already sent" in retry.text, retry
    assert len(h.tenant.sim.sent_log(h.tenant.alice)) == 1
    assert len(h.tenant.sim.messages(h.tenant.bob, "inbox")) == 1
    assert [s.message_id for s in h.sent] == ["<slow-1@c>"]
    assert h.server.uncertain.entries() == ()


async def test_app_cannot_sign_in_defers_without_leaking_details(make_harness: MakeHarness) -> None:
    h = await make_harness()
    h.tenant.sim.expire_secret(h.tenant.app.client_id)
    h.tenant.sim.expire_tokens()
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], text_message(h.alice, h.bob))
    assert (outcome.code, outcome.text) == (
        451,
        "4.3.0 The bridge cannot sign in to Microsoft 365; try again later",
    )
    assert all_sent(h) == []


async def test_directory_trouble_during_auth_is_temporary(make_harness: MakeHarness) -> None:
    h = await make_harness()
    h.directory.fail_with = RemoteUnavailable("The account store is busy.")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], b"x")
    assert (outcome.code, outcome.text) == (454, "4.7.0 Temporary authentication failure")
    assert h.sleeps == []  # not a failed guess: no delay, no lockout count


async def test_client_gone_mid_send_is_recorded_and_retry_not_resent(
    make_harness: MakeHarness,
) -> None:
    """The client hangs up while Graph is sending: the send still completes (it cannot
    be called back), and the client's retry is answered from Sent Items."""
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="Hung up", msgid="<gone-1@c>")
    client = await RawSMTP.connect(h.port)
    await client.command("EHLO c.example")
    auth = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode()).decode()
    assert (await client.command(f"AUTH PLAIN {auth}")).startswith("235")
    assert (await client.command(f"MAIL FROM:<{h.alice}>")).startswith("250")
    assert (await client.command(f"RCPT TO:<{h.bob}>")).startswith("250")
    assert (await client.command("DATA")).startswith("354")
    h.tenant.sim.set_faults(latency=0.5)
    client.writer.write(data + b".\r\n")
    await client.writer.drain()
    for _ in range(100):  # wait until the send is in flight, then hang up
        if h.server.handler._sends:
            break
        await asyncio.sleep(0.01)
    assert h.server.handler._sends
    await client.close()
    await h.server.handler.drain()
    h.tenant.sim.faults.clear()
    assert len(h.tenant.sim.sent_log(h.tenant.alice)) == 1
    assert [e.message_id for e in h.server.uncertain.entries()] == ["<gone-1@c>"]
    retry = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert retry.code == 250 and "Already sent" in retry.text, retry
    assert len(h.tenant.sim.sent_log(h.tenant.alice)) == 1


async def test_stop_lets_a_send_in_flight_finish(make_harness: MakeHarness) -> None:
    h = await make_harness()
    data = text_message(h.alice, h.bob, subject="At shutdown", msgid="<stop-1@c>")
    h.tenant.sim.set_faults(latency=0.5)
    sending = asyncio.create_task(smtplib_send(h.port, ALICE, h.alice, [h.bob], data))
    for _ in range(200):
        if h.server.handler._sends:
            break
        await asyncio.sleep(0.01)
    assert h.server.handler._sends
    await h.server.stop()
    outcome = await sending
    h.tenant.sim.faults.clear()
    assert outcome.code == 250, outcome  # answered before the connection was closed
    assert only_record(h, h.tenant.alice).mime == data
    assert h.server.uncertain.entries() == ()


# ------------------------------------------------------------------------------- TLS


async def test_starttls_required_before_auth(make_harness: MakeHarness, tls: TLSMaterial) -> None:
    h = await make_harness(ssl_context=tls.server_context, allow_plaintext_auth=False)
    client = await RawSMTP.connect(h.port)
    try:
        ehlo = await client.command("EHLO c.example")
        assert "STARTTLS" in ehlo and "AUTH" not in ehlo  # RFC 4954 §4 / RFC 3207
        assert (await client.command(f"MAIL FROM:<{h.alice}>")).startswith("530")
    finally:
        await client.close()
    data = text_message(h.alice, h.bob, subject="Over STARTTLS", msgid="<tls-1@c>")
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data, starttls=tls.client_context)
    assert outcome.code == 250, outcome
    assert only_record(h, h.tenant.alice).mime == data


async def test_implicit_tls_port_and_clients(
    make_harness: MakeHarness, tls: TLSMaterial, tmp_path: Path
) -> None:
    h = await make_harness(ssl_context=tls.server_context, allow_plaintext_auth=False, tls_port=0)
    assert h.server.tls_port is not None
    data = text_message(h.alice, h.bob, subject="Implicit TLS", msgid="<tls-2@c>")
    outcome = await smtplib_send(
        h.server.tls_port, ALICE, h.alice, [h.bob], data, implicit_tls=tls.client_context
    )
    assert outcome.code == 250, outcome
    path = tmp_path / "m.eml"
    path.write_bytes(text_message(h.alice, h.bob, subject="swaks tls", msgid="<tls-3@c>"))
    result = await swaks(
        h.server.tls_port,
        "alice",
        PASSWORDS["alice"],
        h.alice,
        [h.bob],
        path,
        "--tls-on-connect",
        "--tls-verify",
        "--tls-ca-path",
        str(tls.ca_file),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    starttls = await msmtp(
        tmp_path,
        h.port,
        "alice",
        PASSWORDS["alice"],
        h.alice,
        [h.bob],
        text_message(h.alice, h.bob, subject="msmtp starttls", msgid="<tls-4@c>"),
        tls="on",
        ca_file=tls.ca_file,
    )
    assert starttls.returncode == 0, starttls.stdout + starttls.stderr
    subjects = sorted(m["subject"] for m in h.tenant.sim.messages(h.tenant.bob, "inbox"))
    assert subjects == ["Implicit TLS", "msmtp starttls", "swaks tls"]


def test_plain_port_without_tls_needs_explicit_plaintext_opt_in() -> None:
    from bridge.smtp import SubmissionServer

    with pytest.raises(ValueError, match="allow_plaintext_auth"):
        SubmissionServer(object(), port=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ssl_context"):
        SubmissionServer(object(), port=None, tls_port=0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ logs


async def test_one_log_line_per_submission_without_content(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness()
    caplog.set_level(logging.DEBUG)  # even at DEBUG (aiosmtpd logs DATA lines there)
    data = text_message(
        h.alice, h.bob, subject="Secret plans", msgid="<log-1@c>", body="TOPSECRET\n"
    )
    outcome = await smtplib_send(h.port, ALICE, h.alice, [h.bob], data)
    assert outcome.code == 250
    lines = [r.getMessage() for r in caplog.records if "smtp submission login=" in r.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    assert "login=alice" in line and "message_id=<log-1@c>" in line
    assert "recipients=1" in line and f"size={len(data)}" in line and "outcome=sent" in line
    assert "request_id=-" not in line  # Graph's request id is logged
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "TOPSECRET" not in everything and "Secret plans" not in everything
    assert PASSWORDS["alice"] not in everything
