"""Sending and delivery: sendMail (JSON and MIME), draft ``/send``, attachment upload
sessions, and in-simulator delivery to recipients' Inboxes (§13).

Owns: the sent log, the send-as rule (``403 ErrorSendAsDenied``), Bcc stripping for
delivered copies, and the pre-authenticated upload URL protocol (§13.4). Must not import
anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import format_datetime

from .context import Ctx, SimResponse
from .errors import GraphError, bad_request
from .messages import fields_from_json, find, message_mime
from .mimeutil import (
    addresses_of,
    decode_base64_mime,
    generate_mime,
    parse_mime,
    strip_bcc,
)
from .model import Attachment, Mailbox, Message, SentRecord, User, World, iso

MIN_UPLOAD = 3 * 1024 * 1024  # §13.4: upload sessions are for files ≥ 3 MB
MAX_UPLOAD = 150 * 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024


def send_as_denied() -> GraphError:
    return GraphError(
        403,
        "ErrorSendAsDenied",
        "The user account which was used to submit this request does not have the right to "
        "send mail on behalf of the specified sending account. Cannot submit message.",
    )


def deliver_mime(
    world: World,
    user: User,
    raw: bytes,
    *,
    folder: str = "inbox",
    received: dt.datetime | None = None,
    is_read: bool = False,
) -> Message:
    """Put MIME into a mailbox as a received (non-draft) message; ``$value`` serves ``raw``."""
    mb = world.mailbox(user.id)
    fields = parse_mime(raw)
    fields["received"] = (received or world.now()).astimezone(dt.UTC).replace(microsecond=0)
    return world.new_message(
        mb, world.folder(mb, folder), is_draft=False, is_read=is_read, mime=raw, **fields
    )


def _may_send_as(world: World, user: User, address: str) -> bool:
    if address.lower() in user.addresses():
        return True
    return address.lower() in world.mailbox(user.id).send_as


def _eol(raw: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in raw[:4096] else b"\n"


def _transport_copy(world: World, raw: bytes) -> bytes:
    """What a recipient's mailbox stores: Bcc removed, transport headers prepended."""
    eol = _eol(raw)
    stamp = format_datetime(world.now()).encode()
    prefix = (
        b"Received: from simulator.invalid (127.0.0.1) by simulator.invalid with HTTPS; "
        + stamp
        + eol
        + b"X-MS-Exchange-Organization-AuthAs: Internal"
        + eol
    )
    return prefix + strip_bcc(raw)


def submit(
    world: World,
    user: User,
    raw: bytes,
    *,
    from_address: str,
    recipients: list[str],
) -> SentRecord:
    """Record the submission and deliver to in-simulator recipients."""
    unique: list[str] = []
    for r in recipients:
        if r.lower() not in (u.lower() for u in unique):
            unique.append(r)
    record = SentRecord(
        sender=user.mail or user.upn,
        from_address=from_address,
        recipients=tuple(unique),
        mime=raw,
        at=world.now(),
    )
    world.sent.append((user.id, record))
    copy = _transport_copy(world, raw)
    for addr in unique:
        target = world.user_by_address(addr)
        if target is not None:
            deliver_mime(world, target, copy)
    return record


def _ensure_message_id(world: World, raw: bytes) -> bytes:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if re.search(rb"(?im)^message-id:", head):
        return raw
    mid = f"<{secrets.token_hex(12).upper()}@simulator.invalid>".encode()
    return b"Message-ID: " + mid + _eol(raw) + raw


