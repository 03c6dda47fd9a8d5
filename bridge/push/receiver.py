"""The webhook endpoints Graph calls: validation, change and lifecycle notifications.

Owns the HTTP side of GRAPH-MAIL-FACTS §19.2 to §19.4 and nothing else:

- **Validation** (§19.2): ``POST {url}?validationToken=…`` (and, for tools that use it,
  ``GET``) is answered ``200 text/plain`` with the URL-decoded token, byte for byte, at
  once — no store, no Graph call, so it is far inside the 10-second budget.
- **Notifications** (§19.3): the body is read up to ``max_body`` bytes (more → 413),
  parsed, and each element of ``value`` is handed to ``SubscriptionManager.receive``,
  which accepts it only for a known ``subscriptionId`` with a matching ``clientState``.
  The answer is ``202 Accepted`` as soon as that in-memory check is done; every Graph
  call happens later in the manager's tasks. Forged or mismatched elements are logged
  by the manager and still acknowledged with 202 (§19.3: "ignore (but 2xx-ack)
  mismatches"), so a forger learns nothing from the status.
- **Lifecycle** (§19.4): the same checks, then ``SubscriptionManager.lifecycle``.

``webhook_routes(manager)`` returns the route definitions the composition root adds to
the HTTP listener, at ``/oauth/msg/notification`` and ``/oauth/msg/lifecycle``.

Imports: aiohttp, the standard library and ``bridge.push``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bridge.push.subscriptions import LIFECYCLE_PATH, NOTIFICATION_PATH, SubscriptionManager

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Graph batches are small; a MiB is generous and bounded
MAX_VALIDATION_TOKEN = 8192
_MAX_ITEMS = 1000

Handler = Callable[[web.Request], Any]


def _validation_token(request: web.Request) -> str | None:
    token = request.query.get("validationToken")
    if token is None:
        # Facts §19.2 [3P]: some senders spell it in lower case.
        for key, value in request.query.items():
            if key.lower() == "validationtoken":
                return value
    return token


def _validation_response(token: str) -> web.Response:
    if len(token) > MAX_VALIDATION_TOKEN:
        return web.Response(status=400, text="validation token too long", content_type="text/plain")
    # aiohttp has already URL-decoded the query; echo exactly that (no quotes, no newline).
    return web.Response(
        status=200,
        body=token.encode("utf-8"),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _items(request: web.Request, limit: int) -> list[dict[str, Any]] | web.Response:
    body = await _read_bounded(request, limit)
    if body is None:
        log.warning("refused a webhook request over %d bytes from %s", limit, request.remote)
        return web.Response(status=413, text="request too large", content_type="text/plain")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return web.Response(status=400, text="expected JSON", content_type="text/plain")
    value = data.get("value") if isinstance(data, dict) else None
    if not isinstance(value, list):
        return web.Response(status=400, text="expected a value array", content_type="text/plain")
    return [item for item in value[:_MAX_ITEMS] if isinstance(item, dict)]


def make_handlers(
    manager: SubscriptionManager, *, max_body: int = MAX_BODY
) -> tuple[Handler, Handler]:
    """The notification and lifecycle handlers bound to ``manager``."""

    def handler(accept: Callable[[Any, str | None], object]) -> Handler:
        """Both endpoints answer the validation handshake, then hand each item of a
        POSTed batch to ``accept`` and answer 202 at once (work happens afterwards)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            token = _validation_token(request)
            if token is not None:
                return _validation_response(token)
            if request.method != "POST":
                return web.Response(status=400, text="validationToken required")
            items = await _items(request, max_body)
            if isinstance(items, web.Response):
                return items
            for item in items:
                accept(item, request.remote)
            return web.Response(status=202)

        return handle

    notification = handler(manager.receive)
    lifecycle = handler(manager.lifecycle)

    return notification, lifecycle


def webhook_routes(manager: SubscriptionManager, *, max_body: int = MAX_BODY) -> list[web.RouteDef]:
    """Routes for the HTTP listener: POST (and GET for validation) on both paths."""
    notification, lifecycle = make_handlers(manager, max_body=max_body)
    return [
        web.post(NOTIFICATION_PATH, notification),
        web.get(NOTIFICATION_PATH, notification, allow_head=False),
        web.post(LIFECYCLE_PATH, lifecycle),
        web.get(LIFECYCLE_PATH, lifecycle, allow_head=False),
    ]
