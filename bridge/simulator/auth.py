"""The simulated Entra ID: OIDC discovery, the client-credentials token endpoint, and the
bearer-token check Graph performs (GRAPH-MAIL-FACTS §1).

Owns: AADSTS error bodies (§1.3), access-token minting (RS256 JWTs signed with the
simulator's own key) and validation, client secrets and certificate assertions.
Must not import anything from ``bridge`` outside ``bridge.simulator``.

Choice for ``common``/``organizations``/``consumers``: discovery answers (as Entra does,
with a ``{tenantid}`` issuer template), and the client-credentials token request is
refused with ``400 invalid_request AADSTS50059`` (no tenant-identifying information).
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from .certs import certificate_public_key_pem
from .errors import GraphError
from .model import App, World

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
MULTI_TENANT_ALIASES = {"common", "organizations", "consumers"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class AadResult:
    status: int
    body: dict[str, Any]


def aad_error(status: int, error: str, code: int, text: str, now: dt.datetime) -> AadResult:
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    return AadResult(
        status,
        {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}"
                f"\r\nTimestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def tenant_not_found(tenant: str, now: dt.datetime) -> AadResult:
    return aad_error(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, this "
        "may happen if there are no active subscriptions for the tenant.",
        now,
    )


def openid_configuration(base_url: str, tenant_segment: str, tenant_id: str) -> dict[str, Any]:
    """The v2.0 discovery document; MSAL needs authorization_endpoint and token_endpoint."""
    t = tenant_segment
    return {
        "token_endpoint": f"{base_url}/{t}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base_url}/{t}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base_url}/{tenant_id}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url}/oidc/userinfo",
        "authorization_endpoint": f"{base_url}/{t}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base_url}/{t}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base_url}/{t}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "roles", "appid"],
        "kerberos_endpoint": f"{base_url}/{t}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "simulator.invalid",
        "cloud_graph_host_name": "graph.simulator.invalid",
        "msgraph_host": base_url.split("://", 1)[-1],
        "rbac_url": "https://pas.windows.net",
    }


class TokenService:
    def __init__(self, world: World, signing_key_pem: bytes, base_url_getter: Any) -> None:
        self.world = world
        self.key = signing_key_pem
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(signing_key_pem, password=None)
        self.public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._base = base_url_getter
        self.lifetime = 3600

    def graph_audiences(self) -> set[str]:
        base = self._base()
        return {
            base,
            base + "/",
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/",
            GRAPH_APP_ID,
        }

    # -- token endpoint (§1.1, §1.3) --------------------------------------------------
    def token(self, tenant_segment: str, form: dict[str, str]) -> AadResult:
        now = self.world.now()
        if tenant_segment.lower() in MULTI_TENANT_ALIASES:
            return aad_error(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found in either the request or implied by "
                "any provided credentials.",
                now,
            )
        tenant = self.world.find_tenant(tenant_segment)
        if tenant is None:
            return tenant_not_found(tenant_segment, now)
        grant = form.get("grant_type", "")
        if grant != "client_credentials":
            return aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
                now,
            )
        client_id = form.get("client_id", "")
        with self.world.lock:
            app = self.world.apps.get(client_id)
            if app is None or app.tenant_id != tenant.id:
                return aad_error(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory "
                    f"'{tenant.domain}'. This can happen if the application has not been "
                    "installed by the administrator of the tenant or consented to by any user in "
                    "the tenant. You may have sent your authentication request to the wrong "
                    "tenant.",
                    now,
                )
            failure = self._authenticate(app, form, tenant_segment, now)
            if failure is not None:
                return failure
            scope = form.get("scope", "").strip()
            if len(scope.split()) != 1 or not scope.endswith("/.default"):
                return aad_error(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows "
                    "must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                    now,
                )
            resource = scope[: -len("/.default")]
            if resource not in self.graph_audiences():
                return aad_error(
                    400,
                    "invalid_resource",
                    500011,
                    f"The resource principal named {resource} was not found in the tenant named "
                    f"{tenant.domain}.",
                    now,
                )
            return AadResult(200, self._mint(app, resource))

    def _authenticate(
        self, app: App, form: dict[str, str], tenant_segment: str, now: dt.datetime
    ) -> AadResult | None:
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is not None:
            if app.secret is None or not hmac.compare_digest(secret.encode(), app.secret.encode()):
                return aad_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                    now,
                )
            if app.secret_expired:
                return aad_error(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{app.client_id}' are expired. "
                    "Visit the Azure portal to create new keys for your app: "
                    "https://aka.ms/NewClientSecret, or consider using certificate credentials "
                    "for added security: https://aka.ms/certCreds.",
                    now,
                )
            return None
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return aad_error(
                    400,
                    "invalid_request",
                    90014,
                    "The required field 'client_assertion_type' is missing from the credential.",
                    now,
                )
            return self._check_assertion(app, assertion, tenant_segment, now)
        return aad_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
            now,
        )

    def _check_assertion(
        self, app: App, assertion: str, tenant_segment: str, now: dt.datetime
    ) -> AadResult | None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return aad_error(
                401, "invalid_client", 50027, "JWT token is invalid or malformed.", now
            )
        x5t = header.get("x5t")
        x5t256 = header.get("x5t#S256")
        presented = _b64url_decode(x5t) if x5t else None
        presented256 = _b64url_decode(x5t256) if x5t256 else None
        if app.certificate_pem is None or not (
            (presented is not None and presented == app.thumbprint_sha1)
            or (presented256 is not None and presented256 == app.thumbprint_sha256)
        ):
            shown = (presented or presented256 or b"").hex().upper()
            return aad_error(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{shown}']",
                now,
            )
        base = self._base()
        audiences = [
            f"{base}/{tenant_segment}/oauth2/v2.0/token",
            f"{base}/{app.tenant_id}/oauth2/v2.0/token",
        ]
        try:
            claims = jwt.decode(
                assertion,
                certificate_public_key_pem(app.certificate_pem),
                algorithms=["RS256", "PS256"],
                audience=audiences,
                options={"require": ["exp", "aud", "iss", "sub"], "verify_iat": False},
                leeway=300,
            )
        except jwt.ExpiredSignatureError:
            return aad_error(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
                now,
            )
        except jwt.InvalidAudienceError:
            return aad_error(
                401,
                "invalid_client",
                700212,
                "No matching federated identity record found for presented assertion audience.",
                now,
            )
        except jwt.PyJWTError:
            return aad_error(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
                now,
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return aad_error(
                401,
                "invalid_client",
                700023,
                "Client assertion audience claim does not match Realm issuer.",
                now,
            )
        return None

    def _mint(self, app: App, resource: str) -> dict[str, Any]:
        now = int(self.world.clock())
        lifetime = self.lifetime
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{app.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app.client_id,
            "azp": app.client_id,
            "appidacr": "1" if app.secret else "2",
            "idtyp": "app",
            "oid": app.service_principal_id,
            "sub": app.service_principal_id,
            "roles": list(app.roles),
            "tid": app.tenant_id,
            "ver": "1.0",
            "uti": uuid.uuid4().hex[:22],
            "sim_gen": self.world.token_generation,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "sim-1"})
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    # -- Graph side (§1.3) ---------------------------------------------------------
    def validate_bearer(self, authorization: str | None) -> dict[str, Any]:
        if (
            not authorization
            or not authorization.lower().startswith("bearer ")
            or not authorization[7:].strip()
        ):
            raise _unauth("Access token is empty.")
        token = authorization[7:].strip()
        if token.count(".") != 2:
            raise _unauth("CompactToken parsing failed with error code: 80049217")
        try:
            claims = jwt.decode(
                token,
                self.public,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise _unauth("Access token validation failure.") from None
        if claims.get("aud") not in self.graph_audiences():
            raise _unauth("Access token validation failure. Invalid audience.")
        now = self.world.clock()
        if (
            claims.get("exp", 0) <= now
            or claims.get("nbf", 0) > now + 300
            or claims.get("sim_gen", -1) < self.world.token_generation
        ):
            raise _unauth("Access token has expired or is not yet valid.")
        return claims


def _unauth(message: str) -> GraphError:
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={
            "WWW-Authenticate": 'Bearer realm="", authorization_uri='
            '"https://login.microsoftonline.com/common/oauth2/authorize", '
            f'client_id="{GRAPH_APP_ID}"'
        },
    )


def _b64url_decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None