def send_mail(ctx: Ctx) -> SimResponse:
    world, user, mb = ctx.world, ctx.u, ctx.mb
    ctype = (ctx.req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype == "text/plain":
        # §13.2: MIME sendMail; recipients from the headers; always saved to Sent Items.
        submitted = decode_base64_mime(ctx.req.body)
        fields = parse_mime(submitted)
        from_address = (
            addresses_of([fields["from_"]])[0] if fields.get("from_") else (user.mail or user.upn)
        )
        if not _may_send_as(world, user, from_address):
            raise send_as_denied()
        recipients = (
            addresses_of(fields["to"]) + addresses_of(fields["cc"]) + addresses_of(fields["bcc"])
        )
        if not recipients:
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient is not valid., A message can't be sent because it "
                "contains no recipients.",
            )
        raw = _ensure_message_id(world, submitted)
        record = submit(world, user, raw, from_address=from_address, recipients=recipients)
        _save_sent_copy(world, mb, raw, record)
        return SimResponse.empty(202)
    body = ctx.req.json()
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise bad_request("The 'message' parameter is required.", "ErrorInvalidRequest")
    for key in body:
        if key.lower() not in ("message", "savetosentitems"):
            raise bad_request(f"Unknown parameter '{key}'.", "RequestBodyRead")
    save = body.get("saveToSentItems", True)
    if isinstance(save, str):
        save = save.lower() != "false"
    fields = fields_from_json(ctx, body["message"], for_send=True)
    me = {"emailAddress": {"name": user.display_name, "address": user.mail or user.upn}}
    from_ = fields.get("from_") or me
    from_address = from_["emailAddress"]["address"]
    if not _may_send_as(world, user, from_address):
        raise send_as_denied()
    recipients = (
        addresses_of(fields.get("to", []))
        + addresses_of(fields.get("cc", []))
        + addresses_of(fields.get("bcc", []))
    )
    if not recipients:
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., A message can't be sent because it contains "
            "no recipients.",
        )
    raw = generate_mime(
        subject=fields.get("subject", ""),
        body_type=fields.get("body_type", "text"),
        body=fields.get("body", ""),
        from_=from_,
        sender=fields.get("sender") or from_,
        to=fields.get("to", []),
        cc=fields.get("cc", []),
        bcc=fields.get("bcc", []),
        reply_to=fields.get("reply_to", []),
        sent=world.now(),
        internet_message_id=fields.get("internet_message_id")
        or f"<{secrets.token_hex(12).upper()}@simulator.invalid>",
        importance=fields.get("importance", "normal"),
        attachments=fields.get("attachments", []),
        headers=fields.get("headers"),
    )
    record = submit(world, user, raw, from_address=from_address, recipients=recipients)
    if save:
        _save_sent_copy(world, mb, raw, record)
    return SimResponse.empty(202)


def _save_sent_copy(world: World, mb: Mailbox, raw: bytes, record: SentRecord) -> Message:
    fields = parse_mime(raw)
    fields["received"] = record.at
    return world.new_message(
        mb, world.folder(mb, "sentitems"), is_draft=False, is_read=True, mime=raw, **fields
    )


def send_draft(ctx: Ctx) -> SimResponse:
    world, user, mb = ctx.world, ctx.u, ctx.mb
    m = find(ctx)
    if not m.is_draft:
        raise GraphError(400, "ErrorInvalidOperation", "Only draft messages can be sent.")
    me = {"emailAddress": {"name": user.display_name, "address": user.mail or user.upn}}
    if m.from_ is None:
        m.from_ = me
    if m.sender is None:
        m.sender = m.from_
    from_address = m.from_["emailAddress"]["address"]
    if not _may_send_as(world, user, from_address):
        raise send_as_denied()
    recipients = addresses_of(m.to) + addresses_of(m.cc) + addresses_of(m.bcc)
    if not recipients:
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., A message can't be sent because it contains "
            "no recipients.",
        )
    now = world.now()
    if m.mime is None:
        m.sent = now
    raw = message_mime(m)
    submit(world, user, raw, from_address=from_address, recipients=recipients)
    # §13.3: the draft moves to Sent Items; its immutable id finds the sent copy (§17).
    m.is_draft = False
    m.mime = raw
    world.move_message(mb, m, world.folder(mb, "sentitems"))
    return SimResponse.empty(202)


# ---------------------------------------------------------------- upload sessions (§13.4)


@dataclass
class UploadSession:
    id: str
    authtoken: str
    user_id: str
    message_id: str  # the immutable id: survives moves of the draft
    name: str
    size: int
    content_type: str
    is_inline: bool
    content_id: str | None
    expires: dt.datetime
    data: bytearray = field(default_factory=bytearray)


class UploadService:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sessions: dict[str, UploadSession] = {}

    def add(self, s: UploadSession) -> None:
        with self._lock:
            self.sessions[s.id] = s

    def get(self, sid: str) -> UploadSession | None:
        with self._lock:
            return self.sessions.get(sid)

    def drop(self, sid: str) -> None:
        with self._lock:
            self.sessions.pop(sid, None)


