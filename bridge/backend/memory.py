"""The in-memory reference ``MailBackend`` and ``MemoryAuthenticator``.

Owns: a whole account's mailbox held in Python dicts — hierarchy, UIDVALIDITY/UIDNEXT
per mailbox, flags and keywords, \\Recent ownership, modseq, quota usage — and the events
announcing every change. It is the reference the contract suite (``tests/contract/``)
holds every other backend to, so it favours being obviously correct over being fast.

Must not import: bridge.graph, bridge.sync, bridge.imap. (It may import bridge.mime.)
"""

from __future__ import annotations

import hmac
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.backend.errors import (
    MailboxExists,
    MailboxNotFound,
    NotPermitted,
    TooBig,
)
from bridge.backend.events import (
    EventBus,
    FlagsChanged,
    MailboxesChanged,
    MailboxReset,
    MessagesAdded,
    MessagesExpunged,
)
from bridge.backend.protocol import MailBackend
from bridge.backend.types import (
    HIERARCHY_DELIMITER,
    SYSTEM_FLAGS,
    AccountIdentity,
    AppendResult,
    CopyResult,
    FetchNeed,
    MailboxInfo,
    MailboxSnapshot,
    MailboxStatus,
    MessageData,
    MessageInfo,
    Quota,
    SpecialUse,
    StoreOperation,
)
from bridge.mime import summarize

DEFAULT_SPECIAL_USE: tuple[tuple[str, SpecialUse], ...] = (
    ("Archive", SpecialUse.ARCHIVE),
    ("Drafts", SpecialUse.DRAFTS),
    ("Junk", SpecialUse.JUNK),
    ("Sent", SpecialUse.SENT),
    ("Trash", SpecialUse.TRASH),
)

#: UIDVALIDITY values come from one process-wide counter seeded by the clock, so a
#: mailbox deleted and re-created under the same name never gets its old UIDVALIDITY
#: back (RFC 3501 §2.3.1.1).
_uidvalidity_counter = itertools.count(int(datetime.now(UTC).timestamp()) % 1_000_000_000 + 1)
_mailbox_ids = itertools.count(1)


@dataclass(slots=True)
class _Message:
    uid: int
    body: bytes
    flags: frozenset[str]
    internaldate: datetime
    modseq: int
    summary: Any = None

    def info(self) -> MessageInfo:
        return MessageInfo(uid=self.uid, flags=self.flags, modseq=self.modseq)


@dataclass(slots=True)
class _Mailbox:
    mailbox_id: str
    name: str
    uidvalidity: int
    special_use: SpecialUse | None = None
    selectable: bool = True
    subscribed: bool = False
    uidnext: int = 1
    highestmodseq: int = 1
    messages: dict[int, _Message] = field(default_factory=dict)
    #: New messages no session has claimed as \Recent yet (RFC 3501 §2.3.2).
    unclaimed_recent: set[int] = field(default_factory=set)

    def next_modseq(self) -> int:
        self.highestmodseq += 1
        return self.highestmodseq

    def sorted_messages(self) -> list[_Message]:
        return [self.messages[uid] for uid in sorted(self.messages)]


def _clean_flags(flags: Iterable[str]) -> frozenset[str]:
    # \Recent is server-managed (RFC 3501 §2.3.2): a client can never set it.
    result = set()
    for flag in flags:
        if flag.startswith("\\"):
            canonical = next((s for s in SYSTEM_FLAGS if s.lower() == flag.lower()), None)
            if canonical is not None:
                result.add(canonical)
        else:
            result.add(flag)
    return frozenset(result)


