"""The submission logic: aiosmtpd hooks that authenticate, check senders, and send via Graph.

Theory of operation
-------------------
aiosmtpd parses the SMTP dialogue; ``SubmissionProtocol`` (an ``aiosmtpd.smtp.SMTP``)
replaces its PLAIN and LOGIN mechanisms because aiosmtpd 1.4's ``authenticator`` hook is
synchronous while our directory is not (password hashes are checked in a thread). The
``authenticator`` argument is still set, to a function that always refuses, so that no
mechanism we did not write can ever log anyone in. ``SubmissionHandler`` holds the hooks:

* ``AUTH``: the directory decides; failures are delayed and rate-limited per client
  address and per login (``authlimit``); a locked-out attempt is not even checked.
* ``MAIL FROM``: the identity must be allowed to send as the address (RFC 6409 §6.1,
  ``550 5.7.1``). Every MAIL needs AUTH first (RFC 6409 §4.3, aiosmtpd answers 530).
* ``RCPT TO``: recorded; non-ASCII addresses only with SMTPUTF8 (RFC 6531 §3.5).
* end of DATA: the header ``From:`` (and ``Sender:`` when present) must be addresses the
  identity may send as too (RFC 6409 §6.3, ``550 5.7.1``). The mailbox whose Remote sends
  is the one named by the header From — what recipients see as the author — so that a
  message "From: shared@" goes out through the shared mailbox and its copy lands in the
  shared mailbox's Sent Items (GRAPH-MAIL-FACTS §13.6).

Recipients: Graph has no SMTP envelope; it delivers to the To/Cc/Bcc of the MIME
(GRAPH-MAIL-FACTS §13.2). So:

* envelope recipients missing from the headers (a client's Bcc, or a list expansion)
  are added to a ``Bcc:`` field at the byte level — Exchange delivers to them and does
  not show Bcc to the other recipients;
* header recipients missing from the envelope are REFUSED with ``550 5.7.0`` (RFC 6409
  §6.3, "violates site policy"). The alternatives are worse: sending anyway delivers
  mail the client did not ask to deliver (a client that fans one message out as one
  transaction per recipient would make every recipient get N copies); deleting them
  from the headers changes what every recipient reads and what lands in Sent Items.
  A refusal is loud, names the address, and loses nothing.

Before sending, a message without a valid ``Message-ID`` gets one (RFC 6409 §8.3), so
that an uncertain send can be found again in Sent Items. ``250`` is answered only after
``send_mime`` returned (Graph answered 202). Failures map to replies in ``replies``;
``OutcomeUnknown`` is recorded in ``UncertainSends`` and a retry of the same Message-ID
first looks in the sending mailbox's Sent Items. The Graph call runs in its own task,
shielded from the connection: a client that hangs up mid-send cannot cancel a request
that may already have reached Graph, so its outcome is always recorded — and when Graph
accepted it but the client never heard the 250, the Message-ID is recorded as uncertain
too, so the client's retry is answered from Sent Items instead of sending twice.

One log line per submission: login, Message-ID, recipient count, size, outcome, Graph
request id — never addresses' passwords or the content.

Must not import ``bridge.graph``, ``bridge.store`` or ``bridge.config``: Graph is reached
only through ``Remote``, accounts only through ``SubmissionDirectory``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import make_msgid
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from bridge.backend.remote import OutcomeUnknown, Remote, RemoteError, SendResult
from bridge.backend.types import AccountIdentity
from bridge.smtp.accounts import SubmissionDirectory
from bridge.smtp.authlimit import AuthFailureLimiter
from bridge.smtp.headers import (
    HeaderProblem,
    add_bcc,
    addresses,
    insert_field,
    normalise_address,
    parse_header_block,
    replace_field,
    valid_message_id,
)
from bridge.smtp.replies import Reply, one_line, reply_for_remote_error
from bridge.smtp.uncertain import UncertainSends

log = logging.getLogger(__name__)

#: ``on_sent(identity, mailbox_remote, message_id, mime)``: called after Graph accepted a
#: message (also when a retry found an uncertain send in Sent Items), so the composition
#: root can recognise a client's later APPEND of the same message to Sent.
OnSent = Callable[[AccountIdentity, Remote, str, bytes], "Awaitable[None] | None"]

AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"  # RFC 4954 §6
AUTH_TEMPORARY = "454 4.7.0 Temporary authentication failure"  # RFC 4954 §6
AUTH_LOCKED = "454 4.7.0 Too many failed authentication attempts; try again later"

_ADDRESS_HEADERS = ("To", "Cc", "Bcc")


@dataclass(frozen=True, slots=True)
class SubmissionPolicy:
    """Knobs of the submission hooks (the server passes them through)."""

    max_recipients: int = 500  # Exchange Online's per-message limit (FACTS §13.1)
    # A retry that arrives sooner than this after an uncertain send, and does not find
    # the message in Sent Items yet, is deferred again instead of sent: Exchange files
    # the Sent Items copy a little after the 202, and a second send is a duplicate.
    uncertain_settle_seconds: float = 120.0


def _refuse_unknown_mechanism(*_args: Any) -> AuthResult:
    """aiosmtpd ``authenticator``: reached only by a mechanism we did not implement."""
    return AuthResult(success=False, handled=False, message=AUTH_INVALID)


def _peer_host(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


class SubmissionHandler:
    """aiosmtpd handler: one per server, shared by all its connections."""

    def __init__(
        self,
        directory: SubmissionDirectory,
        *,
        hostname: str,
        limiter: AuthFailureLimiter,
        failure_delay: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_sent: OnSent | None = None,
        uncertain: UncertainSends | None = None,
        policy: SubmissionPolicy = SubmissionPolicy(),
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._directory = directory
        #: Called with each submission's outcome (sent/deferred/refused) for metrics.
        self._on_outcome = on_outcome
        self._hostname = hostname
        self._limiter = limiter
        self._failure_delay = failure_delay
        self._sleep = sleep
        self._on_sent = on_sent
        self.uncertain = uncertain if uncertain is not None else UncertainSends()
        self._policy = policy
        self._sent_items: dict[str, str] = {}  # mailbox id -> Sent Items folder id
        self._sends: set[asyncio.Task[Any]] = set()  # sends in flight, and their records

    # -- AUTH ----------------------------------------------------------------------

    async def authenticate(
        self, session: Session, login_raw: bytes, password_raw: bytes, *, usable: bool = True
    ) -> AuthResult:
        """Check one AUTH attempt. ``usable=False`` marks an attempt refused before any
        password check (e.g. a PLAIN authorization identity we do not support); it still
        counts as a failure and is delayed like one."""
        peer = _peer_host(session)
        login = login_raw.decode("utf-8", errors="replace")
        password: str | None = None
        if usable:
            try:
                password = password_raw.decode("utf-8")
            except UnicodeDecodeError:
                password = None
        if self._limiter.blocked(peer, login):
            log.warning("smtp auth locked out peer=%s login=%r", peer, login)
            await self._sleep(self._failure_delay)
            return AuthResult(success=False, handled=False, message=AUTH_LOCKED)
        identity: AccountIdentity | None = None
        if password is not None:
            try:
                identity = await self._directory.authenticate(login, password, peer)
            except RemoteError as error:
                log.warning("smtp auth unavailable peer=%s login=%r: %s", peer, login, error)
                return AuthResult(success=False, handled=False, message=AUTH_TEMPORARY)
        if identity is None:
            self._limiter.record_failure(peer, login)
            log.info("smtp auth failed peer=%s login=%r", peer, login)
            # Delay every failure: a guesser pays for each try (RFC 4954 §9 asks for
            # protection against password guessing).
            await self._sleep(self._failure_delay)
            return AuthResult(success=False, handled=False, message=AUTH_INVALID)
        self._limiter.record_success(login)
        log.info("smtp auth ok peer=%s login=%r", peer, login)
        return AuthResult(success=True, auth_data=identity)

    # -- aiosmtpd hooks ------------------------------------------------------------

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # the 5-argument hook must set it (aiosmtpd 1.4)
        # RFC 2920: aiosmtpd reads commands one at a time from a buffered stream and
        # answers them in order, which is all PIPELINING asks of a server.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        identity = _identity(session)
        if identity is None:  # aiosmtpd's auth_required already answered 530 before this
            return "530 5.7.0 Authentication required"
        if not envelope.smtp_utf8 and not address.isascii():
            return "553 5.6.7 Non-ASCII addresses require SMTPUTF8"  # RFC 6531 §3.5
        if self._directory.sender_remote(identity, address) is None:
            # RFC 6409 §6.1
            return f"550 5.7.1 {one_line(identity.login)} may not send as {one_line(address)}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not envelope.smtp_utf8 and not address.isascii():
            return "553 5.6.7 Non-ASCII addresses require SMTPUTF8"  # RFC 6531 §3.5
        if "@" not in address:
            return "501 5.1.3 Recipient address must be fully qualified"  # RFC 6409 §4.2
        if len(envelope.rcpt_tos) >= self._policy.max_recipients:
            return "452 4.5.3 Too many recipients"  # RFC 5321 §4.5.3.1.10
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        identity = _identity(session)
        if identity is None:
            return "530 5.7.0 Authentication required"
        raw = envelope.original_content or b""
        started = time.monotonic()
        recipients = len(envelope.rcpt_tos)
        prepared = self._prepare(identity, envelope, raw)
        if isinstance(prepared, Reply):
            self._log(identity, None, recipients, len(raw), prepared, None, started)
            return str(prepared)
        remote, mime, message_id = prepared
        task = asyncio.get_running_loop().create_task(
            self._deliver_and_log(identity, remote, mime, message_id, recipients, started)
        )
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        # The shield keeps the Graph request alive if this connection is cancelled:
        # its outcome must still be recorded (see module docstring).
        try:
            reply = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The client is gone before hearing the outcome; if Graph accepts the
            # message, the client will retry it, so remember it like an uncertain send.
            task.add_done_callback(
                lambda done: self._reply_lost(done, remote.mailbox.id, message_id)
            )
            raise
        return str(reply)

    def _reply_lost(self, task: asyncio.Task[Reply], mailbox_id: str, message_id: str) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        if task.result().code == 250:
            log.info("smtp client left before the reply message_id=%s", message_id)
            self.uncertain.record(mailbox_id, message_id)
            saving = asyncio.get_running_loop().create_task(self.uncertain.save())
            self._sends.add(saving)
            saving.add_done_callback(self._sends.discard)

    async def drain(self) -> None:
        """Wait for sends in flight (used at shutdown: never abandon a Graph request)."""
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)

    # -- the message -----------------------------------------------------------------

    def _prepare(
        self, identity: AccountIdentity, envelope: Envelope, raw: bytes
    ) -> Reply | tuple[Remote, bytes, str]:
        block = parse_header_block(raw)
        try:
            authors = addresses(block.get_all("From"))
            senders = addresses(block.get_all("Sender"))
            header_rcpts = addresses(f for n in _ADDRESS_HEADERS for f in block.get_all(n))
        except HeaderProblem as problem:
            return Reply(554, "5.6.0", str(problem))  # RFC 6409 §5.1 / §4.2
        if not authors:
            return Reply(554, "5.6.0", "The message has no From: address")  # RFC 5322 §3.6
        if len(authors) > 1 and not senders:
            # RFC 5322 §3.6.2: several authors require a Sender field naming one mailbox.
            return Reply(554, "5.6.0", "A From: with several addresses needs a Sender: field")
        for address in [*authors, *senders]:
            if self._directory.sender_remote(identity, address) is None:
                return Reply(550, "5.7.1", f"{identity.login} may not send as {address}")
        sending_address = senders[0] if len(authors) > 1 else authors[0]
        remote = self._directory.sender_remote(identity, sending_address)
        if remote is None:  # the directory changed its mind between two calls
            return Reply(550, "5.7.1", f"{identity.login} may not send as {sending_address}")

        envelope_keys = {normalise_address(a): a for a in envelope.rcpt_tos}
        header_keys = {normalise_address(a) for a in header_rcpts}
        header_only = [a for a in header_rcpts if normalise_address(a) not in envelope_keys]
        if header_only:
            return Reply(
                550,
                "5.7.0",
                f"Header recipient {header_only[0]} is not in the envelope (RCPT TO); "
                "Microsoft 365 would deliver to it, so the message is refused",
            )
        envelope_only = [a for k, a in envelope_keys.items() if k not in header_keys]

        mime = add_bcc(raw, block, envelope_only)
        block = parse_header_block(mime) if envelope_only else block
        field = block.first("Message-ID")
        if field is not None and valid_message_id(field.value):
            message_id = field.value.strip()
        else:
            message_id = make_msgid(domain=self._hostname)  # RFC 6409 §8.3
            if field is None:
                mime = insert_field(mime, block, "Message-ID", message_id)
            else:
                mime = replace_field(mime, field, block.eol, "Message-ID", message_id)
        return remote, mime, message_id

    async def _deliver_and_log(
        self,
        identity: AccountIdentity,
        remote: Remote,
        mime: bytes,
        message_id: str,
        recipients: int,
        started: float,
    ) -> Reply:
        reply, request_id = await self._deliver(identity, remote, mime, message_id)
        self._log(identity, message_id, recipients, len(mime), reply, request_id, started)
        return reply

    async def _deliver(
        self, identity: AccountIdentity, remote: Remote, mime: bytes, message_id: str
    ) -> tuple[Reply, str | None]:
        mailbox_id = remote.mailbox.id
        entry = self.uncertain.get(mailbox_id, message_id)
        if entry is not None:
            try:
                found = await self._in_sent_items(remote, message_id)
            except RemoteError as error:
                return reply_for_remote_error(error), error.request_id
            if found:
                self.uncertain.discard(mailbox_id, message_id)
                await self.uncertain.save()
                await self._notify_sent(identity, remote, message_id, mime)
                return Reply(250, "2.0.0", f"Already sent {message_id}"), None
            if self.uncertain.age(entry) < self._policy.uncertain_settle_seconds:
                return Reply(
                    451,
                    "4.4.2",
                    "The previous attempt is still unconfirmed; try again in a few minutes",
                ), None
        # Written down before the request leaves: if the bridge dies while Graph holds
        # it, the client's retry after the restart looks in Sent Items first.
        self.uncertain.record(mailbox_id, message_id)
        try:
            await self.uncertain.save()
        except Exception:
            log.exception("cannot record the send attempt message_id=%s", message_id)
            self.uncertain.discard(mailbox_id, message_id)
            return Reply(451, "4.3.0", "Cannot record the attempt; try again later"), None
        try:
            result: SendResult = await remote.send_mime(mime)
        except OutcomeUnknown as error:
            await self.uncertain.save()  # the record stays: Graph may have it
            return reply_for_remote_error(error), error.request_id
        except RemoteError as error:
            self.uncertain.discard(mailbox_id, message_id)  # refused: nothing was sent
            await self.uncertain.save()
            return reply_for_remote_error(error), error.request_id
        except Exception:
            log.exception("smtp send failed unexpectedly message_id=%s", message_id)
            # Unknown failure: keep the record, a retry checks Sent Items first.
            return Reply(451, "4.3.0", "Internal error; try again later"), None
        self.uncertain.discard(mailbox_id, message_id)
        await self.uncertain.save()
        await self._notify_sent(identity, remote, message_id, mime)
        return Reply(250, "2.0.0", f"Accepted by Microsoft 365 {message_id}"), result.request_id

    async def _in_sent_items(self, remote: Remote, message_id: str) -> bool:
        folder_id = self._sent_items.get(remote.mailbox.id)
        if folder_id is None:
            folders = await remote.list_folders()
            for folder in folders:
                if folder.well_known == "sentitems":
                    folder_id = folder.id
                    self._sent_items[remote.mailbox.id] = folder_id
                    break
            else:
                return False
        return bool(await remote.find_by_internet_message_id(folder_id, message_id))

    async def _notify_sent(
        self, identity: AccountIdentity, remote: Remote, message_id: str, mime: bytes
    ) -> None:
        if self._on_sent is None:
            return
        try:
            outcome = self._on_sent(identity, remote, message_id, mime)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            # The message is sent; a failing observer must not turn that into an error
            # the client would retry (and so send twice).
            log.exception("smtp on_sent callback failed message_id=%s", message_id)

    def _log(
        self,
        identity: AccountIdentity,
        message_id: str | None,
        recipients: int,
        size: int,
        reply: Reply,
        request_id: str | None,
        started: float,
    ) -> None:
        if self._on_outcome is not None:
            self._on_outcome(reply.outcome)
        log.info(
            "smtp submission login=%s message_id=%s recipients=%d size=%d outcome=%s "
            "reply=%d/%s request_id=%s ms=%d",
            identity.login,
            message_id or "-",
            recipients,
            size,
            reply.outcome,
            reply.code,
            reply.enhanced,
            request_id or "-",
            (time.monotonic() - started) * 1000,
        )


def _identity(session: Session) -> AccountIdentity | None:
    if not session.authenticated:
        return None
    data = session.auth_data
    return data if isinstance(data, AccountIdentity) else None


class SubmissionProtocol(SMTP):
    """aiosmtpd's SMTP with AUTH PLAIN and LOGIN that await the directory."""

    # RFC 5321 §4.5.3.1.6 limits text lines to 1000 octets, but HTML mail from real
    # clients often exceeds it; Graph accepts long lines, so refusing them would only
    # lose mail (Postfix likewise accepts them).
    line_length_limit = 64 * 1024

    def __init__(self, handler: SubmissionHandler, **kwargs: Any) -> None:
        super().__init__(handler, authenticator=_refuse_unknown_mechanism, **kwargs)
        self._submission = handler

    async def auth_PLAIN(self, _: SMTP, args: list[str]) -> AuthResult:
        # RFC 4616 §2: message = [authzid] NUL authcid NUL passwd
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            decoded = await self._initial_response(args[1])
            if decoded is None:
                return AuthResult(success=False, handled=True)
            blob = decoded
        assert isinstance(blob, bytes)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Cannot split the PLAIN response")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        assert self.session is not None
        # RFC 4616 §2: we do not let one user act as another, so an authorization
        # identity other than the login itself fails.
        return await self._submission.authenticate(
            self.session, login, password, usable=not authzid or authzid == login
        )

    async def auth_LOGIN(self, _: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            decoded = await self._initial_response(args[1])
            if decoded is None:
                return AuthResult(success=False, handled=True)
            login = decoded
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(login, bytes) and isinstance(password, bytes)
        assert self.session is not None
        return await self._submission.authenticate(self.session, login, password)

    async def _initial_response(self, text: str) -> bytes | None:
        if text == "=":  # RFC 4954 §4: "=" is an empty initial response
            return b""
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            await self.push("501 5.5.2 Cannot decode base64")
            return None
