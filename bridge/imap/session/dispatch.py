"""Which handler runs which command: the one map from command class to handler.

Must not import: bridge.graph, bridge.store, bridge.sync, bridge.imap.server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bridge.imap.session import (
    append,
    auth,
    copymove,
    expunge,
    fetch,
    idle,
    listing,
    mailbox,
    misc,
    search,
    select,
    status,
    store,
)
from bridge.imap.session.reply import Reply
from bridge.imap.wire import commands as c

Handler = Callable[[Any, Any], Awaitable[Reply | None]]

HANDLERS: dict[type, Handler] = {
    c.Capability: misc.capability,
    c.Noop: misc.noop,
    c.Check: misc.noop,  # RFC 3501 §6.4.1: a checkpoint; for us the same as NOOP
    c.Logout: misc.logout,
    c.Id: misc.id_,
    c.Enable: misc.enable,
    c.Namespace: misc.namespace,
    c.GetQuota: misc.getquota,
    c.GetQuotaRoot: misc.getquotaroot,
    c.StartTls: auth.starttls,
    c.Login: auth.login,
    c.Authenticate: auth.authenticate,
    c.Select: select.select,
    c.Examine: select.select,
    c.Close: select.close,
    c.Unselect: select.unselect,
    c.Create: mailbox.create,
    c.Delete: mailbox.delete,
    c.Rename: mailbox.rename,
    c.Subscribe: mailbox.subscribe,
    c.Unsubscribe: mailbox.unsubscribe,
    c.List: listing.list_,
    c.Lsub: listing.lsub,
    c.Status: status.status,
    c.Append: append.append,
    c.Fetch: fetch.fetch,
    c.Search: search.search,
    c.Store: store.store,
    c.Copy: copymove.copy_or_move,
    c.Move: copymove.copy_or_move,
    c.Expunge: expunge.expunge,
    c.Idle: idle.idle,
}
