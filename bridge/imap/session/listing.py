"""LIST and LSUB, with LIST-EXTENDED, SPECIAL-USE, CHILDREN and LIST-STATUS.

RFC 3501 §6.3.8-§6.3.9; RFC 5258 (LIST-EXTENDED: selection and return options,
CHILDINFO); RFC 6154 §2-§3 (special-use attributes, ``(SPECIAL-USE)`` selection and
return option); RFC 3348 (\\HasChildren/\\HasNoChildren); RFC 5819 (``RETURN (STATUS)``).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bridge.backend.errors import BackendError
from bridge.backend.types import HIERARCHY_DELIMITER, MailboxInfo
from bridge.imap.session.reply import Reply
from bridge.imap.session.status import mailbox_status, status_line
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged
from bridge.imap.wire.serialize import Atom
from bridge.imap.wire.utf7 import encode_mailbox

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: ``*`` matches anything, ``%`` anything but the delimiter.

    The reference is prefixed as written (the RFC leaves the join to the server; this is
    what Dovecot does). A leading ``INBOX`` matches case-insensitively (RFC 3501 §5.1).
    """
    full = reference + pattern
    # RFC 3501 §5.1 makes INBOX case-insensitive, so "inbox", "Inbox/%" and "inbox*"
    # must all reach INBOX: a leading INBOX followed by the end, the delimiter or a
    # wildcard is the name INBOX.
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in HIERARCHY_DELIMITER + "*%"):
        full = "INBOX" + full[5:]
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^" + re.escape(HIERARCHY_DELIMITER) + "]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _attributes(info: MailboxInfo, *, subscribed: bool, special_use: bool) -> list[Atom]:
    attrs = []
    if not info.selectable:
        attrs.append(Atom("\\Noselect"))
    attrs.append(Atom("\\HasChildren" if info.has_children else "\\HasNoChildren"))
    if special_use and info.special_use is not None:
        attrs.append(Atom(info.special_use.value))
    if subscribed and info.subscribed:
        attrs.append(Atom("\\Subscribed"))
    return attrs


def _line(verb: str, attrs: list[Atom], name: str, extra: list[object] | None = None) -> bytes:
    parts: list[object] = [Atom(verb), attrs, HIERARCHY_DELIMITER, encode_mailbox(name)]
    if extra:
        parts.append(extra)
    return untagged(parts)


async def list_(session: ImapSession, command: c.List) -> Reply:
    assert session.backend is not None
    selection = command.selection
    returns = command.return_opts
    if len(command.patterns) == 1 and command.patterns[0] == "":
        # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and root.
        await session.emit(untagged([Atom("LIST"), [Atom("\\Noselect")], HIERARCHY_DELIMITER, ""]))
        return Reply(text="LIST completed")
    regexes = [pattern_regex(command.reference, p) for p in command.patterns]
    mailboxes = await session.backend.list_mailboxes()
    only_subscribed = "SUBSCRIBED" in selection
    only_special = "SPECIAL-USE" in selection
    recursive = "RECURSIVEMATCH" in selection
    show_subscribed = only_subscribed or returns.subscribed
    # RFC 6154 §2 lets a server always return special-use attributes; clients that never
    # heard of RFC 6154 ignore unknown attributes, and many rely on them unasked.
    show_special = True
    # RFC 5258 §3.5 CHILDINFO: parents that do not match the selection themselves but
    # have a descendant that does.
    childinfo: set[str] = set()
    if recursive and only_subscribed:
        for m in mailboxes:
            if m.subscribed:
                parts = m.name.split(HIERARCHY_DELIMITER)
                for depth in range(1, len(parts)):
                    childinfo.add(HIERARCHY_DELIMITER.join(parts[:depth]))
    for info in mailboxes:
        if not any(r.fullmatch(info.name) for r in regexes):
            continue
        selected_ok = (not only_subscribed or info.subscribed) and (
            not only_special or info.special_use is not None
        )
        extra: list[object] | None = None
        if not selected_ok:
            if info.name in childinfo and not (only_special and info.special_use is None):
                extra = ["CHILDINFO", ["SUBSCRIBED"]]
            else:
                continue
        elif info.name in childinfo:
            extra = ["CHILDINFO", ["SUBSCRIBED"]]
        attrs = _attributes(info, subscribed=show_subscribed, special_use=show_special)
        await session.emit(_line("LIST", attrs, info.name, extra))
        if returns.status is not None and info.selectable and selected_ok:
            try:
                status = await mailbox_status(session, info.name)
            except BackendError:
                continue  # RFC 5819 §2: omit STATUS for a mailbox that cannot give one
            await session.emit(status_line(info.name, status, returns.status))
    return Reply(text="LIST completed")


async def lsub(session: ImapSession, command: c.Lsub) -> Reply:
    assert session.backend is not None
    regex = pattern_regex(command.reference, command.pattern)
    mailboxes = await session.backend.list_mailboxes()
    subscribed = {m.name for m in mailboxes if m.subscribed}
    sent: set[str] = set()
    for info in mailboxes:
        if info.name in subscribed and regex.fullmatch(info.name):
            attrs = [] if info.selectable else [Atom("\\Noselect")]
            await session.emit(_line("LSUB", attrs, info.name))
            sent.add(info.name)
    # RFC 3501 §6.3.9: with "%", an unsubscribed parent of a subscribed mailbox that
    # matches is returned with \Noselect.
    for name in sorted(subscribed):
        parts = name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(parts)):
            parent = HIERARCHY_DELIMITER.join(parts[:depth])
            if parent not in sent and parent not in subscribed and regex.fullmatch(parent):
                sent.add(parent)
                await session.emit(_line("LSUB", [Atom("\\Noselect")], parent))
    return Reply(text="LSUB completed")
