"""Saving and loading the simulated world as JSON in the state directory.

Owns: the on-disk format (``state.json``) so a restarted demo keeps its tenants, users
and mail. Change logs and delta rounds are not saved: after a restart every old delta
token answers 410 (the sync state is gone, §16.5), which is what a client must cope with
anyway. Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from .model import (
    App,
    Attachment,
    Folder,
    Mailbox,
    Message,
    SentRecord,
    Tenant,
    User,
    World,
    iso,
    parse_iso,
)

FORMAT = 1


def _b(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _ub(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _message(m: Message) -> dict[str, Any]:
    return {
        "key": m.key,
        "folder_id": m.folder_id,
        "rest_id": m.rest_id,
        "immutable_id": m.immutable_id,
        "created": iso(m.created),
        "modified": iso(m.modified),
        "received": iso(m.received),
        "sent": iso(m.sent),
        "change_key": m.change_key,
        "internet_message_id": m.internet_message_id,
        "conversation_id": m.conversation_id,
        "subject": m.subject,
        "body_type": m.body_type,
        "body": m.body,
        "sender": m.sender,
        "from": m.from_,
        "to": m.to,
        "cc": m.cc,
        "bcc": m.bcc,
        "reply_to": m.reply_to,
        "importance": m.importance,
        "categories": m.categories,
        "flag": m.flag,
        "is_read": m.is_read,
        "is_draft": m.is_draft,
        "inference": m.inference,
        "read_receipt": m.read_receipt,
        "delivery_receipt": m.delivery_receipt,
        "headers": m.headers,
        "ext": [[list(k), v[0], v[1]] for k, v in m.ext.items()],
        "attachments": [
            {
                "id": a.id,
                "name": a.name,
                "content_type": a.content_type,
                "data": _b(a.data),
                "is_inline": a.is_inline,
                "content_id": a.content_id,
                "modified": iso(a.modified),
            }
            for a in m.attachments
        ],
        "mime": _b(m.mime),
    }


def save_world(world: World, path: Path) -> None:
    data: dict[str, Any] = {
        "format": FORMAT,
        "seq": world.seq,
        "next_key": world._next_key,
        "tenants": [{"id": t.id, "domain": t.domain} for t in world.tenants.values()],
        "apps": [
            {
                "client_id": a.client_id,
                "tenant_id": a.tenant_id,
                "roles": list(a.roles),
                "secret": a.secret,
                "secret_expired": a.secret_expired,
                "certificate_pem": _b(a.certificate_pem),
                "thumbprint_sha1": _b(a.thumbprint_sha1),
                "thumbprint_sha256": _b(a.thumbprint_sha256),
                "service_principal_id": a.service_principal_id,
            }
            for a in world.apps.values()
        ],
        "users": [
            {
                "id": u.id,
                "tenant_id": u.tenant_id,
                "upn": u.upn,
                "mail": u.mail,
                "display_name": u.display_name,
                "shared": u.shared,
                "has_mailbox": u.has_mailbox,
                "proxy_addresses": u.proxy_addresses,
            }
            for u in world.users.values()
        ],
        "mailboxes": [
            {
                "user_id": mb.user_id,
                "well_known": mb.well_known,
                "send_as": sorted(mb.send_as),
                "folders": [
                    {
                        "id": f.id,
                        "display_name": f.display_name,
                        "parent_id": f.parent_id,
                        "well_known": f.well_known,
                        "is_hidden": f.is_hidden,
                        "search": f.search,
                        "messages": list(f.messages),
                    }
                    for f in mb.folders.values()
                ],
                "messages": [_message(m) for m in mb.messages.values()],
            }
            for mb in world.mailboxes.values()
        ],
        "sent": [
            {
                "owner": owner,
                "sender": r.sender,
                "from_address": r.from_address,
                "recipients": list(r.recipients),
                "mime": _b(r.mime),
                "at": iso(r.at),
            }
            for owner, r in world.sent
        ],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _dt(text: str | None) -> Any:
    return None if text is None else parse_iso(text)


def load_world(world: World, path: Path) -> None:
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported simulator state format in {path}")
    with world.lock:
        world.seq = int(data["seq"])
        world._next_key = int(data["next_key"])
        for t in data["tenants"]:
            world.tenants[t["id"]] = Tenant(t["id"], t["domain"])
        for a in data["apps"]:
            world.apps[a["client_id"]] = App(
                client_id=a["client_id"],
                tenant_id=a["tenant_id"],
                roles=tuple(a["roles"]),
                secret=a["secret"],
                secret_expired=a["secret_expired"],
                certificate_pem=_ub(a["certificate_pem"]),
                thumbprint_sha1=_ub(a["thumbprint_sha1"]),
                thumbprint_sha256=_ub(a["thumbprint_sha256"]),
                service_principal_id=a["service_principal_id"],
            )
        for u in data["users"]:
            world.users[u["id"]] = User(**u)
        for mbd in data["mailboxes"]:
            mb = Mailbox(user_id=mbd["user_id"], well_known=dict(mbd["well_known"]))
            mb.send_as = set(mbd["send_as"])
            mb.folder_log_floor = world.seq
            for fd in mbd["folders"]:
                f = Folder(
                    id=fd["id"],
                    mailbox_id=mb.user_id,
                    display_name=fd["display_name"],
                    parent_id=fd["parent_id"],
                    well_known=fd["well_known"],
                    is_hidden=fd["is_hidden"],
                    search=fd["search"],
                )
                f.messages = {int(k): None for k in fd["messages"]}
                f.log_floor = world.seq
                mb.folders[f.id] = f
            for md in mbd["messages"]:
                m = Message(
                    key=md["key"],
                    mailbox_id=mb.user_id,
                    folder_id=md["folder_id"],
                    rest_id=md["rest_id"],
                    immutable_id=md["immutable_id"],
                    created=_dt(md["created"]),
                    modified=_dt(md["modified"]),
                    received=_dt(md["received"]),
                    sent=_dt(md["sent"]),
                    change_key=md["change_key"],
                    internet_message_id=md["internet_message_id"],
                    conversation_id=md["conversation_id"],
                    subject=md["subject"],
                    body_type=md["body_type"],
                    body=md["body"],
                    sender=md["sender"],
                    from_=md["from"],
                    to=md["to"],
                    cc=md["cc"],
                    bcc=md["bcc"],
                    reply_to=md["reply_to"],
                    importance=md["importance"],
                    categories=md["categories"],
                    flag=md["flag"],
                    is_read=md["is_read"],
                    is_draft=md["is_draft"],
                    inference=md["inference"],
                    read_receipt=md["read_receipt"],
                    delivery_receipt=md["delivery_receipt"],
                    headers=md["headers"],
                    ext={tuple(k): (n, v) for k, n, v in md["ext"]},
                    attachments=[
                        Attachment(
                            id=a["id"],
                            name=a["name"],
                            content_type=a["content_type"],
                            data=_ub(a["data"]) or b"",
                            is_inline=a["is_inline"],
                            content_id=a["content_id"],
                            modified=_dt(a["modified"]),
                        )
                        for a in md["attachments"]
                    ],
                    mime=_ub(md["mime"]),
                )
                mb.messages[m.key] = m
                mb.ids[m.rest_id] = m.key
                mb.ids[m.immutable_id] = m.key
            world.mailboxes[mb.user_id] = mb
        for s in data["sent"]:
            world.sent.append(
                (
                    s["owner"],
                    SentRecord(
                        sender=s["sender"],
                        from_address=s["from_address"],
                        recipients=tuple(s["recipients"]),
                        mime=_ub(s["mime"]) or b"",
                        at=_dt(s["at"]),
                    ),
                )
            )
