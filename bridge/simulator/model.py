"""The simulator's in-memory world: tenants, apps, users, mailboxes, folders, messages.

Owns: the entity records and ``World`` (all state behind one re-entrant lock), id
generation, per-folder change logs (the source of delta rounds, §16) and the hook that
feeds change notifications (§19). HTTP handlers and the control API both mutate the
world only through the methods here, holding ``World.lock``.

Entity records are mutable on purpose: they are the simulated store, not values passed
between layers. Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import GraphError, item_not_found, malformed_id

Clock = Callable[[], float]
_ID_CHARS = re.compile(r"^[A-Za-z0-9_\-+/=]+$")

ROOT_WK = "root"
# §6.2 well-known folders. (name, displayName, parent well-known, hidden)
WELL_KNOWN_FOLDERS: tuple[tuple[str, str, str, bool], ...] = (
    ("msgfolderroot", "Top of Information Store", ROOT_WK, False),
    ("inbox", "Inbox", "msgfolderroot", False),
    ("drafts", "Drafts", "msgfolderroot", False),
    ("sentitems", "Sent Items", "msgfolderroot", False),
    ("deleteditems", "Deleted Items", "msgfolderroot", False),
    ("junkemail", "Junk Email", "msgfolderroot", False),
    ("archive", "Archive", "msgfolderroot", False),
    ("outbox", "Outbox", "msgfolderroot", False),
    ("conversationhistory", "Conversation History", "msgfolderroot", False),
    ("syncissues", "Sync Issues", "msgfolderroot", True),
    ("conflicts", "Conflicts", "syncissues", True),
    ("localfailures", "Local Failures", "syncissues", True),
    ("serverfailures", "Server Failures", "syncissues", True),
    # Outside the IPM subtree: reachable by well-known name only, never listed under
    # msgfolderroot (soft-deleted items land here, §14).
    ("searchfolders", "Finder", ROOT_WK, True),
    ("recoverableitemsdeletions", "Deletions", ROOT_WK, True),
)


class ChangeKind(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


def utc_from(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(microsecond=0)


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime:
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    # Graph sends 7 fractional digits; fromisoformat in 3.11 accepts up to 6.
    t = re.sub(r"(\.\d{6})\d+", r"\1", t)
    value = dt.datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_rest_id() -> str:
    # §0.1: REST ids are base64url-ish with a trailing '='.
    return "AAMkAD" + _b64(secrets.token_bytes(30)) + "="


def new_immutable_id() -> str:
    return "AAkALgAA" + _b64(secrets.token_bytes(30)) + "="


def new_folder_id() -> str:
    return "AQMkAD" + _b64(secrets.token_bytes(24)) + "AAAA=="


def new_change_key() -> str:
    # changeKeys use '+' and '/' (§0.1), unlike REST ids.
    return "CQAAABYAAA" + base64.b64encode(secrets.token_bytes(15)).decode()


# ---------------------------------------------------------------- extended properties (§10)

_EXT_TAG = re.compile(r"^\s*(\w+)\s+0x([0-9a-fA-F]+)\s*$")
_EXT_NAMED = re.compile(r"^\s*(\w+)\s+\{([0-9a-fA-F-]{36})\}\s+(Name|Id)\s+(.+?)\s*$", re.I)

ExtKey = tuple[str, ...]


def parse_ext_id(raw: str) -> tuple[ExtKey, str]:
    """Parse an extended property id → (comparison key, normalized id as Graph returns it).

    §10.1: ids come back normalized (lowercase hex, no leading zeros); compare by
    parsed (type, tag). Type names compare case-insensitively; named-property names
    are case-sensitive.
    """
    m = _EXT_TAG.match(raw)
    if m:
        ptype = m.group(1)
        tag = int(m.group(2), 16)
        return ("tag", ptype.lower(), str(tag)), f"{_canonical_type(ptype)} 0x{tag:x}"
    m = _EXT_NAMED.match(raw)
    if m:
        ptype, guid, kind, name = m.groups()
        guid = guid.lower()
        if kind.lower() == "id":
            num = int(name, 16) if name.lower().startswith("0x") else int(name)
            return (
                ("id", ptype.lower(), guid, str(num)),
                f"{_canonical_type(ptype)} {{{guid}}} Id 0x{num:x}",
            )
        return (
            "name",
            ptype.lower(),
            guid,
            name,
        ), f"{_canonical_type(ptype)} {{{guid}}} Name {name}"
    raise GraphError(
        400, "ErrorInvalidExtendedPropertyValue", f"Invalid extended property id '{raw}'."
    )


_TYPES = {
    t.lower(): t
    for t in (
        "Integer",
        "Long",
        "String",
        "Boolean",
        "SystemTime",
        "Binary",
        "CLSID",
        "Short",
        "Double",
        "Float",
        "Currency",
        "ApplicationTime",
        "Object",
        "Null",
    )
}


def _canonical_type(ptype: str) -> str:
    return _TYPES.get(ptype.lower(), ptype)


TAG_MESSAGE_FLAGS = ("tag", "integer", str(0x0E07))
TAG_MESSAGE_SIZE = ("tag", "integer", str(0x0E08))
TAG_DELIVERY_TIME = ("tag", "systemtime", str(0x0E06))
TAG_SUBMIT_TIME = ("tag", "systemtime", str(0x0039))
TAG_FLAG_STATUS = ("tag", "integer", str(0x1090))


# ---------------------------------------------------------------- entities


@dataclass
class Tenant:
    id: str
    domain: str


@dataclass
class App:
    client_id: str
    tenant_id: str
    roles: tuple[str, ...]
    secret: str | None
    secret_expired: bool = False
    certificate_pem: bytes | None = None
    thumbprint_sha1: bytes | None = None
    thumbprint_sha256: bytes | None = None
    service_principal_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Attachment:
    id: str
    name: str
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str | None = None
    modified: dt.datetime | None = None


@dataclass
class Message:
    key: int
    mailbox_id: str
    folder_id: str
    rest_id: str
    immutable_id: str
    created: dt.datetime
    modified: dt.datetime
    received: dt.datetime
    sent: dt.datetime | None
    change_key: str
    internet_message_id: str
    conversation_id: str
    subject: str = ""
    body_type: str = "text"
    body: str = ""
    sender: dict[str, Any] | None = None
    from_: dict[str, Any] | None = None
    to: list[dict[str, Any]] = field(default_factory=list)
    cc: list[dict[str, Any]] = field(default_factory=list)
    bcc: list[dict[str, Any]] = field(default_factory=list)
    reply_to: list[dict[str, Any]] = field(default_factory=list)
    importance: str = "normal"
    categories: list[str] = field(default_factory=list)
    flag: dict[str, Any] = field(default_factory=lambda: {"flagStatus": "notFlagged"})
    is_read: bool = False
    is_draft: bool = False
    inference: str = "focused"
    read_receipt: bool = False
    delivery_receipt: bool | None = None
    headers: list[dict[str, str]] = field(default_factory=list)
    ext: dict[ExtKey, tuple[str, str]] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    # The MIME Exchange would serve for $value while it still represents the item
    # (delivered / MIME-created and not edited since); None → regenerate from fields.
    mime: bytes | None = None

    @property
    def has_attachments(self) -> bool:
        return any(not a.is_inline for a in self.attachments)


@dataclass
class LogEntry:
    seq: int
    key: int
    kind: ChangeKind
    rest_id: str
    immutable_id: str


@dataclass
class Folder:
    id: str
    mailbox_id: str
    display_name: str
    parent_id: str | None
    well_known: str | None = None
    is_hidden: bool = False
    search: dict[str, Any] | None = None  # mailSearchFolder attributes when a search folder
    messages: dict[int, None] = field(default_factory=dict)  # ordered set of message keys
    log: list[LogEntry] = field(default_factory=list)
    log_floor: int = 0  # entries with seq <= floor were evicted → older tokens are 410
    epoch: int = 0  # bumped by expire_delta_tokens


@dataclass
class FolderLogEntry:
    seq: int
    folder_id: str
    kind: ChangeKind


@dataclass
class Mailbox:
    user_id: str
    folders: dict[str, Folder] = field(default_factory=dict)
    well_known: dict[str, str] = field(default_factory=dict)
    messages: dict[int, Message] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # rest + immutable id → key
    folder_log: list[FolderLogEntry] = field(default_factory=list)
    folder_log_floor: int = 0
    folder_epoch: int = 0
    send_as: set[str] = field(default_factory=set)  # addresses this mailbox may send as


@dataclass
class User:
    id: str
    tenant_id: str
    upn: str
    mail: str | None
    display_name: str
    shared: bool = False
    has_mailbox: bool = True
    proxy_addresses: list[str] = field(default_factory=list)

    def addresses(self) -> set[str]:
        out = {self.upn.lower()}
        if self.mail:
            out.add(self.mail.lower())
        for p in self.proxy_addresses:
            if p.lower().startswith("smtp:"):
                out.add(p[5:].lower())
        return out


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One message submitted through sendMail or /send (what a test asserts on)."""

    sender: str
    from_address: str
    recipients: tuple[str, ...]
    mime: bytes
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A folder-level change, fed to subscriptions (§19.3)."""

    mailbox_id: str
    folder_id: str
    kind: ChangeKind
    rest_id: str
    immutable_id: str
    change_key: str
    key: int = 0  # the message's store key (for filtered subscriptions)


# ---------------------------------------------------------------- the world


class World:
    """All simulator state. Every access holds ``lock``."""

    def __init__(self, clock: Clock | None = None, delta_log_limit: int = 5000) -> None:
        self.lock = threading.RLock()
        self.clock: Clock = clock or time.time
        self.delta_log_limit = delta_log_limit
        self.tenants: dict[str, Tenant] = {}
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.sent: list[tuple[str, SentRecord]] = []  # (mailbox user id, record)
        self.seq = 0
        self._next_key = 0
        self.listeners: list[Callable[[MessageEvent], None]] = []
        self.token_generation = 0  # tokens issued before this generation are invalid
        # Exchange application access policy (§5): (client id, user id) pairs refused with
        # 403 "Access to OData is disabled."
        self.denied: set[tuple[str, str]] = set()

    # -- time ----------------------------------------------------------------
    def now(self) -> dt.datetime:
        return utc_from(self.clock())

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # -- directory -------------------------------------------------------------
    def add_tenant(self, domain: str, tenant_id: str | None = None) -> Tenant:
        with self.lock:
            t = Tenant(id=tenant_id or str(uuid.uuid4()), domain=domain.lower())
            self.tenants[t.id] = t
            return t

    def find_tenant(self, name: str) -> Tenant | None:
        with self.lock:
            key = name.lower()
            for t in self.tenants.values():
                if t.id.lower() == key or t.domain == key:
                    return t
            return None

    def add_user(
        self,
        tenant_id: str,
        upn: str,
        display_name: str,
        *,
        mail: str | None = None,
        shared: bool = False,
        has_mailbox: bool = True,
        user_id: str | None = None,
    ) -> User:
        with self.lock:
            if tenant_id not in self.tenants:
                raise KeyError(f"unknown tenant {tenant_id}")
            address = mail if mail is not None else (upn if has_mailbox else None)
            u = User(
                id=user_id or str(uuid.uuid4()),
                tenant_id=tenant_id,
                upn=upn,
                mail=address,
                display_name=display_name,
                shared=shared,
                has_mailbox=has_mailbox,
                proxy_addresses=[f"SMTP:{address}"] if address else [],
            )
            self.users[u.id] = u
            if has_mailbox:
                self._create_mailbox(u)
            return u

    def find_user(self, ref: str, tenant_id: str | None = None) -> User | None:
        with self.lock:
            key = ref.strip().lower()
            for u in self.users.values():
                if tenant_id is not None and u.tenant_id != tenant_id:
                    continue
                if u.id.lower() == key or u.upn.lower() == key or key in u.addresses():
                    return u
            return None

    def user_by_address(self, address: str) -> User | None:
        key = address.strip().lower()
        for u in self.users.values():
            if u.has_mailbox and key in u.addresses():
                return u
        return None

    # -- mailboxes & folders ---------------------------------------------------
    def _create_mailbox(self, user: User) -> None:
        mb = Mailbox(user_id=user.id)
        self.mailboxes[user.id] = mb
        root = Folder(id=new_folder_id(), mailbox_id=user.id, display_name="", parent_id=None)
        root.well_known = ROOT_WK
        mb.folders[root.id] = root
        mb.well_known[ROOT_WK] = root.id
        for name, display, parent, hidden in WELL_KNOWN_FOLDERS:
            f = Folder(
                id=new_folder_id(),
                mailbox_id=user.id,
                display_name=display,
                parent_id=mb.well_known[parent],
                well_known=name,
                is_hidden=hidden,
            )
            mb.folders[f.id] = f
            mb.well_known[name] = f.id

    def mailbox(self, user_id: str) -> Mailbox:
        return self.mailboxes[user_id]

    def folder(self, mb: Mailbox, ref: str) -> Folder:
        """Resolve a folder id or well-known name (case-insensitive, §6.2)."""
        fid = mb.well_known.get(ref.lower())
        if fid is None:
            fid = ref
        f = mb.folders.get(fid)
        if f is None or f.well_known == ROOT_WK:
            raise item_not_found()
        return f

    def children(self, mb: Mailbox, folder_id: str) -> list[Folder]:
        kids = [f for f in mb.folders.values() if f.parent_id == folder_id]
        return sorted(kids, key=lambda f: f.display_name.casefold())

    def in_ipm_subtree(self, mb: Mailbox, f: Folder) -> bool:
        top = mb.well_known["msgfolderroot"]
        cur: Folder | None = f
        while cur is not None:
            if cur.id == top:
                return True
            cur = mb.folders.get(cur.parent_id) if cur.parent_id else None
        return False

    def log_folder(self, mb: Mailbox, f: Folder, kind: ChangeKind) -> None:
        mb.folder_log.append(FolderLogEntry(self.next_seq(), f.id, kind))
        if len(mb.folder_log) > self.delta_log_limit:
            dropped = mb.folder_log[: len(mb.folder_log) - self.delta_log_limit]
            del mb.folder_log[: len(dropped)]
            mb.folder_log_floor = dropped[-1].seq

    def create_folder(
        self,
        mb: Mailbox,
        parent: Folder,
        name: str,
        *,
        hidden: bool = False,
        search: dict[str, Any] | None = None,
    ) -> Folder:
        if not name or not name.strip():
            raise GraphError(400, "ErrorInvalidRequest", "The folder name cannot be empty.")
        self._check_sibling(mb, parent.id, name, None)
        f = Folder(
            id=new_folder_id(),
            mailbox_id=mb.user_id,
            display_name=name,
            parent_id=parent.id,
            is_hidden=hidden,
            search=search,
        )
        mb.folders[f.id] = f
        self.log_folder(mb, f, ChangeKind.CREATED)
        return f

    def _check_sibling(self, mb: Mailbox, parent_id: str, name: str, exclude: str | None) -> None:
        for other in mb.folders.values():
            if (
                other.parent_id == parent_id
                and other.id != exclude
                and other.display_name.casefold() == name.casefold()
            ):
                # §6.4: 409 ErrorFolderExists (message text UNCONFIRMED).
                raise GraphError(
                    409, "ErrorFolderExists", "A folder with the specified name already exists."
                )

    def rename_folder(self, mb: Mailbox, f: Folder, name: str) -> None:
        if f.well_known:
            raise GraphError(400, "ErrorInvalidRequest", "Distinguished folders cannot be renamed.")
        if not name.strip():
            raise GraphError(400, "ErrorInvalidRequest", "The folder name cannot be empty.")
        assert f.parent_id is not None
        self._check_sibling(mb, f.parent_id, name, f.id)
        f.display_name = name
        self.log_folder(mb, f, ChangeKind.UPDATED)

    def move_folder(self, mb: Mailbox, f: Folder, dest: Folder) -> None:
        if f.well_known:
            raise GraphError(
                400, "ErrorMoveDistinguishedFolder", "Distinguished folders cannot be moved."
            )
        cur: Folder | None = dest
        while cur is not None:
            if cur.id == f.id:
                raise GraphError(400, "ErrorMoveCopyFailed", "The move or copy operation failed.")
            cur = mb.folders.get(cur.parent_id) if cur.parent_id else None
        self._check_sibling(mb, dest.id, f.display_name, f.id)
        f.parent_id = dest.id
        self.log_folder(mb, f, ChangeKind.UPDATED)

    def subtree(self, mb: Mailbox, f: Folder) -> list[Folder]:
        out = [f]
        for child in self.children(mb, f.id):
            out.extend(self.subtree(mb, child))
        return out

    def delete_folder(self, mb: Mailbox, f: Folder, *, permanent: bool = False) -> None:
        """§6.4: DELETE moves the folder (and contents) to Deleted Items; a folder that is
        already inside Deleted Items, or ``permanent``, is removed for good."""
        if f.well_known:
            raise GraphError(
                400, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
            )
        trash = self.folder(mb, "deleteditems")
        inside_trash = False
        cur = mb.folders.get(f.parent_id) if f.parent_id else None
        while cur is not None:
            if cur.id == trash.id:
                inside_trash = True
                break
            cur = mb.folders.get(cur.parent_id) if cur.parent_id else None
        if not permanent and not inside_trash:
            name = f.display_name
            n = 1
            while any(
                o.parent_id == trash.id and o.display_name.casefold() == name.casefold()
                for o in mb.folders.values()
                if o.id != f.id
            ):
                n += 1
                name = f"{f.display_name} {n}"
            f.display_name = name
            f.parent_id = trash.id
            self.log_folder(mb, f, ChangeKind.UPDATED)
            return
        for sub in reversed(self.subtree(mb, f)):
            for key in list(sub.messages):
                self.remove_message(mb, mb.messages[key])
            del mb.folders[sub.id]
            self.log_folder(mb, sub, ChangeKind.DELETED)

    # -- messages ----------------------------------------------------------------
    def new_message(self, mb: Mailbox, folder: Folder, **fields: Any) -> Message:
        self._next_key += 1
        now = self.now()
        fields.setdefault("received", now)
        fields.setdefault("sent", now)
        domain = "sim.outlook.example"
        m = Message(
            key=self._next_key,
            mailbox_id=mb.user_id,
            folder_id=folder.id,
            rest_id=new_rest_id(),
            immutable_id=new_immutable_id(),
            created=now,
            modified=now,
            change_key=new_change_key(),
            internet_message_id=fields.pop("internet_message_id", None)
            or f"<{secrets.token_hex(12).upper()}@{domain}>",
            conversation_id="AAQkAD" + _b64(secrets.token_bytes(16)) + "=",
            **fields,
        )
        mb.messages[m.key] = m
        mb.ids[m.rest_id] = m.key
        mb.ids[m.immutable_id] = m.key
        folder.messages[m.key] = None
        self._log(mb, folder, m, ChangeKind.CREATED)
        return m

    def find_message(self, mb: Mailbox, message_id: str) -> Message:
        if not _ID_CHARS.match(message_id):
            # §0.1: ids that are not base64-ish (e.g. unencoded or mangled) are malformed.
            raise malformed_id()
        key = mb.ids.get(message_id)
        if key is None or key not in mb.messages:
            raise item_not_found()
        return mb.messages[key]

    def touch(self, mb: Mailbox, m: Message) -> None:
        """Record an update: new changeKey, lastModifiedDateTime, delta + notification (§9)."""
        m.change_key = new_change_key()
        m.modified = self.now()
        self._log(mb, mb.folders[m.folder_id], m, ChangeKind.UPDATED)

    def move_message(self, mb: Mailbox, m: Message, dest: Folder) -> Message:
        """§14: move = new item in dest, original gone; the REST id changes, the immutable
        id does not (§17)."""
        src = mb.folders[m.folder_id]
        self._log(mb, src, m, ChangeKind.DELETED)
        del src.messages[m.key]
        del mb.ids[m.rest_id]
        m.rest_id = new_rest_id()
        mb.ids[m.rest_id] = m.key
        m.folder_id = dest.id
        m.change_key = new_change_key()
        m.modified = self.now()
        dest.messages[m.key] = None
        self._log(mb, dest, m, ChangeKind.CREATED)
        return m

    def copy_message(self, mb: Mailbox, m: Message, dest: Folder) -> Message:
        return self.new_message(
            mb,
            dest,
            received=m.received,
            sent=m.sent,
            internet_message_id=m.internet_message_id,
            subject=m.subject,
            body_type=m.body_type,
            body=m.body,
            sender=_copy(m.sender),
            from_=_copy(m.from_),
            to=_copy(m.to),
            cc=_copy(m.cc),
            bcc=_copy(m.bcc),
            reply_to=_copy(m.reply_to),
            importance=m.importance,
            categories=list(m.categories),
            flag=dict(m.flag),
            is_read=m.is_read,
            is_draft=m.is_draft,
            headers=_copy(m.headers),
            ext=dict(m.ext),
            attachments=[
                Attachment(
                    id=_b64(secrets.token_bytes(18)),
                    name=a.name,
                    content_type=a.content_type,
                    data=a.data,
                    is_inline=a.is_inline,
                    content_id=a.content_id,
                    modified=a.modified,
                )
                for a in m.attachments
            ],
            mime=m.mime,
        )

    def remove_message(self, mb: Mailbox, m: Message) -> None:
        folder = mb.folders[m.folder_id]
        self._log(mb, folder, m, ChangeKind.DELETED)
        del folder.messages[m.key]
        mb.ids.pop(m.rest_id, None)
        mb.ids.pop(m.immutable_id, None)
        del mb.messages[m.key]

    def _log(self, mb: Mailbox, folder: Folder, m: Message, kind: ChangeKind) -> None:
        entry = LogEntry(self.next_seq(), m.key, kind, m.rest_id, m.immutable_id)
        folder.log.append(entry)
        if len(folder.log) > self.delta_log_limit:
            # §16.5: tokens live in a size-limited cache; evicted generations → 410.
            excess = len(folder.log) - self.delta_log_limit
            folder.log_floor = folder.log[excess - 1].seq
            del folder.log[:excess]
        event = MessageEvent(
            mb.user_id, folder.id, kind, m.rest_id, m.immutable_id, m.change_key, m.key
        )
        for listener in list(self.listeners):
            listener(event)


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)
