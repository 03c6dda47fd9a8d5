"""The aiohttp application: login endpoints, Graph v1.0, upload URLs, and ``/_sim``.

Owns: translating aiohttp requests into ``SimRequest`` values and ``SimResponse`` values
back into aiohttp responses, connection resets, and mounting the control routes. It
holds no state of its own. Must not import anything from ``bridge`` outside
``bridge.simulator``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .auth import MULTI_TENANT_ALIASES, openid_configuration, tenant_not_found
from .context import SimRequest
from .control import SIM_KEY, add_control_routes
from .send import upload_chunk

if TYPE_CHECKING:
    from .simulator import Simulator

CLIENT_MAX_SIZE = 64 * 1024 * 1024  # larger than any limit we enforce, so we answer 413 ourselves


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM_KEY]  # type: ignore[no-any-return]


async def discovery(request: web.Request) -> web.Response:
    sim = _sim(request)
    tenant = request.match_info["tenant"]
    if tenant.lower() in MULTI_TENANT_ALIASES:
        # Entra serves a templated issuer for the multi-tenant aliases.
        return web.json_response(openid_configuration(sim.base_url, tenant, "{tenantid}"))
    t = sim.world.find_tenant(tenant)
    if t is None:
        result = tenant_not_found(tenant, sim.world.now())
        return web.json_response(result.body, status=result.status)
    return web.json_response(openid_configuration(sim.base_url, tenant, t.id))


async def instance_discovery(request: web.Request) -> web.Response:
    # Harmless answer for clients that did not turn instance discovery off.
    sim = _sim(request)
    endpoint = request.query.get("authorization_endpoint", "")
    tenant = endpoint.rstrip("/").split("/")[-4] if endpoint.count("/") >= 6 else "common"
    return web.json_response(
        {
            "tenant_discovery_endpoint": (
                f"{sim.base_url}/{tenant}/v2.0/.well-known/openid-configuration"
            ),
            "api-version": "1.1",
            "metadata": [],
        }
    )


async def token(request: web.Request) -> web.Response:
    sim = _sim(request)
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    result = sim.tokens.token(request.match_info["tenant"], form)
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    return web.json_response(result.body, status=result.status, headers=headers)


async def graph(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    req = await to_sim_request(request)

    def abort() -> None:
        if request.transport is not None:
            request.transport.abort()

    resp = await sim.pipeline.handle(req, abort)
    if resp is None:
        # Connection reset injected: the transport is gone; aiohttp cannot write this.
        return web.Response(status=500)
    return web.Response(status=resp.status, body=resp.body, headers=resp.headers)


async def to_sim_request(request: web.Request) -> SimRequest:
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        lk = k.lower()
        headers[lk] = f"{headers[lk]}, {v}" if lk in headers else v
    query: dict[str, Any] = {}
    for k, v in request.rel_url.query.items():
        query[k] = v
    return SimRequest(
        method=request.method.upper(),
        path=request.rel_url.raw_path,
        query=query,
        headers=headers,
        prefer=list(request.headers.getall("Prefer", [])),
        body=await request.read(),
    )


async def upload(request: web.Request) -> web.Response:
    import re

    sim = _sim(request)
    m = re.search(r"AttachmentSessions\('([^']+)'\)", request.rel_url.path)
    if not m:
        return web.json_response(
            {"error": {"code": "BadRequest", "message": "Bad upload URL."}}, status=400
        )
    data = await request.read()
    status, headers, body = upload_chunk(
        sim.world,
        sim.uploads,
        sim.base_url,
        m.group(1),
        request.rel_url.query.get("authtoken"),
        request.method.upper(),
        request.headers.get("Content-Range"),
        data,
    )
    return web.Response(status=status, body=body, headers=headers)


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[SIM_KEY] = sim
    app.router.add_get("/common/discovery/instance", instance_discovery)
    app.router.add_route("*", "/v1.0/{tail:.*}", graph)
    app.router.add_route("*", "/v1.0", graph)
    app.router.add_route("PUT", "/_upload/{tail:.*}", upload)
    app.router.add_route("DELETE", "/_upload/{tail:.*}", upload)
    add_control_routes(app)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", discovery)
    app.router.add_get("/{tenant}/.well-known/openid-configuration", discovery)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    return app
