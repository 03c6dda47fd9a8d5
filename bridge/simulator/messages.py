"""Message handlers: list, get, ``$value``, create (JSON and MIME), update, move, copy,
delete, attachments read side, translateExchangeIds (§7-§12, §14, §15, §17).

Owns: request-body validation for messages and the draft/non-draft rules of §11/§12.
Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from .context import Ctx, SimResponse
from .errors import GraphError, bad_request, item_not_found
from .mimeutil import decode_base64_mime, generate_mime, parse_mime
from .model import (
    TAG_DELIVERY_TIME,
    TAG_MESSAGE_FLAGS,
    TAG_SUBMIT_TIME,
    Attachment,
    Folder,
    Mailbox,
    Message,
    World,
    parse_ext_id,
    parse_iso,
)
from .odata import (
    apply_order,
    check_inefficient,
    matches,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
)
from .paging import paged
from .render import render_attachment, render_message

MAX_INLINE_ATTACHMENT = 3 * 1024 * 1024  # §11/§13.3: attachments POSTed inline < 3 MB

READ_ONLY = {
    "id",
    "@odata.etag",
    "changekey",
    "parentfolderid",
    "createddatetime",
    "lastmodifieddatetime",
    "isdraft",
    "hasattachments",
    "bodypreview",
    "weblink",
    "conversationid",
    "conversationindex",
    "uniquebody",
}
IGNORED_ON_CREATE = {"receiveddatetime", "sentdatetime", "@odata.type"}
ALWAYS_UPDATABLE = {
    "isread",
    "flag",
    "categories",
    "importance",
    "inferenceclassification",
    "isdeliveryreceiptrequested",
    "isreadreceiptrequested",
    "singlevalueextendedproperties",
    "multivalueextendedproperties",
    "torecipients",
    "ccrecipients",
    "bccrecipients",
    "from",
    "sender",
}
DRAFT_ONLY = {"subject", "body", "internetmessageid", "replyto"}
CREATE_ONLY = {"internetmessageheaders", "attachments"}


def _ctx_url(ctx: Ctx, suffix: str = "messages/$entity") -> str:
    return f"{ctx.graph_root}/$metadata#users('{ctx.u.id}')/{suffix}"


def find(ctx: Ctx) -> Message:
    m = ctx.world.find_message(ctx.mb, ctx.params["m"])
    if "f" in ctx.params:
        # /mailFolders/{f}/messages/{m}: the message must be in that folder.
        f = ctx.world.folder(ctx.mb, ctx.params["f"])
        if m.folder_id != f.id:
            raise item_not_found()
    return m


# ---------------------------------------------------------------- reads


def list_messages(ctx: Ctx) -> SimResponse:
    world, mb = ctx.world, ctx.mb
    if "f" in ctx.params:
        folder = world.folder(mb, ctx.params["f"])
        if folder.search is not None:
            items = _search_folder_items(world, mb, folder)
        else:
            items = [mb.messages[k] for k in folder.messages]
    else:
        # Mailbox-wide list: every folder of the IPM subtree.
        items = [
            m for m in mb.messages.values() if world.in_ipm_subtree(mb, mb.folders[m.folder_id])
        ]
    clauses = parse_filter(ctx.req.query.get("$filter"))
    order = parse_orderby(ctx.req.query.get("$orderby"))
    check_inefficient(clauses, order)
    items = apply_order([m for m in items if matches(m, clauses)], order)
    select = parse_select(ctx.req.query)
    expand = parse_expand(ctx.req.query.get("$expand"))
    rendered = [render_message(ctx, m, select, expand) for m in items]
    count = ctx.req.query.get("$count", "").lower() == "true"
    suffix = "messages" if select is None else f"messages({','.join(select)})"
    body = paged(ctx, rendered, _ctx_url(ctx, suffix), count=count)
    return SimResponse.json(body, headers=ctx.response_headers)


def _search_folder_items(world: World, mb: Mailbox, folder: Folder) -> list[Message]:
    # A search folder shows messages of its source folders whose subject contains the
    # quoted text of a ``contains(subject, '...')`` filterQuery; other queries match all.
    import re

    assert folder.search is not None
    m = re.search(
        r"contains\(\s*subject\s*,\s*'([^']*)'\s*\)", folder.search.get("filterQuery", ""), re.I
    )
    needle = m.group(1).lower() if m else ""
    out = []
    for fid in folder.search.get("sourceFolderIds", []):
        src = mb.folders.get(fid) or mb.folders.get(mb.well_known.get(fid.lower(), ""))
        if src is None:
            continue
        for key in src.messages:
            msg = mb.messages[key]
            if needle in msg.subject.lower():
                out.append(msg)
    return out


def get_message(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    select = parse_select(ctx.req.query)
    expand = parse_expand(ctx.req.query.get("$expand"))
    body: dict[str, Any] = {"@odata.context": _ctx_url(ctx)}
    body.update(render_message(ctx, m, select, expand))
    return SimResponse.json(body, headers=ctx.response_headers)


def message_mime(m: Message) -> bytes:
    """The bytes ``$value`` serves (§8)."""
    if m.mime is not None:
        return m.mime
    return generate_mime(
        subject=m.subject,
        body_type=m.body_type,
        body=m.body,
        from_=m.from_,
        sender=m.sender,
        to=m.to,
        cc=m.cc,
        bcc=m.bcc if m.is_draft else [],
        reply_to=m.reply_to,
        sent=m.sent,
        internet_message_id=m.internet_message_id,
        importance=m.importance,
        attachments=m.attachments,
        headers=m.headers,
    )


def get_value(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    return SimResponse(200, message_mime(m), {"Content-Type": "text/plain"})


# ---------------------------------------------------------------- body parsing


def recipients(value: Any, prop: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"Invalid value for property '{prop}'.", "RequestBodyRead")
    return [recipient(v, prop) for v in value]


def recipient(value: Any, prop: str) -> dict[str, Any]:
    ea = value.get("emailAddress") if isinstance(value, dict) else None
    if not isinstance(ea, dict) or not isinstance(ea.get("address", ""), str):
        raise bad_request(f"Invalid value for property '{prop}'.", "RequestBodyRead")
    address = ea.get("address") or ""
    if not address:
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
    return {"emailAddress": {"name": ea.get("name") or address, "address": address}}


def _flag(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("Invalid value for property 'flag'.", "RequestBodyRead")
    status = str(value.get("flagStatus", "notFlagged"))
    canon = {"notflagged": "notFlagged", "flagged": "flagged", "complete": "complete"}.get(
        status.lower()
    )
    if canon is None:
        raise bad_request(f"Invalid flagStatus '{status}'.", "RequestBodyRead")
    out: dict[str, Any] = {"flagStatus": canon}
    for k in ("startDateTime", "dueDateTime", "completedDateTime"):
        if value.get(k) is not None:
            out[k] = value[k]
    if "dueDateTime" in out and "startDateTime" not in out:
        raise bad_request("dueDateTime requires startDateTime.", "ErrorInvalidRequest")
    return out


def _list(value: Any, prop: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"Invalid value for property '{prop}'.", "RequestBodyRead")
    return value


def _categories(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise bad_request("Invalid value for property 'categories'.", "RequestBodyRead")
    return list(value)


def _importance(value: Any) -> str:
    v = str(value).lower()
    if v not in ("low", "normal", "high"):
        raise bad_request(f"Invalid importance '{value}'.", "RequestBodyRead")
    return v


def _body(value: Any) -> tuple[str, str]:
    if not isinstance(value, dict):
        raise bad_request("Invalid value for property 'body'.", "RequestBodyRead")
    ctype = str(value.get("contentType", "text")).lower()
    if ctype not in ("text", "html"):
        raise bad_request(f"Invalid contentType '{ctype}'.", "RequestBodyRead")
    return ctype, str(value.get("content") or "")


def _ext_props(value: Any) -> list[tuple[tuple[str, ...], str, str]]:
    if not isinstance(value, list):
        raise bad_request("Invalid singleValueExtendedProperties.", "RequestBodyRead")
    out = []
    for item in value:
        if not isinstance(item, dict) or "id" not in item or "value" not in item:
            raise bad_request("Invalid singleValueExtendedProperties.", "RequestBodyRead")
        key, norm = parse_ext_id(str(item["id"]))
        val = item["value"]
        if not isinstance(val, str):
            # §10.1: values are always JSON strings.
            raise bad_request(
                "Cannot convert the literal to the expected type 'Edm.String'.", "RequestBodyRead"
            )
        ptype = key[1]
        try:
            if ptype in ("integer", "long", "short"):
                int(val)
            elif ptype == "systemtime":
                parse_iso(val)
            elif ptype == "boolean" and val.lower() not in ("true", "false"):
                raise ValueError(val)
        except ValueError:
            raise GraphError(
                400,
                "ErrorInvalidExtendedPropertyValue",
                f"The extended property value '{val}' is invalid for type {ptype}.",
            ) from None
        out.append((key, norm, val))
    return out


def _unknown(key: str) -> GraphError:
    return bad_request(
        f"The property '{key}' does not exist on type 'microsoft.graph.message'. Make sure to "
        "only use property names that are defined by the type or mark the type as open type.",
        "RequestBodyRead",
    )


def fields_from_json(ctx: Ctx, body: Any, *, for_send: bool = False) -> dict[str, Any]:
    """Validate a create body (§11) → keyword arguments for ``World.new_message``."""
    if not isinstance(body, dict):
        raise bad_request("Invalid request body.", "RequestBodyRead")
    f: dict[str, Any] = {"is_draft": True, "is_read": True}
    ext: dict[tuple[str, ...], tuple[str, str]] = {}
    explicit_read: bool | None = None
    flags: int | None = None
    for key, value in body.items():
        k = key.lower()
        if k in READ_ONLY:
            raise GraphError(400, "UnableToDeserializePostBody", "were unable to deserialize ")
        if k in IGNORED_ON_CREATE:
            continue
        match k:
            case "subject":
                f["subject"] = str(value or "")
            case "body":
                f["body_type"], f["body"] = _body(value)
            case "torecipients":
                f["to"] = recipients(value, key)
            case "ccrecipients":
                f["cc"] = recipients(value, key)
            case "bccrecipients":
                f["bcc"] = recipients(value, key)
            case "replyto":
                f["reply_to"] = recipients(value, key)
            case "from":
                f["from_"] = recipient(value, key) if value else None
            case "sender":
                f["sender"] = recipient(value, key) if value else None
            case "importance":
                f["importance"] = _importance(value)
            case "internetmessageid":
                f["internet_message_id"] = str(value)
            case "categories":
                f["categories"] = _categories(value)
            case "flag":
                f["flag"] = _flag(value)
            case "isread":
                explicit_read = bool(value)
            case "inferenceclassification":
                f["inference"] = str(value).lower()
            case "isdeliveryreceiptrequested":
                f["delivery_receipt"] = value
            case "isreadreceiptrequested":
                f["read_receipt"] = bool(value)
            case "internetmessageheaders":
                headers = []
                for h in _list(value, key):
                    if not isinstance(h, dict):
                        raise bad_request(f"Invalid value for property '{key}'.", "RequestBodyRead")
                    name = str(h.get("name", ""))
                    if not name.lower().startswith("x-"):
                        # §11: only x- headers may be set.
                        raise GraphError(
                            400,
                            "InvalidInternetMessageHeader",
                            f"The internet message header name '{name}' should start with 'x-' "
                            "or 'X-'.",
                        )
                    headers.append({"name": name, "value": str(h.get("value", ""))})
                f["headers"] = headers
            case "attachments":
                f["attachments"] = [attachment_from_json(a) for a in _list(value, key)]
            case "singlevalueextendedproperties":
                for pkey, norm, val in _ext_props(value):
                    if pkey == TAG_MESSAGE_FLAGS:
                        flags = int(val)
                    elif pkey == TAG_DELIVERY_TIME:
                        f["received"] = parse_iso(val)
                    elif pkey == TAG_SUBMIT_TIME:
                        f["sent"] = parse_iso(val)
                    else:
                        ext[pkey] = (norm, val)
            case "multivalueextendedproperties":
                pass  # accepted and not modelled (documented in README)
            case _:
                raise _unknown(key)
    if flags is not None and not for_send:
        # §11/§12: PidTagMessageFlags in the creating POST decides draft/read.
        f["is_draft"] = bool(flags & 0x8)
        f["is_read"] = bool(flags & 0x1)
    if explicit_read is not None:
        f["is_read"] = explicit_read
    f["ext"] = ext
    return f


def attachment_from_json(value: Any) -> Attachment:
    if not isinstance(value, dict):
        raise bad_request("Invalid attachment.", "RequestBodyRead")
    otype = str(value.get("@odata.type", "#microsoft.graph.fileAttachment")).lower()
    if otype not in ("#microsoft.graph.fileattachment", "microsoft.graph.fileattachment"):
        raise bad_request(f"Unsupported attachment type {otype}.", "ErrorInvalidRequest")
    try:
        data = base64.b64decode(str(value.get("contentBytes", "")), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("Invalid contentBytes.", "RequestBodyRead") from None
    if len(data) > MAX_INLINE_ATTACHMENT:
        raise GraphError(
            413, "RequestEntityTooLarge", "The attachment exceeds the maximum allowed size."
        )
    return Attachment(
        id="AAMkAG" + secrets.token_urlsafe(24),
        name=str(value.get("name") or "attachment"),
        content_type=str(value.get("contentType") or "application/octet-stream"),
        data=data,
        is_inline=bool(value.get("isInline", False)),
        content_id=value.get("contentId"),
    )


# ---------------------------------------------------------------- writes


def _is_mime_body(ctx: Ctx) -> bool:
    ctype = (ctx.req.header("content-type") or "").split(";")[0].strip().lower()
    return ctype == "text/plain"


def create_message(ctx: Ctx) -> SimResponse:
    world, mb = ctx.world, ctx.mb
    if _is_mime_body(ctx):
        if "f" in ctx.params:
            # §12.1: MIME create works only on /users/{u}/messages (failure mode guessed).
            raise bad_request(
                "MIME content is only supported when creating a message in the user's messages "
                "collection.",
                "ErrorInvalidRequest",
            )
        raw = decode_base64_mime(ctx.req.body)
        fields = parse_mime(raw)
        fields["received"] = world.now()
        m = world.new_message(
            mb, world.folder(mb, "drafts"), is_draft=True, is_read=True, mime=raw, **fields
        )
    else:
        body = ctx.req.json()
        fields = fields_from_json(ctx, body)
        folder = (
            world.folder(mb, ctx.params["f"]) if "f" in ctx.params else world.folder(mb, "drafts")
        )
        for a in fields.get("attachments", []):
            a.modified = world.now()
        m = world.new_message(mb, folder, **fields)
        if m.is_draft:
            m.sent = m.created
    out: dict[str, Any] = {"@odata.context": _ctx_url(ctx)}
    out.update(render_message(ctx, m))
    return SimResponse.json(out, 201, headers=ctx.response_headers)


def patch_message(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    body = ctx.req.json()
    if not isinstance(body, dict):
        raise bad_request("Invalid request body.", "RequestBodyRead")
    content_changed = False
    for key, value in body.items():
        k = key.lower()
        if k == "isdraft":
            # §12: isDraft is read-only after creation (we answer 400, see README).
            raise GraphError(
                400,
                "ErrorInvalidProperty",
                "The property 'IsDraft' is read-only and cannot be set.",
            )
        if k in READ_ONLY or k in CREATE_ONLY or k in ("receiveddatetime", "sentdatetime"):
            raise GraphError(
                400, "ErrorInvalidProperty", f"The property '{key}' is read-only and cannot be set."
            )
        if k in DRAFT_ONLY and not m.is_draft:
            raise GraphError(
                400,
                "ErrorInvalidPropertyUpdateSentMessage",
                "Update operation is not supported on sent items for this property.",
            )
        if k not in ALWAYS_UPDATABLE and k not in DRAFT_ONLY and k != "@odata.type":
            raise _unknown(key)
        match k:
            case "isread":
                m.is_read = bool(value)
            case "flag":
                m.flag = _flag(value)
            case "categories":
                m.categories = _categories(value)
            case "importance":
                m.importance = _importance(value)
                content_changed = True
            case "inferenceclassification":
                m.inference = str(value).lower()
            case "isdeliveryreceiptrequested":
                m.delivery_receipt = value
            case "isreadreceiptrequested":
                m.read_receipt = bool(value)
            case "singlevalueextendedproperties":
                for pkey, norm, val in _ext_props(value):
                    if pkey in (TAG_MESSAGE_FLAGS, TAG_DELIVERY_TIME, TAG_SUBMIT_TIME):
                        # §10.4: honoured only in the creating POST; later writes are no-ops.
                        continue
                    m.ext[pkey] = (norm, val)
            case "multivalueextendedproperties":
                pass
            case "torecipients":
                m.to = recipients(value, key)
                content_changed = True
            case "ccrecipients":
                m.cc = recipients(value, key)
                content_changed = True
            case "bccrecipients":
                m.bcc = recipients(value, key)
                content_changed = True
            case "from":
                m.from_ = recipient(value, key) if value else None
                content_changed = True
            case "sender":
                m.sender = recipient(value, key) if value else None
                content_changed = True
            case "subject":
                m.subject = str(value or "")
                content_changed = True
            case "body":
                m.body_type, m.body = _body(value)
                content_changed = True
            case "internetmessageid":
                m.internet_message_id = str(value)
                content_changed = True
            case "replyto":
                m.reply_to = recipients(value, key)
                content_changed = True
    if content_changed:
        m.mime = None  # Exchange regenerates MIME from the edited item.
    ctx.world.touch(ctx.mb, m)
    out: dict[str, Any] = {"@odata.context": _ctx_url(ctx)}
    out.update(render_message(ctx, m))
    return SimResponse.json(out, headers=ctx.response_headers)


def _destination(ctx: Ctx) -> Folder:
    body = ctx.req.json()
    dest = body.get("destinationId") if isinstance(body, dict) else None
    if not isinstance(dest, str) or not dest:
        raise bad_request("The destinationId parameter is required.", "ErrorInvalidRequest")
    try:
        return ctx.world.folder(ctx.mb, dest)
    except GraphError:
        raise GraphError(
            404, "ErrorItemNotFound", "The specified destination folder was not found."
        ) from None


def move_message(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    dest = _destination(ctx)
    ctx.world.move_message(ctx.mb, m, dest)
    out: dict[str, Any] = {"@odata.context": f"{ctx.graph_root}/$metadata#message"}
    out.update(render_message(ctx, m, with_type=True))
    return SimResponse.json(out, 201, headers=ctx.response_headers)


def copy_message(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    dest = _destination(ctx)
    new = ctx.world.copy_message(ctx.mb, m, dest)
    out: dict[str, Any] = {"@odata.context": f"{ctx.graph_root}/$metadata#message"}
    out.update(render_message(ctx, new, with_type=True))
    return SimResponse.json(out, 201, headers=ctx.response_headers)


def soft_delete(world: World, mb: Mailbox, m: Message) -> None:
    """§14: DELETE is a soft delete into Recoverable Items\\Deletions."""
    deletions = world.folder(mb, "recoverableitemsdeletions")
    if m.folder_id == deletions.id:
        raise GraphError(500, "ErrorCannotDeleteObject", "Object cannot be deleted.")
    world.move_message(mb, m, deletions)


def delete_message(ctx: Ctx) -> SimResponse:
    soft_delete(ctx.world, ctx.mb, find(ctx))
    return SimResponse.empty(204)


def permanent_delete(ctx: Ctx) -> SimResponse:
    ctx.world.remove_message(ctx.mb, find(ctx))
    return SimResponse.empty(204)


# ---------------------------------------------------------------- attachments (read side)


def list_attachments(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    select = parse_select(ctx.req.query)
    items = []
    for a in m.attachments:
        full = render_attachment(a, with_bytes=True)
        if select is not None:
            wanted = {s.lower() for s in select} | {"id", "@odata.type"}
            full = {k: v for k, v in full.items() if k.lower() in wanted}
        items.append(full)
    return SimResponse.json(
        {"@odata.context": _ctx_url(ctx, "messages('…')/attachments"), "value": items}
    )


def _attachment(ctx: Ctx) -> tuple[Message, Attachment]:
    m = find(ctx)
    for a in m.attachments:
        if a.id == ctx.params["a"]:
            return m, a
    raise item_not_found()


def get_attachment(ctx: Ctx) -> SimResponse:
    _, a = _attachment(ctx)
    out: dict[str, Any] = {"@odata.context": _ctx_url(ctx, "attachments/$entity")}
    out.update(render_attachment(a, with_bytes=True))
    return SimResponse.json(out)


def get_attachment_value(ctx: Ctx) -> SimResponse:
    _, a = _attachment(ctx)
    return SimResponse(200, a.data, {"Content-Type": a.content_type})


def delete_attachment(ctx: Ctx) -> SimResponse:
    m, a = _attachment(ctx)
    m.attachments.remove(a)
    m.mime = None
    ctx.world.touch(ctx.mb, m)
    return SimResponse.empty(204)


def add_attachment(ctx: Ctx) -> SimResponse:
    m = find(ctx)
    a = attachment_from_json(ctx.req.json())
    a.modified = ctx.world.now()
    m.attachments.append(a)
    m.mime = None
    ctx.world.touch(ctx.mb, m)
    out: dict[str, Any] = {"@odata.context": _ctx_url(ctx, "attachments/$entity")}
    out.update(render_attachment(a, with_bytes=True))
    return SimResponse.json(out, 201)


# ---------------------------------------------------------------- §17


def translate_ids(ctx: Ctx) -> SimResponse:
    body = ctx.req.json()
    if not isinstance(body, dict) or not isinstance(body.get("inputIds"), list):
        raise bad_request("inputIds is required.", "ErrorInvalidRequest")
    ids = body["inputIds"]
    if len(ids) > 1000:
        raise bad_request("Too many ids (max 1000).", "ErrorInvalidRequest")
    source = str(body.get("sourceIdType", "")).lower()
    target = str(body.get("targetIdType", "")).lower()
    if source not in ("restid", "restimmutableentryid") or target not in (
        "restid",
        "restimmutableentryid",
    ):
        raise bad_request(
            "Only restId and restImmutableEntryId are supported by the simulator.",
            "ErrorInvalidRequest",
        )
    out = []
    for raw in ids:
        key = ctx.mb.ids.get(str(raw))
        if key is None:
            continue
        m = ctx.mb.messages[key]
        out.append(
            {
                "sourceId": raw,
                "targetId": m.immutable_id if target == "restimmutableentryid" else m.rest_id,
            }
        )
    return SimResponse.json(
        {
            "@odata.context": ctx.graph_root
            + "/$metadata#Collection(microsoft.graph.convertIdResult)",
            "value": out,
        }
    )
