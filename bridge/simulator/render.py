"""Graph JSON for messages, folders and attachments (§6.1, §7.1, §10.2, §15).

Owns: property sets, ``$select`` projection, body content-type preference, and the
computed MAPI properties readable through ``$expand``. Must not import anything from
``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from .context import Ctx
from .mimeutil import html_to_text, text_to_html
from .model import (
    TAG_DELIVERY_TIME,
    TAG_FLAG_STATUS,
    TAG_MESSAGE_FLAGS,
    TAG_MESSAGE_SIZE,
    TAG_SUBMIT_TIME,
    Attachment,
    ExtKey,
    Folder,
    Mailbox,
    Message,
    World,
    iso,
)
from .odata import Expand

DEFAULT_MESSAGE_PROPS = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)
SELECT_ONLY_PROPS = ("uniqueBody", "internetMessageHeaders")
ALL_MESSAGE_PROPS = {p.lower(): p for p in DEFAULT_MESSAGE_PROPS + SELECT_ONLY_PROPS + ("id",)}


def _body(ctx: Ctx, m: Message) -> dict[str, str]:
    wanted = ctx.prefer.get("outlook.body-content-type", "").lower()
    if wanted == "text":
        ctx.response_headers["Preference-Applied"] = 'outlook.body-content-type="text"'
        content = html_to_text(m.body) if m.body_type == "html" else m.body
        return {"contentType": "text", "content": content}
    if wanted == "html":
        ctx.response_headers["Preference-Applied"] = 'outlook.body-content-type="html"'
    # HTML is the default body format; a text body is served wrapped in HTML.
    content = m.body if m.body_type == "html" else text_to_html(m.body)
    return {"contentType": "html", "content": content}


def _preview(m: Message) -> str:
    text = html_to_text(m.body) if m.body_type == "html" else m.body
    return " ".join(text.split())[:255]


def message_prop(ctx: Ctx, m: Message, prop: str) -> Any:
    mb = ctx.world.mailbox(m.mailbox_id)
    match prop:
        case "createdDateTime":
            return iso(m.created)
        case "lastModifiedDateTime":
            return iso(m.modified)
        case "changeKey":
            return m.change_key
        case "categories":
            return list(m.categories)
        case "receivedDateTime":
            return iso(m.received)
        case "sentDateTime":
            return iso(m.sent)
        case "hasAttachments":
            return m.has_attachments
        case "internetMessageId":
            return m.internet_message_id
        case "subject":
            return m.subject
        case "bodyPreview":
            return _preview(m)
        case "importance":
            return m.importance
        case "parentFolderId":
            return mb.folders[m.folder_id].id
        case "conversationId":
            return m.conversation_id
        case "conversationIndex":
            return base64.b64encode(m.conversation_id.encode()[:22]).decode()
        case "isDeliveryReceiptRequested":
            return m.delivery_receipt
        case "isReadReceiptRequested":
            return m.read_receipt
        case "isRead":
            return m.is_read
        case "isDraft":
            return m.is_draft
        case "webLink":
            return (
                "https://outlook.office365.com/owa/?ItemID="
                + quote(m.rest_id, safe="")
                + "&exvsurl=1&viewmodel=ReadMessageItem"
            )
        case "inferenceClassification":
            return m.inference
        case "body" | "uniqueBody":
            return _body(ctx, m)
        case "sender":
            return m.sender
        case "from":
            return m.from_
        case "toRecipients":
            return m.to
        case "ccRecipients":
            return m.cc
        case "bccRecipients":
            return m.bcc
        case "replyTo":
            return m.reply_to
        case "flag":
            return dict(m.flag)
        case "internetMessageHeaders":
            # §7.1: only with $select; absent for drafts.
            return None if m.is_draft else list(m.headers)
    return None


def render_message(
    ctx: Ctx,
    m: Message,
    select: list[str] | None = None,
    expand: Expand | None = None,
    *,
    with_type: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if with_type:
        out["@odata.type"] = "#microsoft.graph.message"
    out["@odata.etag"] = f'W/"{m.change_key}"'
    out["id"] = ctx.ident(m)
    props: list[str]
    if select is None:
        props = list(DEFAULT_MESSAGE_PROPS)
    else:
        props = []
        for s in select:
            canon = ALL_MESSAGE_PROPS.get(s.lower())
            if canon and canon != "id" and canon not in props:
                props.append(canon)
    for p in props:
        value = message_prop(ctx, m, p)
        if p == "internetMessageHeaders" and value is None:
            continue
        out[p] = value
    if expand and expand.ext:
        out["singleValueExtendedProperties@odata.context"] = (
            f"{ctx.graph_root}/$metadata#users('{m.mailbox_id}')/messages('"
            f"{quote(ctx.ident(m), safe='')}')/singleValueExtendedProperties"
        )
        out["singleValueExtendedProperties"] = ext_values(m, expand.ext, ctx.world)
    if expand and expand.attachments:
        out["attachments"] = [render_attachment(a, with_bytes=True) for a in m.attachments]
    return out


def mime_size(m: Message) -> int:
    if m.mime is not None:
        return len(m.mime)
    return len(m.body.encode()) + sum(len(a.data) for a in m.attachments) + 1024


def computed_ext(m: Message, key: ExtKey) -> tuple[str, str] | None:
    """MAPI properties Exchange derives from the item itself (§10.4)."""
    if key == TAG_MESSAGE_FLAGS:
        flags = (0x1 if m.is_read else 0) | (0x8 if m.is_draft else 0)
        flags |= 0x10 if m.has_attachments else 0
        return "Integer 0xe07", str(flags)
    if key == TAG_MESSAGE_SIZE:
        return "Integer 0xe08", str(mime_size(m))
    if key == TAG_DELIVERY_TIME:
        return "SystemTime 0xe06", iso(m.received) or ""
    if key == TAG_SUBMIT_TIME and m.sent is not None:
        return "SystemTime 0x39", iso(m.sent) or ""
    if key == TAG_FLAG_STATUS:
        status = {"notFlagged": 0, "complete": 1, "flagged": 2}.get(
            m.flag.get("flagStatus", "notFlagged"), 0
        )
        if status:
            return "Integer 0x1090", str(status)
        return None
    return None


def ext_values(m: Message, keys: tuple[ExtKey, ...], world: World) -> list[dict[str, str]]:
    out = []
    for key in keys:
        found = computed_ext(m, key) or m.ext.get(key)
        if found is not None:
            out.append({"id": found[0], "value": found[1]})
    return out


def render_folder(
    world: World, mb: Mailbox, f: Folder, select: list[str] | None = None
) -> dict[str, Any]:
    kids = [c for c in mb.folders.values() if c.parent_id == f.id]
    msgs = [mb.messages[k] for k in f.messages]
    full: dict[str, Any] = {
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": f.parent_id,
        "childFolderCount": len(kids),
        "unreadItemCount": sum(1 for m in msgs if not m.is_read),
        "totalItemCount": len(msgs),
        "isHidden": f.is_hidden,
    }
    if f.search is not None:
        full = {"@odata.type": "#microsoft.graph.mailSearchFolder", **full}
        full.update(
            {
                "isSupported": True,
                "includeNestedFolders": bool(f.search.get("includeNestedFolders", False)),
                "sourceFolderIds": list(f.search.get("sourceFolderIds", [])),
                "filterQuery": f.search.get("filterQuery", ""),
            }
        )
    if select is None:
        return full
    wanted = {s.lower() for s in select} | {"id", "@odata.type"}
    return {k: v for k, v in full.items() if k.lower() in wanted}


def render_attachment(a: Attachment, *, with_bytes: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": a.content_type,
        "id": a.id,
        "lastModifiedDateTime": iso(a.modified),
        "name": a.name,
        "contentType": a.content_type,
        "size": len(a.data),
        "isInline": a.is_inline,
        "contentId": a.content_id,
        "contentLocation": None,
    }
    if with_bytes:
        out["contentBytes"] = base64.b64encode(a.data).decode()
    return out
