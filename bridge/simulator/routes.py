"""The Graph v1.0 route table and the request pipeline every Graph call goes through.

Owns: path parsing (percent-decoding, ``name('value')`` key segments, case-insensitive
navigation names), route matching, and the pipeline order:
size limit → bearer token (§1.3) → route → user/mailbox resolution (§5) → permission
(roles in the token) → injected faults → throttling (§4) → latency → handler →
standard headers (request-id, client-request-id, Date). ``$batch`` re-enters the pipeline
for each inner request. Must not import anything from ``bridge`` outside
``bridge.simulator``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

from . import batch, delta, folders, messages, send, subscriptions, users
from .context import MAX_BODY, Ctx, SimRequest, SimResponse
from .errors import GraphError, access_denied, invalid_user, mailbox_not_enabled, too_large

log = logging.getLogger(__name__)

Handler = Callable[[Ctx], "SimResponse | Awaitable[SimResponse]"]

READ = {"Mail.Read", "Mail.ReadWrite"}
WRITE = {"Mail.ReadWrite"}
SEND = {"Mail.Send"}
DIRECTORY = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All"}
ANY: set[str] = set()


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: tuple[str, ...]
    kind: str
    roles: frozenset[str]
    handler: Handler
    mail: bool = True  # under /users/{u}/... → Outlook throttling applies


def _r(
    method: str, path: str, kind: str, roles: set[str], handler: Handler, mail: bool = True
) -> Route:
    return Route(method, tuple(path.split("/")), kind, frozenset(roles), handler, mail)


U = "users/{u}"
M = f"{U}/messages/{{m}}"
FM = f"{U}/mailfolders/{{f}}/messages/{{m}}"

ROUTES: tuple[Route, ...] = (
    _r("POST", "$batch", "batch", ANY, batch.run_batch, mail=False),
    _r("GET", "users", "users.list", DIRECTORY, users.list_users, mail=False),
    _r("GET", U, "user.get", DIRECTORY, users.get_user, mail=False),
    _r("POST", f"{U}/sendmail", "sendMail", SEND, send.send_mail),
    _r("POST", f"{U}/translateexchangeids", "translateExchangeIds", READ, messages.translate_ids),
    _r("GET", f"{U}/mailfolders/delta", "folders.delta", READ, delta.folder_delta),
    _r("GET", f"{U}/mailfolders", "folders.list", READ, folders.list_top),
    _r("POST", f"{U}/mailfolders", "folder.create", WRITE, folders.create_top),
    _r("GET", f"{U}/mailfolders/{{f}}/messages/delta", "messages.delta", READ, delta.message_delta),
    _r("GET", f"{U}/mailfolders/{{f}}/childfolders", "folders.list", READ, folders.list_children),
    _r("POST", f"{U}/mailfolders/{{f}}/childfolders", "folder.create", WRITE, folders.create_child),
    _r("POST", f"{U}/mailfolders/{{f}}/move", "folder.move", WRITE, folders.move_folder),
    _r("POST", f"{U}/mailfolders/{{f}}/copy", "folder.copy", WRITE, folders.copy_folder),
    _r(
        "POST",
        f"{U}/mailfolders/{{f}}/permanentdelete",
        "folder.permanentDelete",
        WRITE,
        folders.permanent_delete_folder,
    ),
    _r("GET", f"{U}/mailfolders/{{f}}/messages", "messages.list", READ, messages.list_messages),
    _r("POST", f"{U}/mailfolders/{{f}}/messages", "message.create", WRITE, messages.create_message),
    _r("GET", f"{U}/mailfolders/{{f}}", "folder.get", READ, folders.get_folder),
    _r("PATCH", f"{U}/mailfolders/{{f}}", "folder.update", WRITE, folders.patch_folder),
    _r("DELETE", f"{U}/mailfolders/{{f}}", "folder.delete", WRITE, folders.delete_folder),
    _r("GET", f"{U}/messages", "messages.list", READ, messages.list_messages),
    _r("POST", f"{U}/messages", "message.create", WRITE, messages.create_message),
)


def _message_routes(prefix: str) -> tuple[Route, ...]:
    return (
        _r("GET", f"{prefix}/$value", "message.value", READ, messages.get_value),
        _r("POST", f"{prefix}/move", "message.move", WRITE, messages.move_message),
        _r("POST", f"{prefix}/copy", "message.copy", WRITE, messages.copy_message),
        _r("POST", f"{prefix}/send", "message.send", SEND, send.send_draft),
        _r(
            "POST",
            f"{prefix}/permanentdelete",
            "message.permanentDelete",
            WRITE,
            messages.permanent_delete,
        ),
        _r(
            "POST",
            f"{prefix}/attachments/createuploadsession",
            "attachment.uploadSession",
            WRITE,
            send.create_upload_session,
        ),
        _r("GET", f"{prefix}/attachments", "attachments.list", READ, messages.list_attachments),
        _r("POST", f"{prefix}/attachments", "attachment.create", WRITE, messages.add_attachment),
        _r(
            "GET",
            f"{prefix}/attachments/{{a}}/$value",
            "attachment.value",
            READ,
            messages.get_attachment_value,
        ),
        _r("GET", f"{prefix}/attachments/{{a}}", "attachment.get", READ, messages.get_attachment),
        _r(
            "DELETE",
            f"{prefix}/attachments/{{a}}",
            "attachment.delete",
            WRITE,
            messages.delete_attachment,
        ),
        _r("GET", prefix, "message.get", READ, messages.get_message),
        _r("PATCH", prefix, "message.update", WRITE, messages.patch_message),
        _r("DELETE", prefix, "message.delete", WRITE, messages.delete_message),
    )


SUBSCRIPTION_ROUTES: tuple[Route, ...] = (
    _r(
        "GET",
        "subscriptions",
        "subscriptions.list",
        ANY,
        subscriptions.list_subscriptions,
        mail=False,
    ),
    _r(
        "POST",
        "subscriptions",
        "subscription.create",
        READ,
        subscriptions.create_subscription,
        mail=False,
    ),
    _r(
        "POST",
        "subscriptions/{s}/reauthorize",
        "subscription.reauthorize",
        ANY,
        subscriptions.reauthorize,
        mail=False,
    ),
    _r(
        "GET",
        "subscriptions/{s}",
        "subscription.get",
        ANY,
        subscriptions.get_subscription,
        mail=False,
    ),
    _r(
        "PATCH",
        "subscriptions/{s}",
        "subscription.update",
        ANY,
        subscriptions.patch_subscription,
        mail=False,
    ),
    _r(
        "DELETE",
        "subscriptions/{s}",
        "subscription.delete",
        ANY,
        subscriptions.delete_subscription,
        mail=False,
    ),
)

ALL_ROUTES = ROUTES + _message_routes(M) + _message_routes(FM) + SUBSCRIPTION_ROUTES

_KEY_SEGMENT = re.compile(r"^([A-Za-z$]+)\('((?:[^']|'')*)'\)$")


def split_path(path: str) -> list[str]:
    """'/v1.0/users(\\'a@b\\')/mailFolders/x%3D' → ['users', 'a@b', 'mailFolders', 'x=']."""
    raw = path.split("?", 1)[0]
    if raw.lower().startswith("/v1.0"):
        raw = raw[5:]
    out: list[str] = []
    for seg in raw.strip("/").split("/"):
        if seg == "":
            continue
        m = _KEY_SEGMENT.match(unquote(seg))
        if m:
            out.append(m.group(1))
            out.append(m.group(2).replace("''", "'"))
        else:
            out.append(unquote(seg))
    return out


def match(method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
    allowed = False
    for route in ALL_ROUTES:
        if len(route.pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        ok = True
        for pat, seg in zip(route.pattern, segments, strict=True):
            if pat.startswith("{"):
                params[pat[1:-1]] = seg
            elif pat != seg.lower():
                ok = False
                break
        if not ok:
            continue
        if route.method != method:
            allowed = True
            continue
        return route, params
    if allowed:
        raise GraphError(
            405, "Request_BadRequest", f"The request method '{method}' is not allowed."
        )
    name = segments[-1] if segments else ""
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{name}'.")


class Pipeline:
    """Runs one Graph request (outer or inner-batch) through the simulator."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    async def handle(
        self, req: SimRequest, abort: Callable[[], None] | None = None
    ) -> SimResponse | None:
        sim = self.sim
        request_id = str(uuid.uuid4())
        client_request_id = req.header("client-request-id")
        ctx: Ctx | None = None
        try:
            resp, ctx = await self._run(req, abort)
            if resp is None:
                return None
        except Exception as exc:  # any handler bug becomes a Graph-shaped 500
            if isinstance(exc, GraphError):
                err = exc
            else:
                log.exception("simulator handler failed for %s %s", req.method, req.path)
                err = GraphError(
                    500, "ErrorInternalServerError", "An internal server error occurred."
                )
            now = sim.world.now()
            body = err.body(request_id, client_request_id, now.strftime("%Y-%m-%dT%H:%M:%S"))
            resp = SimResponse.json(
                body, err.status, {"Content-Type": "application/json", **err.headers}
            )
        if ctx is not None:
            for k, v in ctx.response_headers.items():
                resp.headers.setdefault(k, v)
        resp.headers["request-id"] = request_id
        if client_request_id:
            resp.headers["client-request-id"] = client_request_id
        resp.headers.setdefault(
            "Date", format_datetime(sim.world.now().astimezone(dt.UTC), usegmt=True)
        )
        return resp

    async def _run(
        self, req: SimRequest, abort: Callable[[], None] | None
    ) -> tuple[SimResponse | None, Ctx | None]:
        sim = self.sim
        world = sim.world
        length = req.header("content-length")
        if len(req.body) > MAX_BODY or (length and length.isdigit() and int(length) > MAX_BODY):
            raise too_large()
        claims = sim.tokens.validate_bearer(req.header("authorization"))
        with world.lock:
            app = world.apps.get(claims.get("appid", ""))
        if app is None or app.tenant_id != claims.get("tid"):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        segments = split_path(req.path)
        if segments and segments[0].lower() == "me":
            raise GraphError(
                400, "BadRequest", "/me request is only valid with delegated authentication flow."
            )
        route, params = match(req.method, segments)
        ctx = Ctx(
            world=world,
            config=sim.config,
            faults=sim.faults,
            throttle=sim.throttle,
            req=req,
            base_url=sim.base_url,
            app=app,
            claims=claims,
            params=params,
            services=sim,
        )
        roles = set(claims.get("roles") or [])
        if route.roles and not roles & route.roles:
            raise access_denied()
        if "u" in params:
            with world.lock:
                user = world.find_user(params["u"], app.tenant_id)
                if route.mail:
                    if user is None:
                        raise invalid_user(params["u"])
                    if not user.has_mailbox:
                        raise mailbox_not_enabled()
                    if (app.client_id, user.id) in world.denied:
                        raise GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")
                    ctx.mailbox = world.mailbox(user.id)
                ctx.user = user
        if ctx.user is not None and not route.mail:
            sim.throttle.count_only(ctx.user.id, route.kind, req.method)
        faults = sim.faults
        rule = faults.take_rule(route.kind)
        if rule is not None:
            headers = {}
            if rule.retry_after is not None or rule.status in (429, 503):
                headers["Retry-After"] = _num(
                    rule.retry_after if rule.retry_after is not None else faults.retry_after
                )
            raise _injected(rule.status, headers)
        if abort is not None and faults.chance(faults.reset_rate):
            abort()
            return None, ctx
        if faults.chance(faults.error_rate):
            status = faults.error_status
            headers = {"Retry-After": _num(faults.retry_after)} if status in (429, 503) else {}
            raise _injected(status, headers)
        slot = route.mail and ctx.user is not None
        if slot:
            assert ctx.user is not None
            sim.throttle.acquire(app.client_id, ctx.user.id, route.kind, req.method)
        try:
            pause = faults.delay()
            if pause:
                await asyncio.sleep(pause)
            if inspect.iscoroutinefunction(route.handler):
                resp = await route.handler(ctx)
            else:
                with world.lock:
                    resp = route.handler(ctx)
        finally:
            if slot:
                assert ctx.user is not None
                sim.throttle.release(app.client_id, ctx.user.id)
        return resp, ctx


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _injected(status: int, headers: dict[str, str]) -> GraphError:
    codes = {
        429: ("TooManyRequests", "Please retry again later."),
        500: ("ErrorInternalServerError", "An internal server error occurred."),
        503: ("serviceNotAvailable", "The service is temporarily unavailable."),
        504: ("UnknownError", ""),
    }
    code, message = codes.get(status, ("UnknownError", "Injected failure."))
    return GraphError(status, code, message, headers=headers)
