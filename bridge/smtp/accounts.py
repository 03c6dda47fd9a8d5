"""The account-side seam of SMTP submission: who may log in, and as whom they may send.

The composition root implements ``SubmissionDirectory`` over the account store and the
Graph client; the submission server knows nothing else about accounts. Must not import
anything but ``bridge.backend`` types and the standard library.
"""

from __future__ import annotations

from typing import Protocol

from bridge.backend.remote import Remote
from bridge.backend.types import AccountIdentity


class SubmissionDirectory(Protocol):
    async def authenticate(self, login: str, password: str, peer: str) -> AccountIdentity | None:
        """The identity for a correct login and password, else None.

        May raise ``RemoteError`` when it cannot decide right now (the server answers
        ``454 4.7.0``, RFC 4954 §6). ``peer`` is the client's IP address, for logs.
        """
        ...

    def sender_remote(self, identity: AccountIdentity, from_address: str) -> Remote | None:
        """The Remote of the mailbox to send as when ``identity`` sends from
        ``from_address`` (the account's own mailbox, or a shared mailbox it may send
        as), or None if this identity may not send as that address. Addresses compare
        case-insensitively."""
        ...
