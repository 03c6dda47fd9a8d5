"""Push: Graph change notifications (webhooks) and the subscriptions behind them.

``SubscriptionManager`` (``subscriptions``) keeps one Graph subscription per account
alive and verifies notifications; ``webhook_routes`` (``receiver``) are the aiohttp
routes Graph posts to; ``ChangeDispatcher`` (``dispatch``) turns accepted notifications
into debounced ``on_change(account_id, folder_id)`` calls, which the composition root
wires to the account's ``SyncEngine.nudge``.

May import aiohttp, the standard library, ``bridge.graph``, ``bridge.store``,
``bridge.backend`` and ``bridge.sync``; never imap or smtp.
"""

from __future__ import annotations

from bridge.push.dispatch import ChangeDispatcher, ChangeKind, OnChange
from bridge.push.receiver import MAX_BODY, webhook_routes
from bridge.push.store import SubscriptionRecord
from bridge.push.subscriptions import (
    LIFECYCLE_PATH,
    NOTIFICATION_PATH,
    SubscriptionManager,
    WebhookHealth,
)

__all__ = [
    "LIFECYCLE_PATH",
    "MAX_BODY",
    "NOTIFICATION_PATH",
    "ChangeDispatcher",
    "ChangeKind",
    "OnChange",
    "SubscriptionManager",
    "SubscriptionRecord",
    "WebhookHealth",
    "webhook_routes",
]
