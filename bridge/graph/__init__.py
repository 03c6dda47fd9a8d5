"""Microsoft Graph client: the only code that knows Graph URLs, JSON and MSAL.

Public API::

    cloud_by_name(name, *, login_url=None, graph_url=None, ca_file=None) -> Cloud
    AppCredentials(tenant_id, client_id, client_secret=None, certificate_pem=None,
                   certificate_thumbprint=None, public_certificate_pem=None)
    TokenProvider(cloud, credentials)         .token() .invalidate() .roles() .aclose()
    GraphApp(cloud, credentials, *, max_concurrency_per_mailbox=4, budget_per_window=9000,
             budget_window=600.0, timeout=60.0, max_retries=6, clock=..., sleep=...)
        .resolve_mailbox(user) -> RemoteMailbox      .token_roles() -> frozenset[str]
        .remote(mailbox) -> GraphRemote              .stats(mailbox_id) -> MailboxStats
        .create_subscription / renew_subscription / delete_subscription /
        reauthorize_subscription                     .aclose()
    GraphRemote  implements bridge.backend.remote.Remote (+ well_known_folders(),
                 folder_id(), and the subscription helpers for its mailbox)
    check.diagnose(app, users) -> list[Finding]

Exception tree (from ``bridge.backend.remote``; ``str()`` is one sentence an admin can
act on, never containing a secret or token)::

    RemoteError
    ├── RemoteUnavailable        throttled (retry_after set), 5xx, network, TLS trust
    │   └── OutcomeUnknown       create/send/copy/move sent, no answer: check, then retry
    ├── RemoteAuthError          AADSTS… from Entra ID, or 401 after one token renewal
    ├── RemotePermissionError    403: missing role, no admin consent, access policy
    ├── RemoteNotFound           404: item/folder gone, unknown user, mailbox not enabled
    ├── RemoteConflict           409: folder name exists
    ├── RemoteRejected           other 4xx (size, bad MIME, …)
    └── DeltaTokenExpired        410: restart the folder's delta round

Configuration mistakes (tenant ``common``, bad URLs, missing credential parts) raise
``bridge.errors.ConfigError`` at construction.

May import only httpx, msal, the standard library, ``bridge.backend.remote`` and
``bridge.errors`` (tests/test_layering.py).
"""

from __future__ import annotations

from bridge.graph.auth import AppCredentials, TokenProvider
from bridge.graph.client import GraphApp, MailboxStats
from bridge.graph.clouds import Cloud, cloud_by_name
from bridge.graph.remote import GraphRemote

__all__ = [
    "AppCredentials",
    "Cloud",
    "GraphApp",
    "GraphRemote",
    "MailboxStats",
    "TokenProvider",
    "cloud_by_name",
]
