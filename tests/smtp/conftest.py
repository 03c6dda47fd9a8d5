"""Fixtures for the submission tests; the harness classes live in ``harness``."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from bridge.backend.remote import Remote
from bridge.backend.types import AccountIdentity
from bridge.smtp import AuthLimits, SubmissionServer, UncertainSends
from tests.conftest import SimTenant
from tests.smtp.harness import (
    Harness,
    MakeHarness,
    Sent,
    SimDirectory,
    TLSMaterial,
    make_graph_app,
)


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
