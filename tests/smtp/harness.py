"""Submission test harness: the real SubmissionServer in the test's loop, the real
GraphApp/GraphRemote, and the session Graph simulator behind them (fixtures in conftest).

``SimDirectory`` is the only stand-in: a tiny account directory (what the composition
root builds over the account store) whose Remotes are real ``GraphRemote`` objects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.backend.remote import Remote
from bridge.backend.types import AccountIdentity
from bridge.graph import AppCredentials, GraphApp, cloud_by_name
from bridge.smtp import SubmissionServer
from tests.conftest import SimTenant

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


class SimDirectory:
    """Logins alice and bob; alice may also send as the shared mailbox."""

    def __init__(self, identities: dict[str, AccountIdentity], remotes: dict[str, Remote]):
        self.identities = identities
        self.remotes = remotes  # address (casefolded) -> Remote of that mailbox
        self.extra_routes: dict[tuple[str, str], Remote] = {}  # (login, address) -> Remote
        self.auth_calls: list[tuple[str, str]] = []
        self.fail_with: Exception | None = None  # raised by authenticate when set

    async def authenticate(self, login: str, password: str, peer: str) -> AccountIdentity | None:
        self.auth_calls.append((login, peer))
        if self.fail_with is not None:
            raise self.fail_with
        identity = self.identities.get(login)
        if identity is None or PASSWORDS.get(login) != password:
            return None
        return identity

    def sender_remote(self, identity: AccountIdentity, from_address: str) -> Remote | None:
        key = from_address.casefold()
        extra = self.extra_routes.get((identity.login, key))
        if extra is not None:
            return extra
        allowed = {identity.email.casefold(), *(a.casefold() for a in identity.send_as)}
        return self.remotes.get(key) if key in allowed else None


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


def make_graph_app(tenant: SimTenant, **kw: Any) -> GraphApp:
    settings = tenant.cloud_settings()
    cloud = cloud_by_name(
        "custom",
        login_url=settings["login_url"],
        graph_url=settings["graph_url"],
        ca_file=settings["ca_file"],
    )
    credentials = AppCredentials(
        tenant_id=settings["tenant_id"],
        client_id=settings["client_id"],
        client_secret=settings["client_secret"],
    )
    options: dict[str, Any] = {"max_retries": 0, "max_total_wait": 5.0, "sleep": _no_wait}
    options.update(kw)
    return GraphApp(cloud, credentials, **options)


@dataclass
class TLSMaterial:
    ca_file: Path
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext


@dataclass
class Sent:
    identity: AccountIdentity
    mailbox_id: str
    message_id: str
    mime: bytes


@dataclass
class Harness:
    tenant: SimTenant
    app: GraphApp
    directory: SimDirectory
    server: SubmissionServer
    sent: list[Sent] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    clock: list[float] = field(default_factory=lambda: [1_000_000.0])

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def alice(self) -> str:
        assert self.tenant.alice.mail is not None
        return self.tenant.alice.mail

    @property
    def bob(self) -> str:
        assert self.tenant.bob.mail is not None
        return self.tenant.bob.mail

    @property
    def shared(self) -> str:
        assert self.tenant.shared.mail is not None
        return self.tenant.shared.mail


MakeHarness = Callable[..., Awaitable[Harness]]
