"""Token endpoint and bearer checks, driven by real msal (GRAPH-MAIL-FACTS §1)."""

from __future__ import annotations

import ssl
import warnings
from typing import TYPE_CHECKING

import httpx
import jwt
import pytest

from bridge.simulator import Simulator

from .conftest import Graph, MsalHttpClient, acquire, msal_app

if TYPE_CHECKING:
    from tests.conftest import SimTenant


def test_secret_credentials_with_real_msal(tenant: SimTenant) -> None:
    result = acquire(msal_app(tenant), tenant)
    assert result["token_type"] == "Bearer"
    assert result["token_source"] == "identity_provider"
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["tid"] == tenant.tenant.id
    assert claims["appid"] == tenant.app.client_id
    assert set(claims["roles"]) == {"Mail.ReadWrite", "Mail.Send", "User.Read.All"}
    assert claims["aud"] == tenant.sim.graph_url
    assert claims["exp"] - claims["iat"] == tenant.sim.token_lifetime


def test_certificate_credentials_with_real_msal(tenant: SimTenant) -> None:
    sim = tenant.sim
    cert = sim.make_certificate()
    app = sim.add_app(tenant.tenant.id, certificate_pem=cert.cert_pem)
    assert app.secret is None
    assert app.thumbprint == cert.sha1_thumbprint_hex
    cred = {"private_key": cert.key_pem.decode(), "thumbprint": cert.sha1_thumbprint_hex}
    result = acquire(msal_app(tenant, cred, client_id=app.client_id), tenant)
    assert "access_token" in result, result
    # A certificate the app did not register is refused.
    other = sim.make_certificate()
    bad = {"private_key": other.key_pem.decode(), "thumbprint": other.sha1_thumbprint_hex}
    result = acquire(msal_app(tenant, bad, client_id=app.client_id), tenant)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_certificate_with_wrong_key_but_right_thumbprint_fails_signature(tenant: SimTenant) -> None:
    sim = tenant.sim
    cert = sim.make_certificate()
    other = sim.make_certificate()
    app = sim.add_app(tenant.tenant.id, certificate_pem=cert.cert_pem)
    forged = {"private_key": other.key_pem.decode(), "thumbprint": cert.sha1_thumbprint_hex}
    result = acquire(msal_app(tenant, forged, client_id=app.client_id), tenant)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_wrong_secret_is_7000215(tenant: SimTenant) -> None:
    result = acquire(msal_app(tenant, "not-the-secret"), tenant)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert "\r\nTrace ID: " in result["error_description"]
    assert "\r\nCorrelation ID: " in result["error_description"]


def test_expired_secret_is_7000222(tenant: SimTenant) -> None:
    tenant.sim.expire_secret(tenant.app.client_id)
    result = acquire(msal_app(tenant), tenant)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000222]
    assert tenant.app.client_id in result["error_description"]


def test_unknown_client_is_700016(tenant: SimTenant) -> None:
    result = acquire(msal_app(tenant, client_id="11111111-2222-3333-4444-555555555555"), tenant)
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


def test_app_of_another_tenant_is_700016(tenant: SimTenant) -> None:
    other = tenant.sim.add_tenant("elsewhere.example")
    result = acquire(msal_app(tenant, tenant_segment=other.id), tenant)
    assert result["error_codes"] == [700016]


def test_unknown_tenant_fails_msal_construction_with_90002(tenant: SimTenant) -> None:
    with pytest.raises(ValueError) as info:
        msal_app(tenant, tenant_segment="nonexistent.example")
    # msal 1.39 re-raises its own message; the discovery body is in the chained error.
    text = f"{info.value} {info.value.__context__}"
    assert "AADSTS90002" in text
    assert "invalid_tenant" in text


def test_tenant_by_domain_works(tenant: SimTenant) -> None:
    result = acquire(msal_app(tenant, tenant_segment=tenant.tenant.domain), tenant)
    assert "access_token" in result


def test_common_authority_is_refused_for_client_credentials(tenant: SimTenant) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # msal: "unreliable" (§1.1)
        result = acquire(msal_app(tenant, tenant_segment="common"), tenant)
    assert result["error"] == "invalid_request"
    assert result["error_codes"] == [50059]


def test_openid_configuration_shapes(tenant: SimTenant) -> None:
    sim = tenant.sim
    ctx = ssl.create_default_context(cafile=str(sim.ca_file))
    with httpx.Client(verify=ctx) as c:
        v2 = c.get(f"{sim.base_url}/{tenant.tenant.id}/v2.0/.well-known/openid-configuration")
        v1 = c.get(f"{sim.base_url}/{tenant.tenant.id}/.well-known/openid-configuration")
    assert v2.status_code == 200 and v1.status_code == 200
    doc = v2.json()
    assert doc["token_endpoint"] == f"{sim.base_url}/{tenant.tenant.id}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"].startswith(sim.base_url)
    assert doc["issuer"] == f"{sim.base_url}/{tenant.tenant.id}/v2.0"


