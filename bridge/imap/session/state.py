"""The session state machine: every state, and which command is allowed in which.

Everything that decides whether a command may run lives in this one table (RFC 3501 §3,
§6.1-§6.4). Transitions happen in the handlers (LOGIN → AUTHENTICATED, SELECT →
SELECTED, CLOSE → AUTHENTICATED, LOGOUT → LOGOUT); the table only says what is allowed.

Must not import anything but ``bridge.imap.wire``.
"""

from __future__ import annotations

import enum

from bridge.imap.wire import commands as c


class SessionState(enum.Enum):
    """RFC 3501 §3."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset(
    {SessionState.NOT_AUTHENTICATED, SessionState.AUTHENTICATED, SessionState.SELECTED}
)
_NOT_AUTH = frozenset({SessionState.NOT_AUTHENTICATED})
_AUTH = frozenset({SessionState.AUTHENTICATED, SessionState.SELECTED})
_SELECTED = frozenset({SessionState.SELECTED})

#: command class -> states in which it is valid.
ALLOWED_STATES: dict[type, frozenset[SessionState]] = {
    # RFC 3501 §6.1: any state
    c.Capability: _ANY,
    c.Noop: _ANY,
    c.Logout: _ANY,
    c.Id: _ANY,  # RFC 2971 §3.1: "in any state"
    # RFC 3501 §6.2: not authenticated
    c.StartTls: _NOT_AUTH,
    c.Authenticate: _NOT_AUTH,
    c.Login: _NOT_AUTH,
    # RFC 3501 §6.3: authenticated (and therefore also selected)
    # RFC 5161 §3.1 says authenticated state; selected is allowed too, as Dovecot does.
    c.Enable: _AUTH,
    c.Select: _AUTH,
    c.Examine: _AUTH,
    c.Create: _AUTH,
    c.Delete: _AUTH,
    c.Rename: _AUTH,
    c.Subscribe: _AUTH,
    c.Unsubscribe: _AUTH,
    c.List: _AUTH,
    c.Lsub: _AUTH,
    c.Status: _AUTH,
    c.Append: _AUTH,
    c.Namespace: _AUTH,  # RFC 2342 §5
    c.GetQuota: _AUTH,  # RFC 9208 §4
    c.GetQuotaRoot: _AUTH,
    c.Idle: _AUTH,  # RFC 2177 §3: allowed in authenticated state too
    # RFC 3501 §6.4: selected
    c.Check: _SELECTED,
    c.Close: _SELECTED,
    c.Unselect: _SELECTED,  # RFC 3691
    c.Expunge: _SELECTED,
    c.Search: _SELECTED,
    c.Fetch: _SELECTED,
    c.Store: _SELECTED,
    c.Copy: _SELECTED,
    c.Move: _SELECTED,  # RFC 6851
}


def is_allowed(command: object, state: SessionState) -> bool:
    return state in ALLOWED_STATES.get(type(command), frozenset())


#: Commands during which EXPUNGE responses must be held back (RFC 3501 §7.4.1):
#: FETCH, STORE and SEARCH by sequence number. The UID variants may see them.
def defers_expunge(command: object) -> bool:
    if isinstance(command, c.Fetch | c.Store | c.Search):
        return not command.uid
    return False
