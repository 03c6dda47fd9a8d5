"""Directory reads: ``GET /users/{id|upn}`` and ``GET /users?$filter=...`` (§5).

Owns: user JSON (default property set, ``$select``-only properties) and the filter
subset (``mail eq``, ``userPrincipalName eq``, ``proxyAddresses/any(a:a eq 'smtp:..')``).
Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import re
from typing import Any

from .context import Ctx, SimResponse
from .errors import GraphError, bad_request
from .model import User
from .odata import parse_select
from .paging import paged

DEFAULT_PROPS = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)


def user_json(u: User, select: list[str] | None) -> dict[str, Any]:
    given, _, surname = u.display_name.partition(" ")
    full: dict[str, Any] = {
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": given or None,
        "jobTitle": None,
        "mail": u.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": surname or None,
        "userPrincipalName": u.upn,
        "id": u.id,
        # $select-only (§5): shared mailboxes are usually disabled accounts.
        "accountEnabled": not u.shared,
        "proxyAddresses": list(u.proxy_addresses),
        "userType": "Member",
    }
    if select is None:
        return {k: full[k] for k in DEFAULT_PROPS}
    lower = {k.lower(): k for k in full}
    out = {}
    for s in select:
        key = lower.get(s.lower())
        if key:
            out[key] = full[key]
    return out


def not_found(name: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{name}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def get_user(ctx: Ctx) -> SimResponse:
    name = ctx.params["u"]
    u = ctx.world.find_user(name, ctx.app.tenant_id)
    if u is None:
        raise not_found(name)
    body = {"@odata.context": f"{ctx.graph_root}/$metadata#users/$entity"}
    body.update(user_json(u, parse_select(ctx.req.query)))
    return SimResponse.json(body)


_EQ = re.compile(r"^\s*(mail|userPrincipalName)\s+eq\s+'((?:[^']|'')*)'\s*$", re.I)
_PROXY = re.compile(
    r"^\s*proxyAddresses/any\(\s*(\w+)\s*:\s*\1\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$", re.I
)


def list_users(ctx: Ctx) -> SimResponse:
    raw = ctx.req.query.get("$filter")
    tenant_users = [u for u in ctx.world.users.values() if u.tenant_id == ctx.app.tenant_id]
    if raw:
        m = _EQ.match(raw)
        p = _PROXY.match(raw)
        if m:
            prop, value = m.group(1).lower(), m.group(2).replace("''", "'").lower()
            if prop == "mail":
                tenant_users = [u for u in tenant_users if (u.mail or "").lower() == value]
            else:
                tenant_users = [u for u in tenant_users if u.upn.lower() == value]
        elif p:
            value = p.group(2).replace("''", "'").lower()
            tenant_users = [
                u for u in tenant_users if value in (a.lower() for a in u.proxy_addresses)
            ]
        else:
            raise bad_request(
                f"Unsupported or invalid query filter clause specified: {raw}",
                "Request_UnsupportedQuery",
            )
    select = parse_select(ctx.req.query)
    items = [user_json(u, select) for u in sorted(tenant_users, key=lambda u: u.upn)]
    return SimResponse.json(paged(ctx, items, f"{ctx.graph_root}/$metadata#users"))
