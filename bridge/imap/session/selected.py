"""``SelectedMailbox``: one session's view of its selected mailbox.

Owns the sequence-number ↔ UID mapping the client believes in, the flags and modseqs the
client was last told, the \\Recent messages this session owns, and the queue of updates
the backend announced on its ``EventBus`` but the client has not been told yet.

Theory of operation. The client's view changes only when the session *tells* the client
something: an EXPUNGE response removes a sequence number, an EXISTS response appends
numbers. Events from the backend (including the echo of this session's own changes) are
queued; ``flush()`` turns the queue into untagged responses at moments the RFC allows:

- RFC 3501 §7.4.1: "An EXPUNGE response MUST NOT be sent ... while responding to a FETCH,
  STORE, or SEARCH command." Until an EXPUNGE is sent the expunged message keeps its
  sequence number (a "ghost"), so an EXISTS sent meanwhile still counts it and the
  numbering stays consistent.
- Flag changes equal to what the client already knows are dropped; that is how a
  session's own STORE, already answered with FETCH responses, is not reported twice.
- RFC 3501 §7.3.1: EXISTS never decreases except through EXPUNGE responses.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.backend.errors import BackendError
from bridge.backend.events import (
    FlagsChanged,
    MailboxReset,
    MailEvent,
    MessagesAdded,
    MessagesExpunged,
)
from bridge.backend.protocol import MailBackend
from bridge.backend.types import MailboxSnapshot, MessageInfo
from bridge.imap.wire.sequence import SequenceSet


@dataclass(frozen=True, slots=True)
class ViewEntry:
    """One message of the client's view: its sequence number and UID."""

    seq: int
    uid: int


