"""Graph JSON → the value types of ``bridge.backend.remote`` (and the ``$select`` we ask for).

Owns the parsing of mailFolder and message JSON: defensive booleans (facts §16.3 shows
``"isRead": "true"``), ``changeKey`` from ``@odata.etag`` when absent, and extended
property ids compared by parsed (type, tag) — Graph answers ``Integer 0x1081`` for a
request of ``Integer 0x1081`` but ``Integer 0xe08`` for ``Integer 0x0E08`` (facts §10.1).
Imports: the standard library and ``bridge.backend.remote`` only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bridge.backend.remote import RemoteFolder, RemoteMessage, RemoteUnavailable

# PidTag ids (facts §10.4).
PID_LAST_VERB = "Integer 0x1081"  # PidTagLastVerbExecuted
PID_ICON_INDEX = "Integer 0x1080"  # PidTagIconIndex
PID_MESSAGE_FLAGS = "Integer 0x0E07"  # PidTagMessageFlags
PID_DELIVERY_TIME = "SystemTime 0x0E06"  # PidTagMessageDeliveryTime → receivedDateTime
PID_SUBMIT_TIME = "SystemTime 0x0039"  # PidTagClientSubmitTime → sentDateTime
PID_IN_REPLY_TO = "String 0x1042"  # PidTagInReplyToId
PID_REFERENCES = "String 0x1039"  # PidTagInternetReferences

MSGFLAG_READ = 0x1
MSGFLAG_SUBMIT = 0x4
MSGFLAG_UNSENT = 0x8  # never set for a non-draft (facts §11)

MESSAGE_SELECT = (
    "id,changeKey,parentFolderId,receivedDateTime,isRead,isDraft,flag,categories,"
    "internetMessageId,lastModifiedDateTime"
)
LAST_VERB_EXPAND = f"singleValueExtendedProperties($filter=id eq '{PID_LAST_VERB}')"

# Well-known folder names the bridge maps to IMAP roles (facts §6.2), plus the root.
#: Well-known folders the bridge resolves (facts §6.2): the special-use ones, and the
#: ones hidden from IMAP by default. 16 names with the root: one $batch of at most 20.
WELL_KNOWN = (
    "inbox",
    "drafts",
    "sentitems",
    "deleteditems",
    "junkemail",
    "archive",
    "outbox",
    "conversationhistory",
    "syncissues",
    "conflicts",
    "localfailures",
    "serverfailures",
    "clutter",
    "searchfolders",
    "scheduled",
)
ROOT = "msgfolderroot"

_PROP_ID = re.compile(r"^\s*(\w+)\s+0x([0-9a-fA-F]+)\s*$")


def prop_key(prop_id: str) -> tuple[str, int] | None:
    """``"Integer 0x0E07"`` → ``("integer", 0x0E07)``; named properties → None."""
    match = _PROP_ID.match(prop_id)
    if not match:
        return None
    return match.group(1).lower(), int(match.group(2), 16)


def ext_prop(data: dict[str, Any], prop_id: str) -> str | None:
    """The value of one single-value extended property in an expanded message."""
    wanted = prop_key(prop_id)
    props = data.get("singleValueExtendedProperties")
    if wanted is None or not isinstance(props, list):
        return None
    for prop in props:
        pid = prop.get("id") if isinstance(prop, dict) else None
        if isinstance(pid, str) and prop_key(pid) == wanted:
            value = prop.get("value")
            return None if value is None else str(value)
    return None


def as_bool(value: Any, default: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no", ""}:
            return False
    if isinstance(value, int | float):
        return bool(value)
    return default


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 0) if value is not None else default
    except ValueError:
        return default


def parse_datetime(value: Any) -> datetime | None:
    """ISO-8601 from Graph (``Z``, up to 7 fractional digits) → aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = re.match(r"\d*", rest)
        n = digits.group(0) if digits else ""
        text = f"{head}.{(n + '000000')[:6]}{rest[len(n) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def change_key(data: dict[str, Any]) -> str:
    key = data.get("changeKey")
    if isinstance(key, str) and key:
        return key
    etag = data.get("@odata.etag")
    if isinstance(etag, str):  # W/"<changeKey>" (facts §0.3)
        return etag.removeprefix("W/").strip('"')
    return ""


def message_from_json(
    data: dict[str, Any],
    *,
    folder_id: str | None = None,
    last_verb: int | None = None,
) -> RemoteMessage:
    """Build a RemoteMessage; ``last_verb`` is used when the JSON carries no extended
    properties (POST/PATCH answers never do, facts §10.3)."""
    mid = data.get("id")
    if not isinstance(mid, str) or not mid:
        raise RemoteUnavailable("Graph returned a message without an id; retry later.")
    verb_text = ext_prop(data, PID_LAST_VERB)
    verb = as_int(verb_text) if verb_text is not None else last_verb
    flag = data.get("flag")
    flagged = isinstance(flag, dict) and str(flag.get("flagStatus", "")).lower() == "flagged"
    categories = data.get("categories")
    received = (
        parse_datetime(data.get("receivedDateTime"))
        or parse_datetime(data.get("createdDateTime"))
        or parse_datetime(data.get("lastModifiedDateTime"))
        or _EPOCH  # absent only in partial answers; the sync layer keeps its own value
    )
    imid = data.get("internetMessageId")
    parent = data.get("parentFolderId")
    return RemoteMessage(
        id=mid,
        change_key=change_key(data),
        folder_id=parent if isinstance(parent, str) and parent else (folder_id or ""),
        received=received,
        is_read=as_bool(data.get("isRead")),
        is_draft=as_bool(data.get("isDraft")),
        flagged=flagged,
        categories=tuple(c for c in categories or [] if isinstance(c, str))
        if isinstance(categories, list)
        else (),
        last_verb=verb,
        internet_message_id=imid if isinstance(imid, str) and imid else None,
        last_modified=parse_datetime(data.get("lastModifiedDateTime")),
    )


def is_search_folder(data: dict[str, Any]) -> bool:
    kind = data.get("@odata.type")
    return isinstance(kind, str) and "mailsearchfolder" in kind.lower()


def folder_from_json(
    data: dict[str, Any],
    *,
    parent_id: str | None,
    well_known: str | None = None,
) -> RemoteFolder:
    fid = data.get("id")
    if not isinstance(fid, str) or not fid:
        raise RemoteUnavailable("Graph returned a folder without an id; retry later.")
    return RemoteFolder(
        id=fid,
        display_name=str(data.get("displayName") or ""),
        parent_id=parent_id,
        well_known=well_known,
        child_count=as_int(data.get("childFolderCount")),
        total_count=as_int(data.get("totalItemCount")),
        unread_count=as_int(data.get("unreadItemCount")),
        hidden=as_bool(data.get("isHidden")),
        is_search_folder=is_search_folder(data),
    )


def icon_for_verb(verb: int) -> int:
    """PidTagIconIndex matching a PidTagLastVerbExecuted (facts §9, DavMail's choice).

    Clearing (verb 0) sets 256, Outlook's plain "read mail" icon: Graph offers no way to
    delete a single-value extended property through PATCH, so the property keeps a
    neutral value instead of disappearing.
    """
    if verb in (102, 103):
        return 261
    if verb == 104:
        return 262
    return 256