def test_scope_must_be_dot_default(tenant: SimTenant) -> None:
    result = msal_app(tenant).acquire_token_for_client(scopes=[f"{tenant.sim.graph_url}/Mail.Read"])
    assert result["error"] == "invalid_scope"


def test_tls_is_verified_against_the_ca(simulator: Simulator) -> None:
    with httpx.Client(verify=ssl.create_default_context()) as c, pytest.raises(httpx.ConnectError):
        c.get(f"{simulator.base_url}/common/v2.0/.well-known/openid-configuration")
    # localhost is in the SAN too.
    ctx = ssl.create_default_context(cafile=str(simulator.ca_file))
    with httpx.Client(verify=ctx) as c:
        r = c.get(
            f"https://localhost:{simulator.port}/common/v2.0/.well-known/openid-configuration"
        )
    assert r.status_code == 200


def test_graph_rejects_missing_garbage_and_expired_tokens(graph: Graph) -> None:
    t = graph.t
    path = f"/users/{t.alice.id}/mailFolders"
    r = graph.client.get(graph.root + path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert r.json()["error"]["message"] == "Access token is empty."
    assert "WWW-Authenticate" in r.headers
    r = graph.client.get(graph.root + path, headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401
    assert r.json()["error"]["message"].startswith("CompactToken parsing failed")
    assert graph.get(path).status_code == 200
    t.sim.expire_tokens()
    r = graph.get(path)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Access token has expired or is not yet valid."
    # msal still has the (now revoked) token cached; after removing it a new one works.
    app = msal_app(t)
    fresh = acquire(app, t)["access_token"]
    r = graph.client.get(graph.root + path, headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 200


def test_token_lifetime_expiry(tenant: SimTenant) -> None:
    sim = tenant.sim
    sim.token_lifetime = 1
    try:
        token = acquire(msal_app(tenant), tenant)["access_token"]
    finally:
        sim.token_lifetime = 3600
    ctx = ssl.create_default_context(cafile=str(sim.ca_file))
    real_clock = sim.world.clock
    sim.world.clock = lambda: real_clock() + 5
    try:
        with httpx.Client(verify=ctx) as c:
            r = c.get(
                f"{sim.base_url}/v1.0/users/{tenant.alice.id}/mailFolders",
                headers={"Authorization": f"Bearer {token}"},
            )
    finally:
        sim.world.clock = real_clock
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_missing_role_is_403(tenant: SimTenant) -> None:
    sim = tenant.sim
    app = sim.add_app(tenant.tenant.id, roles=("Mail.Read",))
    result = msal_app(tenant, app.secret, client_id=app.client_id).acquire_token_for_client(
        scopes=[f"{sim.graph_url}/.default"]
    )
    h = {"Authorization": f"Bearer {result['access_token']}"}
    ctx = ssl.create_default_context(cafile=str(sim.ca_file))
    base = f"{sim.base_url}/v1.0/users/{tenant.alice.id}"
    with httpx.Client(verify=ctx) as c:
        assert c.get(f"{base}/mailFolders", headers=h).status_code == 200
        r = c.post(f"{base}/mailFolders", headers=h, json={"displayName": "X"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "ErrorAccessDenied"
        assert r.json()["error"]["message"] == "Access is denied. Check credentials and try again."
        r = c.post(f"{base}/sendMail", headers=h, json={"message": {}})
        assert r.status_code == 403
        assert c.get(base, headers=h).status_code == 403  # no User.Read.All
    sim.set_roles(app.client_id, ("Mail.ReadWrite",))
    app2 = msal_app(tenant, app.secret, client_id=app.client_id)
    token = acquire(app2, tenant)["access_token"]
    with httpx.Client(verify=ctx) as c:
        r = c.post(
            f"{base}/mailFolders",
            headers={"Authorization": f"Bearer {token}"},
            json={"displayName": "X"},
        )
    assert r.status_code == 201


def test_msal_http_client_helper_closes(tenant: SimTenant) -> None:
    client = MsalHttpClient(str(tenant.sim.ca_file))
    r = client.get(
        f"{tenant.sim.base_url}/{tenant.tenant.id}/v2.0/.well-known/openid-configuration"
    )
    client.close()
    assert r.status_code == 200
