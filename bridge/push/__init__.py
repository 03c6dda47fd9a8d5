"""Push: Graph change notifications (webhooks) and the subscriptions behind them.

``SubscriptionManager`` (``subscriptions``) keeps one Graph subscription per account
alive and verifies notifications; ``webhook_routes`` (``receiver``) are the aiohttp
routes Graph posts to; ``ChangeDispatcher`` (``dispatch``) turns accepted notifications
into debounced ``on_change(account_id, folder_id)`` calls, which the composition root
wires to the account's ``SyncEngine.nudge``.

Wiring (composition root)::

    manager = SubscriptionManager(
        store, graph_app_for_account, config.sync.webhook_public_url,
        on_change=lambda account_id, folder_id: engine_of(account_id).nudge(folder_id),
        fallback_poll_seconds=config.sync.poll_interval,
        on_health=lambda account_id, healthy: ...,  # let the engine poll slower/faster
    )
    await manager.start()                         # load rows, dispatcher, renewal loop
    make_http_app(..., extra_routes=webhook_routes(manager))
    await manager.retain_accounts(ids_of_configured_accounts)
    await manager.add_account(account_id, mailbox)  # after resolve_mailbox, per account
    await manager.remove_account(account_id)        # from on_account_removed
    await manager.stop()                             # at shutdown (subscriptions live on)

``on_change`` may be called for an account whose engine is not running (a notification
for a subscription of an account not started yet): ignore those.

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
