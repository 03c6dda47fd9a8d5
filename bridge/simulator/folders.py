"""Mail folder handlers: list, get, create, rename, move, copy, delete (§6).

Owns: the HTTP shape of folder operations; the hierarchy rules live in ``model.World``.
Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

from typing import Any

from .context import Ctx, SimResponse
from .errors import GraphError, bad_request
from .model import Folder, World
from .odata import parse_select
from .paging import paged
from .render import render_folder


def _ctx_url(ctx: Ctx, suffix: str) -> str:
    return f"{ctx.graph_root}/$metadata#users('{ctx.u.id}')/{suffix}"


def _list(ctx: Ctx, parent: Folder) -> SimResponse:
    include_hidden = ctx.req.query.get("includeHiddenFolders", "").lower() == "true"
    kids = ctx.world.children(ctx.mb, parent.id)
    if not include_hidden:
        kids = [k for k in kids if not k.is_hidden]
    select = parse_select(ctx.req.query)
    items = [render_folder(ctx.world, ctx.mb, k, select) for k in kids]
    count = ctx.req.query.get("$count", "").lower() == "true"
    return SimResponse.json(paged(ctx, items, _ctx_url(ctx, "mailFolders"), count=count))


def list_top(ctx: Ctx) -> SimResponse:
    return _list(ctx, ctx.world.folder(ctx.mb, "msgfolderroot"))


def list_children(ctx: Ctx) -> SimResponse:
    return _list(ctx, ctx.world.folder(ctx.mb, ctx.params["f"]))


def get_folder(ctx: Ctx) -> SimResponse:
    f = ctx.world.folder(ctx.mb, ctx.params["f"])
    body: dict[str, Any] = {"@odata.context": _ctx_url(ctx, "mailFolders/$entity")}
    body.update(render_folder(ctx.world, ctx.mb, f, parse_select(ctx.req.query)))
    return SimResponse.json(body)


def _name_from(body: Any) -> tuple[str, bool]:
    if not isinstance(body, dict):
        raise bad_request("Invalid request body.", "RequestBodyRead")
    for key in body:
        if key not in ("displayName", "isHidden", "@odata.type"):
            raise bad_request(
                f"The property '{key}' does not exist on type 'microsoft.graph.mailFolder'.",
                "RequestBodyRead",
            )
    name = body.get("displayName")
    if not isinstance(name, str):
        raise bad_request("displayName is required.", "ErrorInvalidRequest")
    return name, bool(body.get("isHidden", False))


def _create(ctx: Ctx, parent: Folder) -> SimResponse:
    name, hidden = _name_from(ctx.req.json())
    f = ctx.world.create_folder(ctx.mb, parent, name, hidden=hidden)
    body: dict[str, Any] = {"@odata.context": _ctx_url(ctx, "mailFolders/$entity")}
    body.update(render_folder(ctx.world, ctx.mb, f))
    return SimResponse.json(body, 201)


def create_top(ctx: Ctx) -> SimResponse:
    return _create(ctx, ctx.world.folder(ctx.mb, "msgfolderroot"))


def create_child(ctx: Ctx) -> SimResponse:
    return _create(ctx, ctx.world.folder(ctx.mb, ctx.params["f"]))


def patch_folder(ctx: Ctx) -> SimResponse:
    f = ctx.world.folder(ctx.mb, ctx.params["f"])
    body = ctx.req.json()
    if not isinstance(body, dict):
        raise bad_request("Invalid request body.", "RequestBodyRead")
    if "isHidden" in body:
        # §6.4: isHidden can only be set at creation.
        raise bad_request("The property 'IsHidden' is read-only.", "ErrorInvalidProperty")
    name, _ = _name_from(body)
    ctx.world.rename_folder(ctx.mb, f, name)
    out: dict[str, Any] = {"@odata.context": _ctx_url(ctx, "mailFolders/$entity")}
    out.update(render_folder(ctx.world, ctx.mb, f))
    return SimResponse.json(out)


def _destination(ctx: Ctx) -> Folder:
    body = ctx.req.json()
    dest = body.get("destinationId") if isinstance(body, dict) else None
    if not isinstance(dest, str) or not dest:
        raise bad_request("The destinationId parameter is required.", "ErrorInvalidRequest")
    try:
        return ctx.world.folder(ctx.mb, dest)
    except GraphError:
        raise GraphError(
            404,
            "ErrorItemNotFound",
            "The specified destination folder was not found in the store.",
        ) from None


def move_folder(ctx: Ctx) -> SimResponse:
    f = ctx.world.folder(ctx.mb, ctx.params["f"])
    dest = _destination(ctx)
    ctx.world.move_folder(ctx.mb, f, dest)
    out: dict[str, Any] = {"@odata.context": _ctx_url(ctx, "mailFolders/$entity")}
    out.update(render_folder(ctx.world, ctx.mb, f))
    return SimResponse.json(out)


def copy_folder(ctx: Ctx) -> SimResponse:
    f = ctx.world.folder(ctx.mb, ctx.params["f"])
    dest = _destination(ctx)
    new = _copy_tree(ctx.world, ctx, f, dest)
    out: dict[str, Any] = {"@odata.context": _ctx_url(ctx, "mailFolders/$entity")}
    out.update(render_folder(ctx.world, ctx.mb, new))
    return SimResponse.json(out, 201)


def _copy_tree(world: World, ctx: Ctx, f: Folder, dest: Folder) -> Folder:
    new = world.create_folder(ctx.mb, dest, f.display_name, hidden=f.is_hidden)
    for key in list(f.messages):
        world.copy_message(ctx.mb, ctx.mb.messages[key], new)
    for child in world.children(ctx.mb, f.id):
        _copy_tree(world, ctx, child, new)
    return new


def delete_folder(ctx: Ctx) -> SimResponse:
    f = ctx.world.folder(ctx.mb, ctx.params["f"])
    ctx.world.delete_folder(ctx.mb, f)
    return SimResponse.empty(204)


def permanent_delete_folder(ctx: Ctx) -> SimResponse:
    f = ctx.world.folder(ctx.mb, ctx.params["f"])
    ctx.world.delete_folder(ctx.mb, f, permanent=True)
    return SimResponse.empty(204)
