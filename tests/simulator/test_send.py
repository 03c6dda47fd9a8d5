"""sendMail (JSON and MIME), draft + attachments + upload session + send (§13)."""

from __future__ import annotations

import base64
import email
import email.policy

from .conftest import Graph
from .test_messages import IMMUTABLE


def _mime(frm: str, to: str, bcc: str = "", subject: str = "hi") -> bytes:
    bcc_line = f"Bcc: {bcc}\r\n" if bcc else ""
    return (
        f"From: {frm}\r\nTo: {to}\r\n{bcc_line}Subject: {subject}\r\n"
        "Message-ID: <sent-1@bridge.example>\r\nDate: Tue, 02 Jan 2024 09:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello there\r\n"
    ).encode()


def _send_mime(graph: Graph, user, raw: bytes):  # type: ignore[no-untyped-def]
    return graph.post(
        f"{graph.mb(user)}/sendMail",
        content=base64.b64encode(raw),
        headers={"Content-Type": "text/plain"},
    )


def test_send_mime_delivers_and_strips_bcc(graph: Graph) -> None:
    t = graph.t
    raw = _mime(t.alice.mail, f"{t.bob.mail}, outside@example.org", bcc=t.shared.mail)
    r = _send_mime(graph, t.alice, raw)
    assert r.status_code == 202 and r.content == b""
    [rec] = t.sim.sent_log(t.alice)
    assert rec.mime == raw
    assert rec.from_address == t.alice.mail
    assert rec.sender == t.alice.mail
    assert set(rec.recipients) == {t.bob.mail, "outside@example.org", t.shared.mail}
    for who in (t.bob, t.shared):
        [m] = t.sim.messages(who, "inbox")
        assert m["isDraft"] is False and m["isRead"] is False
        delivered = t.sim.mime(who, m["id"])
        assert b"Bcc:" not in delivered
        assert delivered.endswith(b"hello there\r\n")
        assert m["internetMessageId"] == "<sent-1@bridge.example>"
    [copy] = t.sim.messages(t.alice, "sentitems")
    assert copy["isRead"] is True and copy["isDraft"] is False
    assert t.sim.mime(t.alice, copy["id"]) == raw


def test_send_as_rules(graph: Graph) -> None:
    t = graph.t
    denied = _send_mime(graph, t.bob, _mime(t.alice.mail, t.bob.mail))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "ErrorSendAsDenied"
    allowed = _send_mime(graph, t.alice, _mime(t.shared.mail, t.bob.mail))
    assert allowed.status_code == 202
    assert t.sim.sent_log(t.alice)[-1].from_address == t.shared.mail
    # The shared mailbox itself may send as itself through its own URL.
    assert _send_mime(graph, t.shared, _mime(t.shared.mail, t.bob.mail)).status_code == 202


