"""``GraphRemote``: one mailbox through Microsoft Graph, implementing ``Remote``.

Owns the mapping of every ``Remote`` method onto Graph calls (facts §6-§18): folder
listing and well-known roles, per-folder message delta, flags / move / copy / delete in
JSON batches, APPEND (MIME draft or JSON non-draft plus attachments) and submission
(sendMail with MIME, or draft + attachments + send for large messages).

Multi-step writes (create, then attachments, then move / flag) are all-or-nothing as far
as Graph allows: if a later step fails, the half-built message is deleted again before
the error is raised, so a caller that looks for the message by Message-ID before
retrying finds nothing and retries cleanly. If that clean-up fails too, the error is
``OutcomeUnknown``.

Must not import anything but httpx, the standard library, ``bridge.backend.remote`` and
``bridge.errors`` (and the sibling modules of ``bridge.graph``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bridge.backend.remote import (
    DeleteMode,
    DeltaPage,
    FlagChange,
    NewMessage,
    OutcomeUnknown,
    RemoteError,
    RemoteFolder,
    RemoteMailbox,
    RemoteMessage,
    RemoteRejected,
    RemoteUnavailable,
    SendResult,
    Subscription,
)
from bridge.graph.client import BatchRequest, GraphApp, query, seg
from bridge.graph.compose import (
    MAX_REQUEST_BYTES,
    SMALL_ATTACHMENT,
    Attachment,
    b64,
    chunks,
    compose_for_append,
    split_large_mime,
)
from bridge.graph.errors import MAIL_READWRITE, MAIL_SEND
from bridge.graph.model import (
    LAST_VERB_EXPAND,
    MESSAGE_SELECT,
    PID_ICON_INDEX,
    PID_LAST_VERB,
    ROOT,
    WELL_KNOWN,
    folder_from_json,
    icon_for_verb,
    message_from_json,
)

log = logging.getLogger(__name__)

# Facts §6.3: the default folder page is 10; ask for many at once.
FOLDER_PAGE = 250
# Facts §13.5: a JSON create body should stay clear of the ~4 MB request limit.
MAX_JSON_CREATE = 3_500_000
# The smallest delta page we shrink to after gateway time-outs (facts §4.2: on 504
# "retry with smaller pages").
MIN_DELTA_PAGE = 10
# 404 codes that mean the whole mailbox is unusable, not one folder missing (facts §3).
_MAILBOX_GONE = frozenset(
    c.lower()
    for c in (
        "MailboxNotEnabledForRESTAPI",
        "ErrorInvalidUser",
        "ResourceNotFound",
        "Request_ResourceNotFound",
    )
)


class GraphRemote:
    """One mailbox. Create with ``GraphApp.remote(mailbox)``.

    ``delta_page_size`` is sent as ``Prefer: odata.maxpagesize`` on every delta request.
    Default 200: delta pages carry only ~10 small ``$select``ed properties (about 1 KB
    per message), so 200 keeps a page near 200 KB — far from the response sizes that
    make Graph time out (504s come from full payloads, facts §7.2) — while halving the
    round trips of an initial sync compared with 100. A 504 still halves the page size
    for that request, down to 10.
    """

    def __init__(
        self, app: GraphApp, mailbox: RemoteMailbox, *, delta_page_size: int = 200
    ) -> None:
        self.app = app
        self.mailbox = mailbox
        self._key = mailbox.id
        self._u = "/users/" + seg(mailbox.id)
        self._page_size = max(MIN_DELTA_PAGE, delta_page_size)
        self._well_known: dict[str, str] | None = None
        self._wk_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"GraphRemote({self.mailbox.user_principal_name!r})"

    def _msg(self, message_id: str) -> str:
        return f"{self._u}/messages/{seg(message_id)}"

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        kw.setdefault("needs", (MAIL_READWRITE,))
        resp = await self.app.request(method, path, mailbox=self._key, **kw)
        return resp.json() if resp.content else {}

    # --- folders ------------------------------------------------------------------------

    async def well_known_folders(self) -> dict[str, str]:
        """Well-known name → folder id (one ``$batch``, cached: folder ids never change,
        facts §6.1). Names the mailbox lacks (often ``archive``) are absent."""
        async with self._wk_lock:
            if self._well_known is None:
                names = (*WELL_KNOWN, ROOT)
                requests = [
                    BatchRequest(
                        str(i), "GET", f"{self._u}/mailFolders/{name}{query({'$select': 'id'})}"
                    )
                    for i, name in enumerate(names)
                ]
                answers = await self.app.batch(self._key, requests, idempotent=True)
                found: dict[str, str] = {}
                for i, name in enumerate(names):
                    answer = answers[str(i)]
                    err = self.app.batch_error(answer, mailbox=self._key, idempotent=True)
                    if err is not None:
                        if err.status == 404 and (err.code or "").lower() not in _MAILBOX_GONE:
                            continue  # a mailbox without "archive" is normal
                        raise err
                    body = getattr(answer, "body", None)
                    fid = body.get("id") if isinstance(body, dict) else None
                    if isinstance(fid, str):
                        found[name] = fid
                self._well_known = found
            return dict(self._well_known)

    async def folder_id(self, name_or_id: str) -> str:
        """A well-known name (``drafts``) or an id → the folder id."""
        wk = await self.well_known_folders()
        return wk.get(name_or_id.lower(), name_or_id)

    async def _parent(self, data: dict[str, Any]) -> str | None:
        parent = data.get("parentFolderId")
        if not isinstance(parent, str) or not parent:
            return None
        root = (await self.well_known_folders()).get(ROOT)
        return None if parent == root else parent

    async def list_folders(self, include_hidden: bool = False) -> list[RemoteFolder]:
        wk = await self.well_known_folders()
        roles = {fid: name for name, fid in wk.items() if name != ROOT}
        hidden = {"includeHiddenFolders": include_hidden}
        top = await self.app.get_all(
            f"{self._u}/mailFolders{query({**hidden, '$top': FOLDER_PAGE})}", mailbox=self._key
        )
        result: list[RemoteFolder] = []
        seen: set[str] = set()
        level: list[tuple[dict[str, Any], str | None]] = [(d, None) for d in top]
        while level:  # breadth first: parents before children (Remote.list_folders)
            added: list[RemoteFolder] = []
            for data, parent in level:
                folder = folder_from_json(
                    data, parent_id=parent, well_known=roles.get(str(data.get("id")))
                )
                if folder.id in seen:
                    continue
                seen.add(folder.id)
                result.append(folder)
                added.append(folder)
            parents = [f for f in added if f.child_count > 0]
            lists = await asyncio.gather(
                *(
                    self.app.get_all(
                        f"{self._u}/mailFolders/{seg(f.id)}/childFolders"
                        f"{query({**hidden, '$top': FOLDER_PAGE})}",
                        mailbox=self._key,
                    )
                    for f in parents
                )
            )
            level = [
                (child, f.id)
                for f, children in zip(parents, lists, strict=True)
                for child in children
            ]
        return result

    async def _folder_result(self, data: Any) -> RemoteFolder:
        if not isinstance(data, dict):
            raise RemoteUnavailable("Graph answered a folder change without the folder.")
        wk = await self.well_known_folders()
        roles = {fid: name for name, fid in wk.items() if name != ROOT}
        fid = str(data.get("id"))
        return folder_from_json(data, parent_id=await self._parent(data), well_known=roles.get(fid))

    async def create_folder(self, parent_id: str | None, name: str) -> RemoteFolder:
        path = (
            f"{self._u}/mailFolders"
            if parent_id is None
            else f"{self._u}/mailFolders/{seg(parent_id)}/childFolders"
        )
        data = await self._request(
            "POST", path, json_body={"displayName": name}, what="folder create"
        )
        return await self._folder_result(data)

    async def rename_folder(self, folder_id: str, name: str) -> RemoteFolder:
        data = await self._request(
            "PATCH", f"{self._u}/mailFolders/{seg(folder_id)}", json_body={"displayName": name}
        )
        return await self._folder_result(data)

    async def move_folder(self, folder_id: str, parent_id: str | None) -> RemoteFolder:
        data = await self._request(
            "POST",
            f"{self._u}/mailFolders/{seg(folder_id)}/move",
            json_body={"destinationId": parent_id or ROOT},
            what="folder move",
        )
        return await self._folder_result(data)

    async def delete_folder(self, folder_id: str) -> None:
        await self._request("DELETE", f"{self._u}/mailFolders/{seg(folder_id)}")

    # --- reading messages ---------------------------------------------------------------

    def _select(self) -> str:
        return query({"$select": MESSAGE_SELECT, "$expand": LAST_VERB_EXPAND})

    async def message_delta(self, folder_id: str, link: str | None) -> DeltaPage:
        url = link or f"{self._u}/mailFolders/{seg(folder_id)}/messages/delta{self._select()}"
        size = self._page_size
        while True:
            try:
                # Facts §16.1: Prefer headers are not in the token; send them every time.
                resp = await self.app.request(
                    "GET",
                    url,
                    mailbox=self._key,
                    headers={"Prefer": f"odata.maxpagesize={size}"},
                    retry_gateway_timeout=False,
                )
                break
            except RemoteUnavailable as exc:
                if exc.status != 504 or size <= MIN_DELTA_PAGE:
                    raise
                size = max(MIN_DELTA_PAGE, size // 2)
                log.info("delta page timed out; retrying with maxpagesize=%d", size)
        data = resp.json()
        messages: list[RemoteMessage] = []
        removed: list[str] = []
        for item in data.get("value") or []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            if "@removed" in item:
                removed.append(item["id"])
            else:
                messages.append(message_from_json(item, folder_id=folder_id))
        next_link = data.get("@odata.nextLink")
        delta_link = data.get("@odata.deltaLink")
        if isinstance(next_link, str) and next_link:
            return DeltaPage(tuple(messages), tuple(removed), next_link=next_link)
        if isinstance(delta_link, str) and delta_link:
            return DeltaPage(tuple(messages), tuple(removed), delta_link=delta_link)
        raise RemoteUnavailable("Graph returned a delta page without a next or delta link.")

    async def get_message(self, message_id: str) -> RemoteMessage:
        data = await self._request("GET", f"{self._msg(message_id)}{self._select()}")
        return message_from_json(data)

    async def get_mime(self, message_id: str) -> bytes:
        resp = await self.app.request(
            "GET", f"{self._msg(message_id)}/$value", mailbox=self._key, needs=(MAIL_READWRITE,)
        )
        return resp.content  # exactly as returned (RFC822.SIZE is computed from these)

    async def find_by_internet_message_id(
        self, folder_id: str, internet_message_id: str
    ) -> list[RemoteMessage]:
        literal = internet_message_id.replace("'", "''")  # OData string literal quoting
        params = {
            "$filter": f"internetMessageId eq '{literal}'",
            "$select": MESSAGE_SELECT,
            "$expand": LAST_VERB_EXPAND,
        }
        items = await self.app.get_all(
            f"{self._u}/mailFolders/{seg(folder_id)}/messages{query(params)}", mailbox=self._key
        )
        return [message_from_json(item, folder_id=folder_id) for item in items]

    # --- flags, move, copy, delete ------------------------------------------------------

    @staticmethod
    def _flag_body(change: FlagChange) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if change.is_read is not None:
            body["isRead"] = change.is_read
        if change.flagged is not None:
            body["flag"] = {"flagStatus": "flagged" if change.flagged else "notFlagged"}
        if change.categories is not None:
            body["categories"] = list(change.categories)
        if change.last_verb is not None:
            body["singleValueExtendedProperties"] = [
                {"id": PID_LAST_VERB, "value": str(change.last_verb)},
                {"id": PID_ICON_INDEX, "value": str(icon_for_verb(change.last_verb))},
            ]
        return body

    async def update_flags(
        self, changes: Sequence[FlagChange]
    ) -> dict[str, RemoteMessage | RemoteError]:
        """PATCHes in ``$batch``es. If several changes name one message, the last wins.

        ``last_verb`` of each result is the value this call set, or None when the change
        did not touch it: PATCH answers carry no extended properties (facts §10.3).
        """
        latest = {c.message_id: c for c in changes}
        order = list(latest)
        requests = []
        for i, mid in enumerate(order):
            body = self._flag_body(latest[mid])
            if body:
                requests.append(BatchRequest(str(i), "PATCH", self._msg(mid), body=body))
            else:  # nothing to change: report the current state
                requests.append(BatchRequest(str(i), "GET", self._msg(mid) + self._select()))
        answers = await self.app.batch(self._key, requests, idempotent=True)
        out: dict[str, RemoteMessage | RemoteError] = {}
        for i, mid in enumerate(order):
            answer = answers[str(i)]
            err = self.app.batch_error(answer, mailbox=self._key, idempotent=True)
            if err is not None:
                out[mid] = err
                continue
            out[mid] = self._message_or_error(answer.body, latest[mid].last_verb)  # type: ignore[union-attr]
        return out

    @staticmethod
    def _message_or_error(body: Any, last_verb: int | None = None) -> RemoteMessage | RemoteError:
        if not isinstance(body, dict):
            return RemoteUnavailable("Graph answered without the message.")
        try:
            return message_from_json(body, last_verb=last_verb)
        except RemoteError as exc:
            return exc

    async def _transfer(
        self, action: str, message_ids: Sequence[str], dest_folder_id: str
    ) -> dict[str, RemoteMessage | RemoteError]:
        order = list(dict.fromkeys(message_ids))
        requests = [
            BatchRequest(
                str(i),
                "POST",
                f"{self._msg(mid)}/{action}",
                body={"destinationId": dest_folder_id},
            )
            for i, mid in enumerate(order)
        ]
        # Copy and move are not repeated blindly (ARCHITECTURE.md consistency rules).
        answers = await self.app.batch(self._key, requests, idempotent=False)
        out: dict[str, RemoteMessage | RemoteError] = {}
        for i, mid in enumerate(order):
            answer = answers[str(i)]
            err = self.app.batch_error(answer, mailbox=self._key, idempotent=False)
            out[mid] = err if err is not None else self._message_or_error(answer.body)  # type: ignore[union-attr]
        return out

    async def move_messages(
        self, message_ids: Sequence[str], dest_folder_id: str
    ) -> dict[str, RemoteMessage | RemoteError]:
        """``POST .../move`` (201 + the moved message; immutable ids keep the id, §17)."""
        return await self._transfer("move", message_ids, dest_folder_id)

    async def copy_messages(
        self, message_ids: Sequence[str], dest_folder_id: str
    ) -> dict[str, RemoteMessage | RemoteError]:
        """``POST .../copy`` (201 + the new copy with its own id)."""
        return await self._transfer("copy", message_ids, dest_folder_id)

    async def delete_messages(
        self, message_ids: Sequence[str], mode: DeleteMode
    ) -> dict[str, RemoteError | None]:
        """SOFT = ``DELETE`` (Recoverable Items), TRASH = move to ``deleteditems``,
        PERMANENT = ``permanentDelete`` (global cloud only, facts §2, §14)."""
        order = list(dict.fromkeys(message_ids))
        requests = []
        for i, mid in enumerate(order):
            if mode is DeleteMode.SOFT:
                requests.append(BatchRequest(str(i), "DELETE", self._msg(mid)))
            elif mode is DeleteMode.TRASH:
                requests.append(
                    BatchRequest(
                        str(i),
                        "POST",
                        f"{self._msg(mid)}/move",
                        body={"destinationId": "deleteditems"},
                    )
                )
            else:
                requests.append(BatchRequest(str(i), "POST", f"{self._msg(mid)}/permanentDelete"))
        # Deleting twice cannot do harm (the second answer is 404); a trash move is a move.
        idempotent = mode is not DeleteMode.TRASH
        answers = await self.app.batch(self._key, requests, idempotent=idempotent)
        return {
            mid: self.app.batch_error(answers[str(i)], mailbox=self._key, idempotent=idempotent)
            for i, mid in enumerate(order)
        }

    # --- creating messages --------------------------------------------------------------

    async def _add_attachment(self, message_id: str, attachment: Attachment) -> None:
        base = f"{self._msg(message_id)}/attachments"
        if len(attachment.data) < SMALL_ATTACHMENT:
            await self._request("POST", base, json_body=attachment.json(), what="attachment")
            return
        # Facts §13.4: upload session, then PUT chunks to uploadUrl verbatim, no token.
        session = await self._request(
            "POST",
            f"{base}/createUploadSession",
            json_body=attachment.upload_item(),
            what="upload session",
        )
        upload_url = session.get("uploadUrl") if isinstance(session, dict) else None
        if not isinstance(upload_url, str) or not upload_url:
            raise RemoteUnavailable("Graph created an upload session without an uploadUrl.")
        total = len(attachment.data)
        for start, chunk in chunks(attachment.data):
            end = start + len(chunk) - 1
            await self.app.request(
                "PUT",
                upload_url,
                mailbox=self._key,
                auth=False,
                content=chunk,
                content_type="application/octet-stream",
                headers={"Content-Range": f"bytes {start}-{end}/{total}"},
                idempotent=False,  # a repeated range is refused; never resend blindly
                what="attachment upload",
            )

    async def _discard(self, message_id: str, cause: RemoteError) -> RemoteError:
        """Delete a half-built message; the error to raise afterwards."""
        try:
            await self._request("DELETE", self._msg(message_id))
        except RemoteError as exc:
            log.warning("could not remove a partly created message: %s", exc)
            return OutcomeUnknown(
                "A message was partly created and could not be removed again; look for it "
                "by Message-ID before retrying.",
                code=cause.code,
                status=cause.status,
            )
        if isinstance(cause, OutcomeUnknown):
            # We removed whatever the unanswered step did: the outcome is now known.
            return RemoteUnavailable(str(cause), code=cause.code, status=cause.status)
        return cause

    async def _create_draft_from_mime(self, mime: bytes) -> tuple[dict[str, Any], str]:
        """POST the MIME to ``/messages`` (always a draft in Drafts, facts §12.1); parts
        too big for one request are uploaded as attachments afterwards."""
        try:
            # Parsing and base64 of a message of tens of MB: off the event loop.
            split = await asyncio.to_thread(split_large_mime, mime)
        except ValueError as exc:
            raise RemoteRejected(
                "The message text itself is larger than one Graph request allows (~4 MB)."
            ) from exc
        data = await self._request(
            "POST",
            f"{self._u}/messages",
            content=await asyncio.to_thread(b64, split.mime),
            content_type="text/plain",
            what="draft create",
        )
        mid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(mid, str):
            raise RemoteUnavailable("Graph created a draft but returned no id.")
        try:
            for attachment in split.removed:
                await self._add_attachment(mid, attachment)
        except RemoteError as exc:
            raise await self._discard(mid, exc) from None
        return data, mid

    async def create_message(self, message: NewMessage) -> RemoteMessage:
        """APPEND. ``\\Draft`` → MIME draft (+ move); otherwise JSON non-draft (facts §12.2)."""
        if message.is_draft:
            return await self._create_draft_message(message)
        # MIME parsing and JSON building of a large message: off the event loop.
        composed = await asyncio.to_thread(
            compose_for_append,
            message.mime,
            is_read=message.is_read,
            flagged=message.flagged,
            categories=message.categories,
            last_verb=message.last_verb,
            received=message.received,
            internet_message_id=message.internet_message_id,
        )
        size = await asyncio.to_thread(lambda: len(json.dumps(composed.body)))
        if size > MAX_JSON_CREATE:
            raise RemoteRejected(
                "The message text is larger than one Graph request allows (~3.5 MB of JSON)."
            )
        data = await self._request(
            "POST",
            f"{self._u}/mailFolders/{seg(message.folder_id)}/messages",
            json_body=composed.body,
            what="message create",
        )
        mid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(mid, str):
            raise RemoteUnavailable("Graph created a message but returned no id.")
        try:
            for attachment in composed.attachments:
                await self._add_attachment(mid, attachment)
            # Facts §11: the READ bit and isRead interact; make isRead what was asked.
            if data.get("isRead") is not message.is_read:
                await self._request("PATCH", self._msg(mid), json_body={"isRead": message.is_read})
            return await self.get_message(mid)
        except RemoteError as exc:
            raise await self._discard(mid, exc) from None

    async def _create_draft_message(self, message: NewMessage) -> RemoteMessage:
        _data, mid = await self._create_draft_from_mime(message.mime)
        try:
            drafts = (await self.well_known_folders()).get("drafts")
            target = await self.folder_id(message.folder_id)
            if target != drafts:
                await self._request(
                    "POST",
                    f"{self._msg(mid)}/move",
                    json_body={"destinationId": target},
                    what="draft move",
                )
            patch = self._flag_body(
                FlagChange(
                    mid,
                    is_read=message.is_read,
                    flagged=message.flagged,
                    categories=message.categories or None,
                    last_verb=message.last_verb or None,
                )
            )
            await self._request("PATCH", self._msg(mid), json_body=patch)
            return await self.get_message(mid)
        except RemoteError as exc:
            raise await self._discard(mid, exc) from None

    # --- sending ------------------------------------------------------------------------

    async def send_mime(self, mime: bytes) -> SendResult:
        """Send as this mailbox (facts §13). Never retried blindly: a broken connection
        after the send left raises ``OutcomeUnknown``.

        Small messages (base64 < ~3.9 MB): ``POST /sendMail`` with the MIME — full
        fidelity, recipients from the headers. Larger ones: the biggest non-text parts
        are cut out, the rest becomes a draft from MIME, the cut parts are added as
        attachments (POST < 3 MB, upload session above), then ``POST .../send``. Limits of
        that path: re-added parts keep name, type, Content-ID and inline-ness but lose
        their other MIME headers, and Exchange rebuilds the multipart structure around
        them; the message text and headers are sent as given.
        """
        encoded = await asyncio.to_thread(b64, mime)
        if len(encoded) < MAX_REQUEST_BYTES:
            resp = await self.app.request(
                "POST",
                f"{self._u}/sendMail",
                mailbox=self._key,
                content=encoded,
                content_type="text/plain",
                needs=(MAIL_SEND,),
                what="sendMail",
            )
            return SendResult(request_id=resp.request_id)
        _data, mid = await self._create_draft_from_mime(mime)
        try:
            resp = await self.app.request(
                "POST",
                f"{self._msg(mid)}/send",
                mailbox=self._key,
                needs=(MAIL_SEND, MAIL_READWRITE),
                what="send",
            )
        except OutcomeUnknown:
            raise
        except RemoteError as exc:
            raise await self._discard(mid, exc) from None
        # With immutable ids the draft's id finds the Sent Items copy (facts §13.3).
        return SendResult(request_id=resp.request_id, sent_message_id=mid)

    # --- change notifications (facts §19) ----------------------------------------------

    async def create_subscription(
        self,
        notification_url: str,
        lifecycle_url: str | None,
        client_state: str,
        expires: datetime,
        *,
        folder_id: str | None = None,
    ) -> Subscription:
        """Subscribe to this mailbox's messages (or one folder's). Uses the object id
        in the resource path (facts §19.1: UPNs with ``'`` fail)."""
        if folder_id is None:
            resource = f"users/{self.mailbox.id}/messages"
        else:
            literal = folder_id.replace("'", "''")
            resource = f"users/{self.mailbox.id}/mailFolders('{literal}')/messages"
        return await self.app.create_subscription(
            resource, notification_url, lifecycle_url, client_state, expires
        )

    async def renew_subscription(self, subscription_id: str, expires: datetime) -> Subscription:
        return await self.app.renew_subscription(subscription_id, expires)

    async def delete_subscription(self, subscription_id: str) -> None:
        await self.app.delete_subscription(subscription_id)

    async def reauthorize_subscription(self, subscription_id: str) -> None:
        await self.app.reauthorize_subscription(subscription_id)
