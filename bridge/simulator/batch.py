"""JSON batching: ``POST /v1.0/$batch`` (§18).

Owns: batch validation (≤ 20 requests, unique ids, relative urls, dependsOn), running
inner requests through the same pipeline (each one authenticated, throttled and
counted individually — an inner 429 carries its own Retry-After, §4.2), up to 4 in
parallel, ``424`` for dependants of a failed request, and the response envelope.
Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .context import Ctx, SimRequest, SimResponse
from .errors import GraphError, bad_request

MAX_REQUESTS = 20
METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def _validate(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise bad_request("Invalid batch payload format.", "BadRequest")
    reqs = body["requests"]
    if not reqs:
        raise bad_request("Invalid batch payload format.", "BadRequest")
    if len(reqs) > MAX_REQUESTS:
        raise bad_request(f"Number of requests exceeds the limit of {MAX_REQUESTS}.", "BadRequest")
    seen: set[str] = set()
    for r in reqs:
        if not isinstance(r, dict):
            raise bad_request("Invalid batch payload format.", "BadRequest")
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            raise bad_request("Batch request id is required.", "BadRequest")
        if rid.lower() in seen:
            raise bad_request(f"Request Id '{rid}' is duplicated.", "BadRequest")
        seen.add(rid.lower())
        method = str(r.get("method", "")).upper()
        if method not in METHODS:
            raise bad_request(f"Invalid method '{r.get('method')}'.", "BadRequest")
        url = r.get("url")
        if not isinstance(url, str) or not url or urlsplit(url).scheme:
            # §18: urls are relative to the version root; absolute urls are refused.
            raise bad_request("Absolute URLs are not allowed in a batch request.", "BadRequest")
        if "body" in r and r["body"] is not None:
            headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
            if "content-type" not in headers:
                raise bad_request(
                    "Write request id : " + rid + " does not contain Content-Type header or body.",
                    "BadRequest",
                )
    for r in reqs:
        for dep in r.get("dependsOn") or []:
            if str(dep).lower() not in seen:
                raise bad_request(
                    f"Request '{r['id']}' depends on unknown id '{dep}'.", "BadRequest"
                )
    return list(reqs)


def _inner_request(ctx: Ctx, r: dict[str, Any]) -> SimRequest:
    url = r["url"]
    if not url.startswith("/"):
        url = "/" + url
    parts = urlsplit(url)
    headers = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
    auth = ctx.req.header("authorization")
    if auth:
        headers["authorization"] = auth
    body = r.get("body")
    raw = b""
    if body is not None:
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if isinstance(body, str):
            # Non-JSON payloads travel as strings (base64 MIME for text/plain).
            raw = body.encode()
        elif ctype.startswith("application/json") or isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
    prefer = [headers["prefer"]] if "prefer" in headers else []
    return SimRequest(
        method=str(r["method"]).upper(),
        path="/v1.0" + parts.path,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        prefer=prefer,
        body=raw,
        in_batch=True,
    )


def _envelope(rid: str, resp: SimResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "status": resp.status, "headers": dict(resp.headers)}
    if resp.body:
        ctype = resp.headers.get("Content-Type", "")
        if "json" in ctype:
            out["body"] = json.loads(resp.body)
        else:
            # Non-JSON bodies come back base64-encoded (§18, UNCONFIRMED).
            out["body"] = base64.b64encode(resp.body).decode()
    return out


async def run_batch(ctx: Ctx) -> SimResponse:
    if ctx.req.in_batch:
        raise bad_request("Nested batch requests are not supported.", "BadRequest")
    reqs = _validate(ctx.req.json())
    done: dict[str, asyncio.Event] = {r["id"].lower(): asyncio.Event() for r in reqs}
    status: dict[str, int] = {}
    responses: list[dict[str, Any]] = []
    # §4.2: Outlook runs up to 4 inner requests in parallel.
    gate = asyncio.Semaphore(4)

    async def one(r: dict[str, Any]) -> None:
        rid = r["id"]
        try:
            deps = [str(d).lower() for d in (r.get("dependsOn") or [])]
            for d in deps:
                await done[d].wait()
            if any(status.get(d, 500) >= 400 for d in deps):
                err = GraphError(424, "FailedDependency", "Failed dependency.")
                resp = SimResponse.json(
                    err.body("", None, ctx.world.now().strftime("%Y-%m-%dT%H:%M:%S")), 424
                )
            else:
                async with gate:
                    result = await ctx.services.pipeline.handle(_inner_request(ctx, r))
                assert result is not None
                resp = result
            status[rid.lower()] = resp.status
            responses.append(_envelope(rid, resp))
        finally:
            done[rid.lower()].set()

    await asyncio.gather(*(one(r) for r in reqs))
    return SimResponse.json({"responses": responses})