def test_send_errors(graph: Graph) -> None:
    t = graph.t
    bad = graph.post(
        f"{graph.mb(t.alice)}/sendMail", content=b"@@@", headers={"Content-Type": "text/plain"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "ErrorMimeContentInvalidBase64String"
    big = b"x" * (4 * 1024 * 1024 + 1)
    r = graph.post(
        f"{graph.mb(t.alice)}/sendMail", content=big, headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 413
    norcpt = _send_mime(
        graph, t.alice, b"From: " + t.alice.mail.encode() + b"\r\nSubject: x\r\n\r\nx\r\n"
    )
    assert norcpt.status_code == 400
    assert t.sim.sent_log(t.alice) == []


def test_send_json(graph: Graph) -> None:
    t = graph.t
    body = {
        "message": {
            "subject": "Meet for lunch?",
            "body": {"contentType": "Text", "content": "The new cafeteria is open."},
            "toRecipients": [{"emailAddress": {"address": t.bob.mail}}],
            "bccRecipients": [{"emailAddress": {"address": "hidden@example.org"}}],
        },
        "saveToSentItems": "false",
    }
    r = graph.post(f"{graph.mb(t.alice)}/sendMail", json=body)
    assert r.status_code == 202
    [rec] = t.sim.sent_log(t.alice)
    assert set(rec.recipients) == {t.bob.mail, "hidden@example.org"}
    parsed = email.message_from_bytes(rec.mime, policy=email.policy.default)
    assert parsed["Subject"] == "Meet for lunch?"
    assert t.sim.messages(t.alice, "sentitems") == []  # saveToSentItems false
    [m] = t.sim.messages(t.bob)
    assert m["subject"] == "Meet for lunch?"
    assert b"hidden@example.org" not in t.sim.mime(t.bob, m["id"])
    r = graph.post(
        f"{graph.mb(t.bob)}/sendMail",
        json={
            "message": {
                "from": {"emailAddress": {"address": t.alice.mail}},
                "toRecipients": [{"emailAddress": {"address": t.alice.mail}}],
            }
        },
    )
    assert r.status_code == 403


def test_draft_attachments_upload_session_and_send(graph: Graph) -> None:
    t = graph.t
    mb = graph.mb(t.alice)
    draft = graph.post(
        f"{mb}/messages",
        json={"subject": "big one", "toRecipients": [{"emailAddress": {"address": t.bob.mail}}]},
        headers=IMMUTABLE,
    ).json()
    did = draft["id"]
    small = graph.post(
        f"{mb}/messages/{did}/attachments",
        json={
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "note.txt",
            "contentType": "text/plain",
            "contentBytes": base64.b64encode(b"Hello World!").decode(),
        },
    )
    assert small.status_code == 201 and small.json()["size"] == 12
    tiny = graph.post(
        f"{mb}/messages/{did}/attachments/createUploadSession",
        json={"AttachmentItem": {"attachmentType": "file", "name": "s", "size": 1000}},
    )
    assert tiny.status_code == 400
    assert tiny.json()["error"]["code"] == "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
    payload = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB
    r = graph.post(
        f"{mb}/messages/{did}/attachments/createUploadSession",
        json={
            "AttachmentItem": {
                "attachmentType": "file",
                "name": "blob.bin",
                "size": len(payload),
                "contentType": "application/octet-stream",
            }
        },
    )
    assert r.status_code == 201
    session = r.json()
    assert session["nextExpectedRanges"] == ["0-"]
    url = session["uploadUrl"]
    chunk = 3 * 1024 * 1024
    # No Authorization header on upload PUTs (§13.4).
    first = graph.client.put(
        url,
        content=payload[:chunk],
        headers={
            "Content-Range": f"bytes 0-{chunk - 1}/{len(payload)}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert first.status_code == 200
    assert first.json()["NextExpectedRanges"] == [str(chunk)]
    assert "ExpirationDateTime" in first.json()
    overlap = graph.client.put(
        url, content=payload[:10], headers={"Content-Range": f"bytes 0-9/{len(payload)}"}
    )
    assert overlap.status_code == 416
    last = graph.client.put(
        url,
        content=payload[chunk:],
        headers={"Content-Range": f"bytes {chunk}-{len(payload) - 1}/{len(payload)}"},
    )
    assert last.status_code == 201 and last.content == b""
    assert "/Attachments('" in last.headers["Location"]
    atts = graph.get(f"{mb}/messages/{did}/attachments", params={"$select": "name,size"}).json()[
        "value"
    ]
    assert sorted((a["name"], a["size"]) for a in atts) == [
        ("blob.bin", len(payload)),
        ("note.txt", 12),
    ]
    r = graph.post(f"{mb}/messages/{did}/send")
    assert r.status_code == 202
    sent = graph.get(f"{mb}/messages/{did}", headers=IMMUTABLE).json()
    assert sent["isDraft"] is False
    assert sent["parentFolderId"] == graph.get(f"{mb}/mailFolders/sentitems").json()["id"]
    [m] = t.sim.messages(t.bob)
    delivered = email.message_from_bytes(t.sim.mime(t.bob, m["id"]), policy=email.policy.default)
    files = {p.get_filename(): p.get_content() for p in delivered.iter_attachments()}
    assert files["blob.bin"] == payload
    assert files["note.txt"] in (b"Hello World!", "Hello World!")
    again = graph.post(f"{mb}/messages/{did}/send")
    assert again.status_code == 400


def test_json_send_cannot_inject_headers(graph: Graph) -> None:
    t = graph.t
    body = {
        "message": {
            "subject": "hello\r\nBcc: victim@example.org",
            "toRecipients": [{"emailAddress": {"address": t.bob.mail, "name": "Bob\r\nX-Evil: 1"}}],
        }
    }
    assert graph.post(f"{graph.mb(t.alice)}/sendMail", json=body).status_code == 202
    [rec] = t.sim.sent_log(t.alice)
    assert rec.recipients == (t.bob.mail,)
    parsed = email.message_from_bytes(rec.mime, policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert parsed["Subject"] == "hello Bcc: victim@example.org"
