"""The HTTP listener's aiohttp application: the bearer-protected admin API under ``/v1``,
plus whatever routes the composition root mounts next to it (webhooks, /metrics, /health).

May import aiohttp, ``bridge.store``, ``bridge.secrets``, ``bridge.config``,
``bridge.logsetup`` and ``bridge.errors``; never the protocol layers.
"""

from bridge.http.admin import (
    ADMIN,
    AdminContext,
    ApiError,
    account_json,
    app_json,
    error_response,
    make_http_app,
)

__all__ = [
    "ADMIN",
    "AdminContext",
    "ApiError",
    "account_json",
    "app_json",
    "error_response",
    "make_http_app",
]