def create_upload_session(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    body = ctx.req.json()
    item = None
    if isinstance(body, dict):
        for k, v in body.items():
            if k.lower() == "attachmentitem":
                item = v
    if not isinstance(item, dict):
        raise bad_request("AttachmentItem is required.", "ErrorInvalidRequest")
    if str(item.get("attachmentType", "file")).lower() != "file":
        raise bad_request("Only file attachments are supported.", "ErrorInvalidRequest")
    raw_size = item.get("size")
    try:
        if not isinstance(raw_size, (int, str)):
            raise TypeError(raw_size)
        size = int(raw_size)
    except (TypeError, ValueError):
        raise bad_request("AttachmentItem.size is required.", "ErrorInvalidRequest") from None
    if size < MIN_UPLOAD:
        raise GraphError(
            400,
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            "Attachment size must be greater than the minimum size.",
        )
    if size > MAX_UPLOAD:
        raise GraphError(
            400,
            "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
            "Attachment size must be less than the maximum size.",
        )
    now = ctx.world.now()
    session = UploadSession(
        id="AAMkAD" + secrets.token_urlsafe(24),
        authtoken=secrets.token_urlsafe(32),
        user_id=ctx.u.id,
        message_id=m.immutable_id,
        name=str(item.get("name") or "attachment"),
        size=size,
        content_type=str(item.get("contentType") or "application/octet-stream"),
        is_inline=bool(item.get("isInline", False)),
        content_id=item.get("contentId"),
        expires=now + dt.timedelta(minutes=ctx.config.upload_session_minutes),
    )
    ctx.services.uploads.add(session)
    url = (
        f"{ctx.base_url}/_upload/api/v2.0/Users('{ctx.u.id}@{ctx.u.tenant_id}')/Messages('"
        f"{m.immutable_id}')/AttachmentSessions('{session.id}')?authtoken={session.authtoken}"
    )
    return SimResponse.json(
        {
            "@odata.context": f"{ctx.graph_root}/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": url,
            "expirationDateTime": iso(session.expires),
            "nextExpectedRanges": ["0-"],
        },
        201,
    )


_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.I)


def _upload_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, {"Content-Type": "application/json"}, body


def upload_chunk(
    world: World,
    uploads: UploadService,
    base_url: str,
    sid: str,
    authtoken: str | None,
    method: str,
    content_range: str | None,
    data: bytes,
) -> tuple[int, dict[str, str], bytes]:
    """Handle PUT/DELETE on an uploadUrl (no Authorization header, §13.4)."""
    s = uploads.get(sid)
    if s is None or authtoken != s.authtoken:
        return _upload_error(404, "ErrorItemNotFound", "The upload session was not found.")
    if world.now() > s.expires:
        uploads.drop(sid)
        return _upload_error(404, "ErrorItemNotFound", "The upload session has expired.")
    if method == "DELETE":
        uploads.drop(sid)
        return 204, {}, b""
    m = _RANGE.match(content_range or "")
    if not m:
        return _upload_error(400, "InvalidContentRange", "The Content-Range header is invalid.")
    start, end, total = (int(g) for g in m.groups())
    if total != s.size or end < start or end - start + 1 != len(data):
        return _upload_error(400, "InvalidContentRange", "The Content-Range header is invalid.")
    if len(data) > MAX_CHUNK:
        return _upload_error(413, "RequestEntityTooLarge", "Chunks must not exceed 4 MB.")
    if start != len(s.data):
        return _upload_error(416, "invalidRange", "Uploaded fragment overlaps with existing data.")
    s.data.extend(data)
    if len(s.data) < s.size:
        payload = {
            "@odata.context": base_url
            + "/api/v2.0/$metadata#Microsoft.OutlookServices.UploadSession",
            "ExpirationDateTime": iso(s.expires),
            "NextExpectedRanges": [str(len(s.data))],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()
    with world.lock:
        mb = world.mailboxes.get(s.user_id)
        key = mb.ids.get(s.message_id) if mb else None
        if mb is None or key is None:
            uploads.drop(sid)
            return _upload_error(404, "ErrorItemNotFound", "The message was not found.")
        msg = mb.messages[key]
        att = Attachment(
            id="AAMkAG" + secrets.token_urlsafe(24),
            name=s.name,
            content_type=s.content_type,
            data=bytes(s.data),
            is_inline=s.is_inline,
            content_id=s.content_id,
            modified=world.now(),
        )
        msg.attachments.append(att)
        msg.mime = None
        world.touch(mb, msg)
    uploads.drop(sid)
    location = (
        f"{base_url}/api/v2.0/Users('{s.user_id}')/Messages('{s.message_id}')/Attachments('"
        f"{att.id}')"
    )
    return 201, {"Location": location}, b""
