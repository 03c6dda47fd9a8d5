"""Events :meth:`ServerConnection.next_event` returns besides commands.

Owns: :data:`NEED_DATA`, :class:`ContinuationNeeded`, :class:`ContinuationLine`,
:class:`ProtocolError` and :class:`LocalProtocolError`.  Standard library only.

Two kinds of error, as in h11: the PEER broke the protocol → a :class:`ProtocolError`
EVENT carrying the reply we suggest sending; WE (the session code) misused the connection
object → :class:`LocalProtocolError` is RAISED, because that is a bug to fix, not input
to answer.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NeedData:
    """Nothing complete yet: feed more bytes with ``receive_data``."""


#: The one instance :meth:`ServerConnection.next_event` returns.
NEED_DATA = NeedData()


@dataclass(frozen=True, slots=True)
class ContinuationNeeded:
    """The client sent a synchronising literal ``{size}`` and waits for ``+``.

    Reported once per literal.  Answer with ``conn.accept_literal()`` (returns the
    ``+ ...`` bytes to send) or ``conn.reject_literal(response)``.
    """

    tag: str
    size: int


@dataclass(frozen=True, slots=True)
class ContinuationLine:
    """A client line sent in reply to our ``+`` during AUTHENTICATE (RFC 3501 §6.2.2).

    ``data`` is the raw line without CRLF: base64, or ``*`` to cancel.  It is kept out
    of ``repr`` because it usually carries credentials.
    """

    data: bytes = field(repr=False)

    @property
    def cancelled(self) -> bool:
        # RFC 3501 §6.2.2: "If the client wishes to cancel an authentication exchange,
        # it issues a line consisting of a single '*'."
        return self.data == b"*"

    def decode_base64(self) -> bytes:
        """The decoded payload; raises ``ValueError`` when it is not valid base64."""
        try:
            return base64.b64decode(self.data, validate=True)
        except binascii.Error as exc:
            raise ValueError("invalid base64") from exc


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The client broke the protocol.

    ``response`` is the complete reply we suggest (``a1 BAD ...\\r\\n``, ``* BAD ...``,
    ``a1 NO [TOOBIG] ...`` or ``* BYE ...``).  When ``fatal`` the session should send it
    and close the connection: the byte stream can no longer be trusted.
    """

    tag: str | None
    response: bytes
    fatal: bool = False


class LocalProtocolError(RuntimeError):
    """The caller used :class:`ServerConnection` out of order (a bug in our code)."""