class SelectedMailbox:
    """The seq↔UID view and pending updates of one SELECT/EXAMINE."""

    def __init__(
        self,
        snapshot: MailboxSnapshot,
        *,
        read_only: bool,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.mailbox_id = snapshot.mailbox_id
        self.name = snapshot.name
        self.uidvalidity = snapshot.uidvalidity
        self.uidnext = snapshot.uidnext
        self.highestmodseq = snapshot.highestmodseq
        self.permanent_flags = snapshot.permanent_flags
        self.allows_new_keywords = snapshot.allows_new_keywords
        self.read_only = read_only
        #: Set when the mailbox was deleted or lost its UIDVALIDITY under us.
        self.reset = False
        self._wake = wake
        self._uids: list[int] = [m.uid for m in snapshot.messages]
        self._flags: dict[int, frozenset[str]] = {m.uid: m.flags for m in snapshot.messages}
        self._modseq: dict[int, int] = {m.uid: m.modseq for m in snapshot.messages}
        self._recent: set[int] = set(snapshot.recent_uids)
        self._pending_expunge: dict[int, None] = {}  # ordered set
        self._pending_added: dict[int, MessageInfo] = {}
        self._pending_flags: dict[int, MessageInfo] = {}

    # -- the view ----------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self._uids)

    @property
    def recent_count(self) -> int:
        return len(self._recent)

    @property
    def live_recent_count(self) -> int:
        """\\Recent messages of this session that the backend still has (no ghosts)."""
        return sum(1 for uid in self._recent if uid not in self._pending_expunge)

    @property
    def uids(self) -> list[int]:
        return list(self._uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self._uids, uid)
        if i < len(self._uids) and self._uids[i] == uid:
            return i + 1
        return None

    def flags_of(self, uid: int) -> frozenset[str]:
        """Flags the client knows, with \\Recent if this session owns the message."""
        flags = self._flags.get(uid, frozenset())
        return flags | {"\\Recent"} if uid in self._recent else flags

    def modseq_of(self, uid: int) -> int:
        return self._modseq.get(uid, 0)

    def current_state(self) -> tuple[list[int], dict[int, frozenset[str]], dict[int, int]]:
        """Live UIDs of the view (ghosts left out) with their flags and modseqs as the
        backend announced them: what the client was told, overlaid with the queued
        ``FlagsChanged`` updates (a queued update older than what the client knows is
        stale and ignored, as in ``flush``). Flags exclude \\Recent.

        Backends announce every change on their ``EventBus`` once it is durable
        (protocol.py), so this equals the backend's own state and SEARCH can evaluate
        flag keys without asking it. The returned objects may be the session's own:
        callers must not modify them.
        """
        uids, flags, modseqs = self._uids, self._flags, self._modseq
        if self._pending_flags:
            flags, modseqs = dict(flags), dict(modseqs)
            for uid, info in self._pending_flags.items():
                if uid in flags and info.modseq >= modseqs.get(uid, 0):
                    flags[uid] = info.flags
                    modseqs[uid] = info.modseq
        if self._pending_expunge:
            gone = self._pending_expunge
            uids = [uid for uid in uids if uid not in gone]
        return uids, flags, modseqs

    @property
    def recent_uids(self) -> set[int]:
        """The \\Recent messages this session owns (its own set: do not modify)."""
        return self._recent

    def is_expunged(self, uid: int) -> bool:
        """True for a ghost: expunged in the backend, not yet reported to the client."""
        return uid in self._pending_expunge

    def resolve_seqs(self, seqset: SequenceSet) -> list[ViewEntry]:
        return [ViewEntry(seq, self._uids[seq - 1]) for seq in seqset.resolve(len(self._uids))]

    def resolve_uids(self, uidset: SequenceSet) -> list[ViewEntry]:
        """Messages whose UID is in ``uidset``; ``*`` is the highest UID in the view.

        Walks the ranges with bisect so that ``1:*`` over sparse UIDs does not expand
        to every integer up to the largest UID.
        """
        largest = self._uids[-1] if self._uids else 0
        out: list[ViewEntry] = []
        for lo, hi in uidset.iter_ranges(largest):
            start = bisect.bisect_left(self._uids, lo)
            stop = bisect.bisect_right(self._uids, hi)
            out.extend(ViewEntry(i + 1, self._uids[i]) for i in range(start, stop))
        return out

    def note_flags(self, info: MessageInfo) -> None:
        """The client was just told ``info`` (a STORE or implicit \\Seen answer)."""
        self.note_told(info.uid, info.flags, info.modseq)

    def note_told(self, uid: int, flags: frozenset[str], modseq: int) -> None:
        """``note_flags`` without building a ``MessageInfo`` (FETCH calls it per message)."""
        if uid in self._flags:
            self._flags[uid] = flags
            if modseq > self._modseq.get(uid, 0):
                self._modseq[uid] = modseq
            if modseq > self.highestmodseq:
                self.highestmodseq = modseq

    # -- events -----------------------------------------------------------------------
    def on_event(self, event: MailEvent) -> None:
        """EventBus subscriber: queue, never await (events.py)."""
        if isinstance(event, MailboxReset):
            if event.mailbox_id == self.mailbox_id:
                self.reset = True
                self._notify()
            return
        if not isinstance(event, MessagesAdded | FlagsChanged | MessagesExpunged):
            return
        if event.mailbox_id != self.mailbox_id:
            return
        if event.uidvalidity != self.uidvalidity:
            self.reset = True
            self._notify()
            return
        if isinstance(event, MessagesAdded):
            for info in event.messages:
                if info.uid not in self._flags:
                    self._pending_added[info.uid] = info
        elif isinstance(event, FlagsChanged):
            for info in event.messages:
                if info.uid in self._pending_added:
                    self._pending_added[info.uid] = info
                else:
                    self._pending_flags[info.uid] = info
        else:
            for uid in event.uids:
                if self._pending_added.pop(uid, None) is not None:
                    continue  # never announced: nothing to take back
                if uid in self._flags:
                    self._pending_expunge[uid] = None
                    self._pending_flags.pop(uid, None)
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake()

    @property
    def has_pending(self) -> bool:
        return bool(
            self._pending_expunge or self._pending_added or self._pending_flags or self.reset
        )

    # -- flushing -----------------------------------------------------------------------
    async def flush(
        self, backend: MailBackend, *, allow_expunge: bool, condstore: bool = False
    ) -> list[bytes]:
        """Untagged responses for the queued updates the RFC allows now, in order:
        EXPUNGE, EXISTS, RECENT, FETCH (FLAGS)."""
        lines: list[bytes] = []
        if allow_expunge and self._pending_expunge:
            for uid in self._pending_expunge:
                seq = self.seq_of(uid)
                if seq is None:
                    continue
                del self._uids[seq - 1]
                self._flags.pop(uid, None)
                self._modseq.pop(uid, None)
                self._recent.discard(uid)
                lines.append(b"* %d EXPUNGE\r\n" % seq)
            self._pending_expunge.clear()
        if self._pending_added:
            largest = self._uids[-1] if self._uids else 0
            fresh = sorted(
                (info for info in self._pending_added.values() if info.uid > largest),
                key=lambda info: info.uid,
            )
            self._pending_added.clear()
            if fresh:
                for info in fresh:
                    self._uids.append(info.uid)
                    self._flags[info.uid] = info.flags
                    self._modseq[info.uid] = info.modseq
                    self.highestmodseq = max(self.highestmodseq, info.modseq)
                self.uidnext = max(self.uidnext, fresh[-1].uid + 1)
                if not self.read_only:
                    # RFC 3501 §2.3.2: \Recent belongs to the first session told.
                    try:
                        claimed = await backend.claim_recent(
                            self.mailbox_id, [info.uid for info in fresh]
                        )
                    except BackendError:
                        # The mailbox is going away (a reset event follows); nobody
                        # owns \Recent then.
                        claimed = frozenset()
                    self._recent.update(claimed)
                lines.append(b"* %d EXISTS\r\n" % len(self._uids))
                lines.append(b"* %d RECENT\r\n" % len(self._recent))
        if self._pending_flags:
            updates = []
            for uid, info in self._pending_flags.items():
                seq = self.seq_of(uid)
                if seq is None or uid in self._pending_expunge:
                    continue
                self.highestmodseq = max(self.highestmodseq, info.modseq)
                known_modseq = self._modseq.get(uid, 0)
                if info.flags == self._flags[uid] and not (
                    condstore and info.modseq > known_modseq
                ):
                    continue
                if info.modseq < known_modseq:
                    continue  # stale: the client already saw a newer state
                self._flags[uid] = info.flags
                self._modseq[uid] = info.modseq
                updates.append((seq, uid))
            self._pending_flags.clear()
            for seq, uid in sorted(updates):
                lines.append(self.render_flags(seq, uid, condstore=condstore))
        return lines

    def render_flags(self, seq: int, uid: int, *, condstore: bool, with_uid: bool = True) -> bytes:
        """``* seq FETCH (UID u FLAGS (...) [MODSEQ (m)])`` from the known state."""
        parts = []
        if with_uid:
            parts.append(b"UID %d" % uid)
        parts.append(b"FLAGS (" + format_flags(self.flags_of(uid)) + b")")
        if condstore:
            parts.append(b"MODSEQ (%d)" % self.modseq_of(uid))
        return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"


def invalid_sequence(seqset: SequenceSet, exists: int) -> bool:
    """RFC 3501 §9: a message sequence number above the mailbox size is invalid (BAD).

    A range with ``*`` (``5:*`` in a mailbox of 3, ``1:*`` in an empty one) is accepted
    and means whatever exists, as Dovecot and most servers do: clients send those.
    """
    return any(a is not None and b is not None and max(a, b) > exists for a, b in seqset.ranges)


def format_flags(flags: Iterable[str]) -> bytes:
    """Flags are atoms (the parser only admits atoms), so they go out verbatim."""
    if isinstance(flags, frozenset):
        # A mailbox has few distinct flag sets and FETCH 1:* renders one per message.
        rendered = _RENDERED_FLAGS.get(flags)
        if rendered is None:
            if len(_RENDERED_FLAGS) >= _MAX_RENDERED_FLAGS:
                _RENDERED_FLAGS.clear()
            rendered = _RENDERED_FLAGS[flags] = _format_flags(flags)
        return rendered
    return _format_flags(flags)


def _format_flags(flags: Iterable[str]) -> bytes:
    return " ".join(sorted(flags, key=lambda f: (not f.startswith("\\"), f.lower()))).encode()


_RENDERED_FLAGS: dict[frozenset[str], bytes] = {}
_MAX_RENDERED_FLAGS = 4096
