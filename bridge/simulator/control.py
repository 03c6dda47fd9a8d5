"""The control API over HTTP: ``/_sim/...`` JSON routes mirroring ``Simulator``'s methods.

Owns: the HTTP shape of the control API (documented in README.md). It is unauthenticated
and served on the same loopback listener as Graph; it exists for the demo and for tools
in other processes. Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import GraphError
from .model import iso, parse_iso

if TYPE_CHECKING:
    from .simulator import Simulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIM_KEY: web.AppKey[Any] = web.AppKey("sim", object)


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM_KEY]  # type: ignore[no-any-return]


def _wrap(fn: Callable[[Simulator, web.Request, dict[str, Any]], Any]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                parsed = await request.json()
            except ValueError:
                return web.json_response({"error": "body must be JSON"}, status=400)
            if isinstance(parsed, dict):
                body = parsed
        try:
            result = fn(_sim(request), request, body)
        except KeyError as exc:
            return web.json_response({"error": f"not found: {exc}"}, status=404)
        except (ValueError, AttributeError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except GraphError as exc:
            return web.json_response({"error": exc.message, "code": exc.code}, status=exc.status)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        return web.json_response(result)

    return handler


def _u(request: web.Request) -> str:
    return request.match_info["user"]


def health(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return {"ok": True, "base_url": sim.base_url, "ca_file": str(sim.ca_file)}


def add_tenant(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    t = sim.add_tenant(body["domain"], body.get("tenant_id"))
    return {"id": t.id, "domain": t.domain}


def add_app(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    if "roles" in body:
        kwargs["roles"] = tuple(body["roles"])
    pem = body.get("certificate_pem")
    a = sim.add_app(
        body["tenant_id"],
        secret=body.get("secret"),
        certificate_pem=pem.encode() if pem else None,
        **kwargs,
    )
    return {"client_id": a.client_id, "secret": a.secret, "thumbprint": a.thumbprint}


def expire_secret(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.expire_secret(request.match_info["client_id"])


def set_roles(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.set_roles(request.match_info["client_id"], body["roles"])


def add_user(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    u = sim.add_user(
        body["tenant_id"],
        body["upn"],
        display_name=body.get("display_name"),
        shared=bool(body.get("shared", False)),
        has_mailbox=bool(body.get("has_mailbox", True)),
    )
    return {"id": u.id, "upn": u.upn, "mail": u.mail}


def send_as(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.grant_send_as(mailbox=_u(request), to=body["to"])


def deliver(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    received = parse_iso(body["received"]) if body.get("received") else None
    mid = sim.deliver(
        _u(request),
        base64.b64decode(body["mime_base64"]),
        folder=body.get("folder", "inbox"),
        received=received,
        is_read=bool(body.get("is_read", False)),
    )
    return {"id": mid}


def folders(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return {"value": sim.folders(_u(request))}


def create_folder(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return {"id": sim.create_folder(_u(request), body["name"], body.get("parent"))}


def create_search_folder(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    fid = sim.create_search_folder(
        _u(request),
        body["name"],
        body.get("filter_query", ""),
        body.get("source_folders", ["inbox"]),
        body.get("parent"),
    )
    return {"id": fid}


def patch_folder(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    if "name" in body:
        sim.rename_folder(_u(request), request.match_info["folder"], body["name"])
    if "parent" in body:
        sim.move_folder(_u(request), request.match_info["folder"], body["parent"])


def delete_folder(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.delete_folder(_u(request), request.match_info["folder"])


def messages(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return {"value": sim.messages(_u(request), request.query.get("folder", "inbox"))}


def mime(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    data = sim.mime(_u(request), request.match_info["mid"])
    return web.Response(body=data, content_type="message/rfc822")


def patch_message(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    user, mid = _u(request), request.match_info["mid"]
    if "is_read" in body:
        sim.set_read(user, mid, bool(body["is_read"]))
    if "flagged" in body:
        sim.set_flag(user, mid, bool(body["flagged"]))
    if "categories" in body:
        sim.set_categories(user, mid, body["categories"])
    if "subject" in body or "body" in body:
        sim.edit_draft(user, mid, subject=body.get("subject"), body=body.get("body"))


def move_message(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return {"id": sim.move(_u(request), request.match_info["mid"], body["folder"])}


def delete_message(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.delete(_u(request), request.match_info["mid"])


def sent(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    user = request.query.get("user")
    return {
        "value": [
            {
                "sender": r.sender,
                "from_address": r.from_address,
                "recipients": list(r.recipients),
                "mime_base64": base64.b64encode(r.mime).decode(),
                "at": iso(r.at),
            }
            for r in sim.sent_log(user)
        ]
    }


def counters(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    c = sim.counters(_u(request))
    return {
        "requests": c.requests,
        "max_concurrency": c.max_concurrency,
        "throttled": c.throttled,
        "in_flight": c.in_flight,
        "by_kind": c.by_kind,
    }


def reset_counters(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.reset_counters(request.query.get("user"))


def get_faults(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return sim.faults.snapshot()


def patch_faults(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.set_faults(**body)
    return sim.faults.snapshot()


def clear_faults(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.faults.clear()


def fail_next(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.faults.fail_next(
        body["kind"],
        int(body.get("count", 1)),
        int(body.get("status", 503)),
        body.get("retry_after"),
    )


def expire_tokens(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.expire_tokens()


def expire_delta(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.expire_delta_tokens(_u(request), body.get("folder"))


def subscriptions(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return {"value": [s.json() for s in sim.subscription_list()]}


def lifecycle(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.lifecycle(request.match_info["sid"], body["event"])


def access_policy(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    sim.set_access_policy(_u(request), body["client_id"], bool(body["allowed"]))


def save(sim: Simulator, request: web.Request, body: dict[str, Any]) -> Any:
    return {"path": str(sim.save())}


ROUTES: tuple[tuple[str, str, Callable[[Simulator, web.Request, dict[str, Any]], Any]], ...] = (
    ("GET", "/_sim/health", health),
    ("POST", "/_sim/tenants", add_tenant),
    ("POST", "/_sim/apps", add_app),
    ("POST", "/_sim/apps/{client_id}/expire-secret", expire_secret),
    ("PUT", "/_sim/apps/{client_id}/roles", set_roles),
    ("POST", "/_sim/users", add_user),
    ("POST", "/_sim/users/{user}/send-as", send_as),
    ("POST", "/_sim/users/{user}/deliver", deliver),
    ("GET", "/_sim/users/{user}/folders", folders),
    ("POST", "/_sim/users/{user}/folders", create_folder),
    ("POST", "/_sim/users/{user}/search-folders", create_search_folder),
    ("PATCH", "/_sim/users/{user}/folders/{folder}", patch_folder),
    ("DELETE", "/_sim/users/{user}/folders/{folder}", delete_folder),
    ("GET", "/_sim/users/{user}/messages", messages),
    ("GET", "/_sim/users/{user}/messages/{mid}/mime", mime),
    ("PATCH", "/_sim/users/{user}/messages/{mid}", patch_message),
    ("POST", "/_sim/users/{user}/messages/{mid}/move", move_message),
    ("DELETE", "/_sim/users/{user}/messages/{mid}", delete_message),
    ("GET", "/_sim/sent", sent),
    ("GET", "/_sim/users/{user}/counters", counters),
    ("DELETE", "/_sim/counters", reset_counters),
    ("GET", "/_sim/faults", get_faults),
    ("PATCH", "/_sim/faults", patch_faults),
    ("DELETE", "/_sim/faults", clear_faults),
    ("POST", "/_sim/faults/fail-next", fail_next),
    ("POST", "/_sim/expire-tokens", expire_tokens),
    ("POST", "/_sim/users/{user}/expire-delta", expire_delta),
    ("GET", "/_sim/subscriptions", subscriptions),
    ("POST", "/_sim/subscriptions/{sid}/lifecycle", lifecycle),
    ("PUT", "/_sim/users/{user}/access-policy", access_policy),
    ("POST", "/_sim/save", save),
)


def add_control_routes(app: web.Application) -> None:
    for method, path, fn in ROUTES:
        app.router.add_route(method, path, _wrap(fn))
