"""Submission test harness: the real SubmissionServer in the test's loop, the real
GraphApp/GraphRemote, and the session Graph simulator behind them.

``SimDirectory`` is the only stand-in: a tiny account directory (what the composition
root builds over the account store) whose Remotes are real ``GraphRemote`` objects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from bridge.backend.remote import Remote
from bridge.backend.types import AccountIdentity
from bridge.graph import AppCredentials, GraphApp, cloud_by_name
from bridge.smtp import AuthLimits, SubmissionServer, UncertainSends
from tests.conftest import SimTenant

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


class SimDirectory:
    """Logins alice and bob; alice may also send as the shared mailbox."""

    def __init__(self, identities: dict[str, AccountIdentity], remotes: dict[str, Remote]):
        self.identities = identities
        self.remotes = remotes  # address (casefolded) -> Remote of that mailbox
        self.extra_routes: dict[tuple[str, str], Remote] = {}  # (login, address) -> Remote
        self.auth_calls: list[tuple[str, str]] = []

    async def authenticate(self, login: str, password: str, peer: str) -> AccountIdentity | None:
        self.auth_calls.append((login, peer))
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


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    path = tmp_path_factory.mktemp("smtp-tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return TLSMaterial(path, server, client)


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


@pytest.fixture
async def make_harness(tenant: SimTenant, tmp_path: Path) -> AsyncIterator[MakeHarness]:
    started: list[Harness] = []

    async def make(**server_kw: Any) -> Harness:
        graph_kw = server_kw.pop("graph", {})
        app = make_graph_app(tenant, **graph_kw)
        remotes: dict[str, Remote] = {}
        for user in (tenant.alice, tenant.bob, tenant.shared):
            assert user.mail is not None
            remotes[user.mail.casefold()] = app.remote(await app.resolve_mailbox(user.upn))
        assert tenant.alice.mail and tenant.bob.mail and tenant.shared.mail
        identities = {
            "alice": AccountIdentity(
                "alice", "alice", tenant.alice.mail, send_as=(tenant.shared.mail,)
            ),
            "bob": AccountIdentity("bob", "bob", tenant.bob.mail),
        }
        directory = SimDirectory(identities, remotes)
        harness_box: list[Harness] = []

        async def fake_sleep(seconds: float) -> None:
            harness_box[0].sleeps.append(seconds)

        def on_sent(
            identity: AccountIdentity, remote: Remote, message_id: str, mime: bytes
        ) -> None:
            harness_box[0].sent.append(Sent(identity, remote.mailbox.id, message_id, mime))

        clock: list[float] = [1_000_000.0]
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "allow_plaintext_auth": True,
            "hostname": "bridge.test",
            "sleep": fake_sleep,
            "on_sent": on_sent,
            "uncertain": UncertainSends(clock=lambda: clock[0]),
            "auth_limits": AuthLimits(failure_delay_seconds=1.5),
        }
        options.update(server_kw)
        server = SubmissionServer(directory, **options)
        harness = Harness(tenant, app, directory, server, clock=clock)
        harness_box.append(harness)
        await server.start()
        started.append(harness)
        return harness

    yield make
    for harness in started:
        await harness.server.stop()
        await harness.app.aclose()