class MemoryBackend:
    """One account held in memory; implements ``MailBackend``."""

    def __init__(
        self,
        identity: AccountIdentity | None = None,
        *,
        quota_limit_kib: int | None = 1024 * 1024,
        max_message_size: int = 35 * 1024 * 1024,
        special_use: bool = True,
    ) -> None:
        self.identity = identity or AccountIdentity(
            account_id="memory", login="user", email="user@example.test"
        )
        self.events = EventBus()
        self.quota_limit_kib = quota_limit_kib
        self.max_message_size = max_message_size
        #: Mailbox ids a client poked (NOOP/IDLE/CHECK); tests read it.
        self.pokes: list[str] = []
        self._mailboxes: dict[str, _Mailbox] = {}  # by name
        self._add("INBOX", None)
        if special_use:
            for name, use in DEFAULT_SPECIAL_USE:
                self._add(name, use)
        for mailbox in self._mailboxes.values():
            mailbox.subscribed = True

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _normalise(name: str) -> str:
        """INBOX is case-insensitive (RFC 3501 §5.1), also as a hierarchy root."""
        if name.endswith(HIERARCHY_DELIMITER):
            # RFC 3501 §6.3.3: a trailing delimiter only declares intent to have
            # inferior names; the mailbox itself is the name without it.
            name = name.rstrip(HIERARCHY_DELIMITER)
        parts = name.split(HIERARCHY_DELIMITER)
        if parts[0].upper() == "INBOX":
            parts[0] = "INBOX"
        if not name or any(part == "" for part in parts):
            raise NotPermitted("Invalid mailbox name.")
        return HIERARCHY_DELIMITER.join(parts)

    def _add(self, name: str, use: SpecialUse | None) -> _Mailbox:
        mailbox = _Mailbox(
            mailbox_id=f"mb{next(_mailbox_ids)}",
            name=name,
            uidvalidity=next(_uidvalidity_counter),
            special_use=use,
        )
        self._mailboxes[name] = mailbox
        return mailbox

    def _by_name(self, name: str, *, selectable: bool = True) -> _Mailbox:
        try:
            mailbox = self._mailboxes[self._normalise(name)]
        except (KeyError, NotPermitted):
            raise MailboxNotFound("No such mailbox.") from None
        if selectable and not mailbox.selectable:
            raise MailboxNotFound("No such mailbox.")
        return mailbox

    def _by_id(self, mailbox_id: str) -> _Mailbox:
        for mailbox in self._mailboxes.values():
            if mailbox.mailbox_id == mailbox_id and mailbox.selectable:
                return mailbox
        raise MailboxNotFound("The mailbox no longer exists.")

    def _children(self, name: str) -> list[_Mailbox]:
        prefix = name + HIERARCHY_DELIMITER
        return [m for n, m in self._mailboxes.items() if n.startswith(prefix)]

    def _info(self, mailbox: _Mailbox) -> MailboxInfo:
        return MailboxInfo(
            name=mailbox.name,
            mailbox_id=mailbox.mailbox_id,
            special_use=mailbox.special_use,
            has_children=bool(self._children(mailbox.name)),
            selectable=mailbox.selectable,
            subscribed=mailbox.subscribed,
        )

    def _hierarchy_changed(self) -> None:
        self.events.publish(MailboxesChanged(self.identity.account_id))

    def _insert(
        self,
        mailbox: _Mailbox,
        body: bytes,
        flags: frozenset[str],
        internaldate: datetime,
        summary: Any = None,
    ) -> _Message:
        uid = mailbox.uidnext
        mailbox.uidnext += 1
        message = _Message(uid, body, flags, internaldate, mailbox.next_modseq(), summary)
        mailbox.messages[uid] = message
        mailbox.unclaimed_recent.add(uid)
        return message

    def _remove(self, mailbox: _Mailbox, uids: Sequence[int]) -> None:
        for uid in uids:
            del mailbox.messages[uid]
            mailbox.unclaimed_recent.discard(uid)
        if uids:
            mailbox.next_modseq()
            self.events.publish(
                MessagesExpunged(mailbox.mailbox_id, mailbox.uidvalidity, tuple(uids))
            )

    # -- hierarchy (RFC 3501 §6.3) ---------------------------------------------------
    async def list_mailboxes(self) -> list[MailboxInfo]:
        # INBOX first, then by name, which puts parents before their children.
        order = sorted(self._mailboxes, key=lambda name: (name != "INBOX", name))
        return [self._info(self._mailboxes[name]) for name in order]

    async def create_mailbox(self, name: str) -> MailboxInfo:
        name = self._normalise(name)
        existing = self._mailboxes.get(name)
        if existing is not None and existing.selectable:
            raise MailboxExists("Mailbox already exists.")
        if existing is not None:
            # Re-creating a \Noselect placeholder makes it a real mailbox again, with a
            # fresh UIDVALIDITY since its old messages are gone (RFC 3501 §6.3.4).
            existing.selectable = True
            existing.uidvalidity = next(_uidvalidity_counter)
        parts = name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(parts) + 1):
            path = HIERARCHY_DELIMITER.join(parts[:depth])
            if path not in self._mailboxes:
                self._add(path, None)
        self._hierarchy_changed()
        return self._info(self._mailboxes[name])

    async def delete_mailbox(self, name: str) -> None:
        name = self._normalise(name)
        if name == "INBOX":
            raise NotPermitted("INBOX cannot be deleted.")  # RFC 3501 §6.3.4
        mailbox = self._by_name(name, selectable=False)
        if mailbox.special_use is not None:
            raise NotPermitted("Special-use mailboxes cannot be deleted.")
        if self._children(name):
            if not mailbox.selectable:
                # RFC 3501 §6.3.4: an error for a \Noselect name with inferiors.
                raise NotPermitted("Mailbox has inferior hierarchical names.")
            # RFC 3501 §6.3.4: remove the messages, keep the name as \Noselect.
            mailbox.messages.clear()
            mailbox.unclaimed_recent.clear()
            mailbox.selectable = False
        else:
            del self._mailboxes[name]
        self.events.publish(MailboxReset(mailbox.mailbox_id))
        self._hierarchy_changed()

    async def rename_mailbox(self, old: str, new: str) -> None:
        old = self._normalise(old)
        new = self._normalise(new)
        source = self._by_name(old, selectable=False)
        if new in self._mailboxes:
            raise MailboxExists("Target mailbox already exists.")
        if new == old or new.startswith(old + HIERARCHY_DELIMITER):
            raise NotPermitted("A mailbox cannot be renamed into itself.")
        parents = new.split(HIERARCHY_DELIMITER)[:-1]
        for depth in range(1, len(parents) + 1):
            path = HIERARCHY_DELIMITER.join(parents[:depth])
            if path not in self._mailboxes:
                self._add(path, None)
        if old == "INBOX":
            # RFC 3501 §6.3.5: renaming INBOX moves all its messages to a new mailbox
            # and leaves INBOX empty; its inferiors are not renamed.
            target = self._add(new, None)
            moved = source.sorted_messages()
            for message in moved:
                self._insert(
                    target, message.body, message.flags, message.internaldate, message.summary
                )
            self._remove(source, [m.uid for m in moved])
            self._hierarchy_changed()
            return
        # Everything under ``old`` keeps its mailbox id, UIDVALIDITY and UIDs.
        for mailbox in [source, *self._children(old)]:
            del self._mailboxes[mailbox.name]
            mailbox.name = new + mailbox.name[len(old) :]
            self._mailboxes[mailbox.name] = mailbox
        self._hierarchy_changed()

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        # RFC 3501 §6.3.6: subscribing to a name that does not exist is allowed by the
        # RFC, but a single list of subscriptions stored with the mailbox is simpler
        # and what Graph can offer; subscribe therefore requires an existing mailbox.
        mailbox = self._by_name(name, selectable=False)
        mailbox.subscribed = subscribed
        self._hierarchy_changed()

    async def status(self, name: str) -> MailboxStatus:
        mailbox = self._by_name(name)
        messages = mailbox.messages.values()
        return MailboxStatus(
            messages=len(mailbox.messages),
            recent=len(mailbox.unclaimed_recent),
            uidnext=mailbox.uidnext,
            uidvalidity=mailbox.uidvalidity,
            unseen=sum(1 for m in messages if "\\Seen" not in m.flags),
            highestmodseq=mailbox.highestmodseq,
            size=sum(len(m.body) for m in messages),
        )

    # -- selected state --------------------------------------------------------------
    async def select(self, name: str, read_only: bool) -> MailboxSnapshot:
        mailbox = self._by_name(name)
        recent = frozenset(mailbox.unclaimed_recent)
        if not read_only:
            # EXAMINE must not change \Recent (RFC 3501 §6.3.2); SELECT claims it.
            mailbox.unclaimed_recent.clear()
        return MailboxSnapshot(
            mailbox_id=mailbox.mailbox_id,
            name=mailbox.name,
            uidvalidity=mailbox.uidvalidity,
            uidnext=mailbox.uidnext,
            highestmodseq=mailbox.highestmodseq,
            messages=tuple(m.info() for m in mailbox.sorted_messages()),
            permanent_flags=SYSTEM_FLAGS,
            allows_new_keywords=True,
            read_only=read_only,
            recent_uids=recent,
        )

    async def claim_recent(self, mailbox_id: str, uids: Iterable[int]) -> frozenset[int]:
        mailbox = self._by_id(mailbox_id)
        claimed = frozenset(uid for uid in uids if uid in mailbox.unclaimed_recent)
        mailbox.unclaimed_recent -= claimed
        return claimed

    async def poke(self, mailbox_id: str) -> None:
        self.pokes.append(mailbox_id)

    async def fetch(
        self, mailbox_id: str, uids: Sequence[int], need: FetchNeed
    ) -> list[MessageData]:
        mailbox = self._by_id(mailbox_id)
        result = []
        for uid in sorted(set(uids)):
            message = mailbox.messages.get(uid)
            if message is None:
                continue
            summary = None
            if FetchNeed.SUMMARY in need:
                if message.summary is None:
                    message.summary = summarize(message.body)
                summary = message.summary
            result.append(
                MessageData(
                    uid=uid,
                    flags=message.flags if FetchNeed.FLAGS in need else None,
                    internaldate=(message.internaldate if FetchNeed.INTERNALDATE in need else None),
                    size=len(message.body) if FetchNeed.SIZE in need else None,
                    summary=summary,
                    body=message.body if FetchNeed.BODY in need else None,
                    modseq=message.modseq,
                )
            )
        return result

    async def store_flags(
        self,
        mailbox_id: str,
        uids: Sequence[int],
        operation: StoreOperation,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> list[MessageInfo]:
        mailbox = self._by_id(mailbox_id)
        flags = _clean_flags(flags)
        touched: list[MessageInfo] = []
        changed: list[MessageInfo] = []
        for uid in sorted(set(uids)):
            message = mailbox.messages.get(uid)
            if message is None:
                continue
            # RFC 7162 §3.1.3: a message modified since UNCHANGEDSINCE is left alone
            # and is absent from the result; the session reports it as MODIFIED.
            if unchanged_since is not None and message.modseq > unchanged_since:
                continue
            if operation is StoreOperation.REPLACE:
                new = flags
            elif operation is StoreOperation.ADD:
                new = message.flags | flags
            else:
                new = message.flags - flags
            if new != message.flags:
                message.flags = new
                message.modseq = mailbox.next_modseq()
                changed.append(message.info())
            touched.append(message.info())
        if changed:
            self.events.publish(
                FlagsChanged(mailbox.mailbox_id, mailbox.uidvalidity, tuple(changed))
            )
        return touched

    async def append(
        self,
        name: str,
        message: bytes,
        flags: frozenset[str],
        internaldate: datetime | None,
    ) -> AppendResult:
        mailbox = self._by_name(name)
        if len(message) > self.max_message_size:
            raise TooBig("Message too large.")
        stored = self._insert(
            mailbox, bytes(message), _clean_flags(flags), internaldate or datetime.now(UTC)
        )
        self.events.publish(
            MessagesAdded(mailbox.mailbox_id, mailbox.uidvalidity, (stored.info(),))
        )
        return AppendResult(uidvalidity=mailbox.uidvalidity, uid=stored.uid)

    async def copy(self, mailbox_id: str, uids: Sequence[int], dest: str) -> CopyResult:
        source = self._by_id(mailbox_id)
        target = self._by_name(dest)
        originals = [source.messages[uid] for uid in sorted(set(uids)) if uid in source.messages]
        # RFC 3501 §6.4.7: flags and internal date are preserved; \Recent is set anew.
        copies = [
            self._insert(target, m.body, m.flags, m.internaldate, m.summary) for m in originals
        ]
        if copies:
            self.events.publish(
                MessagesAdded(
                    target.mailbox_id, target.uidvalidity, tuple(c.info() for c in copies)
                )
            )
        return CopyResult(
            uidvalidity=target.uidvalidity,
            source_uids=tuple(m.uid for m in originals),
            dest_uids=tuple(c.uid for c in copies),
        )

    async def move(self, mailbox_id: str, uids: Sequence[int], dest: str) -> CopyResult:
        source = self._by_id(mailbox_id)
        # RFC 6851 does not forbid a MOVE into the selected mailbox itself; like Dovecot
        # and CachedBackend, the messages then get new UIDs and the old ones go.
        result = await self.copy(mailbox_id, uids, dest)
        self._remove(source, list(result.source_uids))
        return result

    async def expunge(self, mailbox_id: str, uids: Sequence[int] | None = None) -> list[int]:
        mailbox = self._by_id(mailbox_id)
        allowed = None if uids is None else set(uids)
        doomed = [
            m.uid
            for m in mailbox.sorted_messages()
            if "\\Deleted" in m.flags and (allowed is None or m.uid in allowed)
        ]
        self._remove(mailbox, doomed)
        return doomed

    async def quota(self) -> Quota | None:
        if self.quota_limit_kib is None:
            return None
        used = sum(len(m.body) for mb in self._mailboxes.values() for m in mb.messages.values())
        return Quota(root="", used_kib=math.ceil(used / 1024), limit_kib=self.quota_limit_kib)


class MemoryAuthenticator:
    """``Authenticator`` over a fixed table: login -> (password, backend)."""

    def __init__(self, users: dict[str, tuple[str, MemoryBackend]]) -> None:
        self._users = users

    async def authenticate(self, login: str, password: str, peer: str) -> MailBackend | None:
        entry = self._users.get(login)
        # Compare even for an unknown login so timing does not reveal which logins exist.
        expected = entry[0] if entry is not None else "\0unknown login\0"
        matches = hmac.compare_digest(expected.encode(), password.encode())
        if entry is None or not matches:
            return None
        return entry[1]
