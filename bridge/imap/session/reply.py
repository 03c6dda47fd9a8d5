"""``Reply``: the tagged completion a command handler asks the session to send.

Must not import anything outside the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """A tagged ``OK``/``NO``/``BAD`` with an optional response code (RFC 3501 §7.1).

    A handler returns ``None`` instead when it has not finished yet (IDLE, or an
    AUTHENTICATE waiting for the client) and will send its own tagged reply later.
    """

    status: str = "OK"
    text: str = "completed"
    code: str | None = None


OK = Reply()
