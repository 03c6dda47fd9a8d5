"""curl's IMAP and SMTP clients against the whole bridge over the simulator."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
import re
from email.message import EmailMessage
from pathlib import Path

from tests.e2e.conftest import RunningBridge

from .helpers import PASSWORD, bridge_bodies, message_id, run_client, seed_corpus

_USER = f"alice:{PASSWORD}"


async def _curl(*args: str, check: bool = True) -> str:
    run = await run_client("curl", "-sS", "--max-time", "30", *args, timeout=45, check=check)
    return run.output


async def test_curl_imap_list_fetch_search(running_bridge: RunningBridge) -> None:
    bridge = running_bridge
    sim, alice = bridge.sim, bridge.tenant.alice.id
    sim.create_folder(alice, "Kunden & Lieferanten")  # '&' travels as '&-' (RFC 3501 §5.1.3)
    seeded = seed_corpus(bridge, alice, ["inbox"], count=6, seed=11)
    await bridge.sync_now("alice")
    base = f"imap://127.0.0.1:{bridge.imap_port}"

    listing = await _curl("--url", f"{base}/", "-u", _USER)
    assert '"/" "INBOX"' in listing
    assert '\\Sent) "/" "Sent Items"' in listing
    assert '\\Trash) "/" "Deleted Items"' in listing
    assert '"Kunden &- Lieferanten"' in listing

    served = await asyncio.to_thread(bridge_bodies, bridge.imap_port, "alice", "INBOX")
    search = await _curl("--url", f"{base}/INBOX", "-u", _USER, "-X", "UID SEARCH ALL")
    found = re.search(r"^\* SEARCH([\d ]*)\r?$", search, re.MULTILINE)
    assert found is not None, search
    uids = sorted(int(u) for u in found.group(1).split())
    assert uids == sorted(served) and len(uids) == len(seeded["inbox"])

    # curl writes BODY[] to stdout: fetch the first one as bytes, exactly.
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        "30",
        "--url",
        f"{base}/INBOX;UID={uids[0]}",
        "-u",
        _USER,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    body, err = await asyncio.wait_for(proc.communicate(), 45)
    assert proc.returncode == 0, err
    assert body == served[uids[0]] == seeded["inbox"][0]

    unseen = await _curl("--url", f"{base}/INBOX?UNSEEN", "-u", _USER)
    unread = [m for m in sim.messages(alice, "inbox") if not m["isRead"]]
    found = re.search(r"^\* SEARCH([\d ]*)\r?$", unseen, re.MULTILINE)
    assert found is not None, unseen
    assert len(found.group(1).split()) == len(unread) > 0

    refused = await run_client(
        "curl", "-sS", "--url", f"{base}/", "-u", "alice:wrong", check=False, timeout=45
    )
    assert refused.returncode == 67  # CURLE_LOGIN_DENIED


async def test_curl_smtp_send(running_bridge: RunningBridge, tmp_path: Path) -> None:
    bridge = running_bridge
    sim, tenant = bridge.sim, bridge.tenant
    msg = EmailMessage()
    msg["From"] = f"Alice Anders <{tenant.alice.mail}>"
    msg["To"] = tenant.bob.mail
    msg["Subject"] = "Sent by curl"
    msg["Message-ID"] = "<curl-smtp-1@t.example>"
    msg.set_content("Hello Bob,\nthis came through curl's SMTP client.\n")
    attachment = random.Random(21).randbytes(20_000)
    msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="scan.pdf")
    mail = tmp_path / "mail.eml"
    mail.write_bytes(msg.as_bytes())

    await _curl(
        "--url",
        f"smtp://127.0.0.1:{bridge.smtp_port}",
        "--mail-from",
        tenant.alice.mail,
        "--mail-rcpt",
        tenant.bob.mail,
        "--upload-file",
        str(mail),
        "-u",
        _USER,
    )

    sent = [r for r in sim.sent_log(tenant.alice.id) if b"<curl-smtp-1@t.example>" in r.mime]
    assert len(sent) == 1
    assert [r.lower() for r in sent[0].recipients] == [tenant.bob.mail.lower()]
    assert sent[0].from_address.lower() == tenant.alice.mail.lower()
    inbox = [m for m in sim.messages(tenant.bob.id, "inbox") if m["subject"] == "Sent by curl"]
    assert len(inbox) == 1 and inbox[0]["isRead"] is False
    assert inbox[0]["internetMessageId"] == message_id(msg.as_bytes())
    # What Bob receives: the same text and the attachment, byte for byte.
    received = email.message_from_bytes(
        sim.mime(tenant.bob.id, inbox[0]["id"]), policy=email.policy.default
    )
    assert isinstance(received, EmailMessage)
    body = received.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "Hello Bob,\nthis came through curl's SMTP client.\n"
    files = [p for p in received.iter_attachments() if p.get_filename() == "scan.pdf"]
    assert len(files) == 1
    assert files[0].get_content() == attachment
    copies = [
        m for m in sim.messages(tenant.alice.id, "sentitems") if m["subject"] == "Sent by curl"
    ]
    assert len(copies) == 1
