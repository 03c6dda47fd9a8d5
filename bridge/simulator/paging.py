"""Paging helpers shared by collection handlers (§6.3, §7.2).

Owns: building ``@odata.nextLink`` URLs that carry the original query options plus
``$skip``. Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from .context import Ctx
from .odata import parse_int


def page_params(ctx: Ctx, *, max_top: int = 1000) -> tuple[int, int]:
    top = parse_int(ctx.req.query, "$top", lo=1, hi=max_top)
    skip = parse_int(ctx.req.query, "$skip", lo=0, hi=10**9) or 0
    if top is None:
        pref = ctx.prefer.get("odata.maxpagesize")
        top = (
            int(pref) if pref and pref.isdigit() and int(pref) > 0 else ctx.config.default_page_size
        )
        top = min(top, max_top)
    return top, skip


def link(ctx: Ctx, query: dict[str, str]) -> str:
    path = ctx.req.path
    qs = urlencode(query, quote_via=quote, safe="$,'()/:@")
    return f"{ctx.base_url}{path}?{qs}"


def paged(ctx: Ctx, items: list[Any], context_url: str, *, count: bool = False) -> dict[str, Any]:
    top, skip = page_params(ctx)
    window = items[skip : skip + top]
    out: dict[str, Any] = {"@odata.context": context_url}
    if count:
        out["@odata.count"] = len(items)
    out["value"] = window
    if skip + top < len(items):
        q = dict(ctx.req.query)
        q["$top"] = str(top)
        q["$skip"] = str(skip + top)
        out["@odata.nextLink"] = link(ctx, q)
    return out
