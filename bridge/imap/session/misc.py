"""CAPABILITY, NOOP, LOGOUT, CHECK, ID, ENABLE, NAMESPACE, GETQUOTA, GETQUOTAROOT.

RFC 3501 §6.1.1-§6.1.3 and §6.4.1; RFC 2971 (ID); RFC 5161 (ENABLE); RFC 2342
(NAMESPACE); RFC 9208 §4.2-§4.3 (QUOTA).

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.backend.errors import MailboxNotFound
from bridge.backend.types import Quota
from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c
from bridge.imap.wire.responses import untagged
from bridge.imap.wire.serialize import Atom
from bridge.imap.wire.utf7 import encode_mailbox

if TYPE_CHECKING:
    from bridge.imap.session.core import ImapSession

VERSION = "0.1.0"


async def capability(session: ImapSession, command: c.Capability) -> Reply:
    await session.emit(untagged("CAPABILITY " + " ".join(session.capabilities())))
    return Reply(text="CAPABILITY completed")


async def noop(session: ImapSession, command: c.Noop | c.Check) -> Reply:
    # RFC 3501 §6.1.2: NOOP is how a client polls; let the backend refresh first so that
    # the update flush after this handler has something fresh to report.
    if session.selected is not None and session.backend is not None:
        await session.backend.poke(session.selected.mailbox_id)
    return Reply(text=f"{type(command).__name__.upper()} completed")


async def logout(session: ImapSession, command: c.Logout) -> Reply:
    # RFC 3501 §6.1.3: BYE first, then the tagged OK.
    await session.emit(untagged("BYE Logging out"))
    await session.finish(command.tag, Reply(text="LOGOUT completed"))
    await session.close()
    return Reply(text="LOGOUT completed")


async def id_(session: ImapSession, command: c.Id) -> Reply:
    # RFC 2971 §3.2: the server's own field list (never the backend's internals).
    await session.emit(untagged([Atom("ID"), ["name", "graph-mail-bridge", "version", VERSION]]))
    return Reply(text="ID completed")


#: Extensions ENABLE can turn on (RFC 5161 §3.1: unknown ones are silently ignored).
ENABLEABLE = frozenset({"CONDSTORE"})


async def enable(session: ImapSession, command: c.Enable) -> Reply:
    newly = [
        cap for cap in command.capabilities if cap in ENABLEABLE and cap not in session.enabled
    ]
    session.enabled.update(newly)
    # RFC 5161 §3.2: "* ENABLED" lists only what this command enabled.
    await session.emit(untagged(" ".join(["ENABLED", *newly])))
    if "CONDSTORE" in newly:
        await session.enable_condstore()
    return Reply(text="ENABLE completed")


async def namespace(session: ImapSession, command: c.Namespace) -> Reply:
    # RFC 2342 §5: one personal namespace with the empty prefix; no other users', no
    # shared ones (a login reaches only its own mailbox).
    await session.emit(untagged([Atom("NAMESPACE"), [["", "/"]], None, None]))
    return Reply(text="NAMESPACE completed")


def _quota_line(quota: Quota) -> bytes:
    # RFC 9208 §5.1: STORAGE in units of 1024 octets.
    return untagged([Atom("QUOTA"), quota.root, [Atom("STORAGE"), quota.used_kib, quota.limit_kib]])


async def getquota(session: ImapSession, command: c.GetQuota) -> Reply:
    assert session.backend is not None
    quota = await session.backend.quota()
    if quota is None or not session.quota_supported or command.root != quota.root:
        raise MailboxNotFound("No such quota root.")
    await session.emit(_quota_line(quota))
    return Reply(text="GETQUOTA completed")


async def getquotaroot(session: ImapSession, command: c.GetQuotaRoot) -> Reply:
    assert session.backend is not None
    # RFC 9208 §4.3: the mailbox must exist; every mailbox shares the account's root.
    await session.backend.status(command.mailbox)
    quota = await session.backend.quota() if session.quota_supported else None
    name = encode_mailbox(command.mailbox)
    if quota is None:
        await session.emit(untagged([Atom("QUOTAROOT"), name]))
    else:
        await session.emit(untagged([Atom("QUOTAROOT"), name, quota.root]))
        await session.emit(_quota_line(quota))
    return Reply(text="GETQUOTAROOT completed")
