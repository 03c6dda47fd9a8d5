"""Tokens (secret and certificate), AADSTS sentences, missing roles, token renewal —
all against the Graph simulator over HTTPS."""

from __future__ import annotations

import uuid

import pytest

from bridge.backend.remote import RemoteAuthError, RemoteNotFound, RemotePermissionError
from bridge.graph import AppCredentials, GraphApp
from bridge.graph.auth import sha1_thumbprint
from bridge.graph.check import diagnose
from bridge.simulator import Simulator
from tests.conftest import SimTenant
from tests.graph.conftest import Sleeps, secret_credentials, sim_cloud

SMALL = b"From: {me}\r\nTo: bob@example.net\r\nSubject: hi\r\nMessage-ID: <{n}@t>\r\n\r\nhello\r\n"


async def _roles(tenant: SimTenant, creds: AppCredentials) -> frozenset[str]:
    graph = GraphApp(sim_cloud(tenant), creds)
    try:
        return await graph.token_roles()
    finally:
        await graph.aclose()


async def test_secret_credential_gets_a_token_with_roles(app: GraphApp) -> None:
    assert await app.token_roles() == {"Mail.ReadWrite", "Mail.Send", "User.Read.All"}


async def test_certificate_credential_gets_a_token(tenant: SimTenant) -> None:
    cert = Simulator.make_certificate("bridge-test")
    handle = tenant.sim.add_app(tenant.tenant.id, certificate_pem=cert.cert_pem)
    creds = AppCredentials(
        tenant.tenant.id,
        handle.client_id,
        certificate_pem=cert.key_pem.decode(),
        public_certificate_pem=cert.cert_pem.decode(),
    )
    assert sha1_thumbprint(cert.cert_pem.decode()) == cert.sha1_thumbprint_hex.upper()
    assert "BEGIN" not in repr(creds)
    assert "Mail.ReadWrite" in await _roles(tenant, creds)


async def test_wrong_secret_says_value_not_secret_id(tenant: SimTenant) -> None:
    with pytest.raises(RemoteAuthError, match="not its Secret ID") as info:
        await _roles(tenant, secret_credentials(tenant, client_secret="the-secret-id"))
    assert "the-secret-id" not in str(info.value)
    assert info.value.code == "AADSTS7000215"


async def test_expired_secret_says_where_to_make_a_new_one(tenant: SimTenant) -> None:
    tenant.sim.expire_secret(tenant.app.client_id)
    with pytest.raises(RemoteAuthError, match="Certificates & secrets") as info:
        await _roles(tenant, secret_credentials(tenant))
    assert tenant.app.secret is not None and tenant.app.secret not in str(info.value)


async def test_unknown_app_and_unknown_tenant(tenant: SimTenant) -> None:
    with pytest.raises(RemoteAuthError, match=r"AADSTS700016.*consented"):
        await _roles(tenant, secret_credentials(tenant, client_id=str(uuid.uuid4())))
    with pytest.raises(RemoteAuthError, match=r"AADSTS90002.*cloud"):
        await _roles(tenant, secret_credentials(tenant, tenant_id=str(uuid.uuid4())))


async def test_missing_mail_send_is_named(tenant: SimTenant, sleeps: Sleeps) -> None:
    tenant.sim.set_roles(tenant.app.client_id, ["Mail.ReadWrite", "User.Read.All"])
    graph = GraphApp(sim_cloud(tenant), secret_credentials(tenant), sleep=sleeps)
    try:
        mailbox = await graph.resolve_mailbox(tenant.alice.upn)
        mime = SMALL.replace(b"{me}", tenant.alice.upn.encode()).replace(b"{n}", b"1")
        with pytest.raises(
            RemotePermissionError, match=r"lacks the application permission Mail\.Send"
        ):
            await graph.remote(mailbox).send_mime(mime)
        findings = await diagnose(graph, [tenant.alice.upn])
    finally:
        await graph.aclose()
    perms = next(f for f in findings if f.subject == "permissions")
    assert not perms.ok and "Mail.Send" in perms.sentence
    assert next(f for f in findings if f.subject == tenant.alice.upn).ok


async def test_no_roles_at_all_means_no_admin_consent(tenant: SimTenant) -> None:
    tenant.sim.set_roles(tenant.app.client_id, [])
    graph = GraphApp(sim_cloud(tenant), secret_credentials(tenant))
    try:
        with pytest.raises(RemotePermissionError, match="admin consent has not been granted"):
            await graph.resolve_mailbox(tenant.alice.upn)
    finally:
        await graph.aclose()


async def test_unknown_user_and_mailbox_without_exchange(app: GraphApp, tenant: SimTenant) -> None:
    with pytest.raises(RemoteNotFound, match="does not exist in this tenant"):
        await app.resolve_mailbox(f"nobody@{tenant.tenant.domain}")
    ghost = tenant.sim.add_user(
        tenant.tenant.id, f"ghost@{tenant.tenant.domain}", has_mailbox=False
    )
    mailbox = await app.resolve_mailbox(ghost.upn)
    with pytest.raises(RemoteNotFound, match="MailboxNotEnabledForRESTAPI"):
        await app.remote(mailbox).list_folders()
    findings = await diagnose(app, [ghost.upn, tenant.alice.upn])
    assert [(f.subject, f.ok) for f in findings[2:]] == [
        (ghost.upn, False),
        (tenant.alice.upn, True),
    ]
    assert "unlicensed" in findings[2].sentence


async def test_resolve_by_alias_address(app: GraphApp, tenant: SimTenant) -> None:
    alias = f"alice.alias@{tenant.tenant.domain}"
    tenant.sim.add_alias(tenant.alice, alias)
    mailbox = await app.resolve_mailbox(alias)
    assert mailbox.id == tenant.alice.id
    by_id = await app.resolve_mailbox(tenant.alice.id)
    assert by_id.user_principal_name == tenant.alice.upn


async def test_token_is_renewed_after_the_simulator_revokes_it(
    app: GraphApp, tenant: SimTenant
) -> None:
    mailbox = await app.resolve_mailbox(tenant.alice.upn)
    remote = app.remote(mailbox)
    await remote.list_folders()
    first = await app.tokens.token()
    tenant.sim.expire_tokens()
    folders = await remote.list_folders()  # 401 → remove_tokens_for_client → new token
    assert any(f.well_known == "inbox" for f in folders)
    assert await app.tokens.token() != first


async def test_diagnose_reports_a_bad_secret_as_one_finding(tenant: SimTenant) -> None:
    graph = GraphApp(sim_cloud(tenant), secret_credentials(tenant, client_secret="nope"))
    try:
        findings = await diagnose(graph, [tenant.alice.upn])
    finally:
        await graph.aclose()
    assert len(findings) == 1 and not findings[0].ok and "AADSTS7000215" in findings[0].sentence
