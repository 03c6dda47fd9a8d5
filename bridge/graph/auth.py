"""App-only tokens: one MSAL ``ConfidentialClientApplication`` per app registration.

Owns ``AppCredentials`` (secrets hidden from ``repr``), ``TokenProvider`` and the small
synchronous HTTP transport MSAL uses for custom clouds. MSAL is blocking and its
constructor does network I/O (OIDC discovery, facts §1.2), so everything MSAL does runs
in a worker thread, one call at a time per app. MSAL's in-memory cache makes
``acquire_token_for_client`` cheap, so it is called before every Graph request.
Imports: msal, httpx, the standard library, ``bridge.backend.remote``, ``bridge.errors``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal

from bridge.backend.remote import RemoteAuthError, RemoteError, RemoteUnavailable
from bridge.errors import ConfigError
from bridge.graph.clouds import Cloud
from bridge.graph.errors import (
    auth_error_from_msal,
    auth_error_sentence,
    is_tls_failure,
    network_sentence,
    tls_sentence,
    token_roles,
)

log = logging.getLogger(__name__)

# Facts §1.1: client credentials need a GUID or a verified domain, never a multi-tenant alias.
_MULTI_TENANT_ALIASES = {"common", "organizations", "consumers"}


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """One app registration. Either ``client_secret`` or a certificate (PEM private key
    plus the SHA-1 thumbprint, or the public certificate PEM it can be computed from)."""

    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)  # the private key, PEM
    certificate_thumbprint: str | None = None
    public_certificate_pem: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        tenant = self.tenant_id.strip()
        if not tenant:
            raise ConfigError("tenant_id is empty; use the tenant's GUID or a verified domain")
        if tenant.lower() in _MULTI_TENANT_ALIASES:
            raise ConfigError(
                f"tenant_id {tenant!r} cannot be used with app-only (client credentials) "
                "access; use the tenant's GUID or one of its verified domains"
            )
        if not self.client_id.strip():
            raise ConfigError("client_id is empty; use the app registration's Application ID")
        if not self.client_secret and not self.certificate_pem:
            raise ConfigError("the app needs a client secret or a certificate private key")
        if self.certificate_pem and not (
            self.certificate_thumbprint or self.public_certificate_pem
        ):
            raise ConfigError(
                "a certificate credential needs the certificate thumbprint or the public "
                "certificate PEM"
            )

    @property
    def kind(self) -> str:
        return "certificate" if self.certificate_pem else "secret"

    def msal_credential(self) -> str | dict[str, str]:
        """The ``client_credential`` argument MSAL expects (facts §1.2)."""
        if self.certificate_pem:
            cred = {
                "private_key": self.certificate_pem,
                "thumbprint": self.certificate_thumbprint
                or sha1_thumbprint(self.public_certificate_pem or ""),
            }
            if self.public_certificate_pem:
                cred["public_certificate"] = self.public_certificate_pem  # sends x5c
            return cred
        assert self.client_secret is not None  # guaranteed by __post_init__
        return self.client_secret


_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def sha1_thumbprint(public_certificate_pem: str) -> str:
    """SHA-1 over the DER of the first certificate in a PEM (what Entra shows)."""
    match = _PEM_CERT.search(public_certificate_pem)
    if not match:
        raise ConfigError("public_certificate_pem contains no PEM certificate")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise ConfigError("public_certificate_pem is not valid base64") from exc
    return hashlib.sha1(der).hexdigest().upper()


class _Response:
    """What MSAL reads from a transport response (requests-like)."""

    __slots__ = ("headers", "status_code", "text")

    def __init__(self, status_code: int, text: str, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.text = text
        self.headers = dict(headers)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise httpx.HTTPStatusError(
                f"HTTP {self.status_code}",
                request=httpx.Request("GET", "https://invalid.invalid/"),
                response=httpx.Response(self.status_code),
            )


class MsalHttpClient:
    """A synchronous transport for MSAL over httpx, trusting an explicit CA per request.

    Facts §1.2: ``requests`` lets ``REQUESTS_CA_BUNDLE`` override a Session's ``verify``;
    httpx reads ``SSL_CERT_FILE`` when ``verify`` is True. Handing httpx a ready
    ``ssl.SSLContext`` makes the configured CA the one that is used, whatever the
    environment says. Proxies (``HTTPS_PROXY``) are still honoured (``trust_env``).
    """

    def __init__(self, ca_file: str | None, *, timeout: float = 30.0) -> None:
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=ca_file)
        self._client = httpx.Client(verify=verify, timeout=timeout, trust_env=True)

    def _wrap(self, resp: httpx.Response) -> _Response:
        return _Response(resp.status_code, resp.text, resp.headers)

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **_ignored: Any,
    ) -> _Response:
        return self._wrap(self._client.get(url, params=params, headers=headers))

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **_ignored: Any,
    ) -> _Response:
        if isinstance(data, str | bytes):
            resp = self._client.post(url, params=params, content=data, headers=headers)
        else:
            # MSAL hands the client assertion over as bytes; requests form-encodes bytes
            # as their text, httpx would write "b'...'". Decode first.
            form = {
                k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in (data or {}).items()
            }
            resp = self._client.post(url, params=params, data=form, headers=headers)
        return self._wrap(resp)

    def close(self) -> None:
        self._client.close()


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError | OSError | ConnectionError | TimeoutError):
        return True
    # MSAL's default transport is requests; do not import it, recognise it by module.
    return type(exc).__module__.startswith(("requests", "urllib3"))


class TokenProvider:
    """App-only access tokens for one (cloud, tenant, client id).

    ``token()`` returns a valid token (from MSAL's cache when it can); ``invalidate()``
    forgets cached tokens after Graph answered 401. Errors are ``RemoteAuthError`` with a
    sentence an admin can act on, or ``RemoteUnavailable`` when Entra ID is unreachable.
    """

    def __init__(self, cloud: Cloud, credentials: AppCredentials, *, timeout: float = 30.0):
        self.cloud = cloud
        self.credentials = credentials
        self._timeout = timeout
        self._app: msal.ConfidentialClientApplication | None = None
        self._http: MsalHttpClient | None = None
        self._lock = asyncio.Lock()  # MSAL calls for this app run one at a time
        self._last_token: str | None = None

    def __repr__(self) -> str:
        return (
            f"TokenProvider(cloud={self.cloud.name!r}, tenant={self.credentials.tenant_id!r}, "
            f"client_id={self.credentials.client_id!r})"
        )

    @property
    def _host(self) -> str:
        return urlsplit(self.cloud.login_url).netloc

    def _build(self) -> msal.ConfidentialClientApplication:
        """Construct the MSAL app (blocking: it fetches the OIDC configuration)."""
        kwargs: dict[str, Any] = {}
        if self.cloud.ca_file is not None or self.cloud.is_custom:
            self._http = MsalHttpClient(
                str(self.cloud.ca_file) if self.cloud.ca_file else None, timeout=self._timeout
            )
            kwargs["http_client"] = self._http
        if self.cloud.is_custom:
            # Facts §1.2: unknown hosts would trigger instance discovery at
            # login.microsoftonline.com; a custom authority is trusted as configured.
            kwargs["instance_discovery"] = False
            kwargs["validate_authority"] = False
        return msal.ConfidentialClientApplication(
            self.credentials.client_id,
            client_credential=self.credentials.msal_credential(),
            authority=self.cloud.authority(self.credentials.tenant_id),
            timeout=self._timeout,
            **kwargs,
        )

    def _error_from_exception(self, exc: BaseException) -> RemoteError:
        # MSAL re-raises discovery failures as a generic ValueError; the Entra answer
        # (with its AADSTS code) is in the exception chain.
        chain: list[BaseException] = []
        cur: BaseException | None = exc
        while cur is not None and cur not in chain and len(chain) < 6:
            chain.append(cur)
            cur = cur.__cause__ or cur.__context__
        text = " | ".join(str(e) for e in chain)
        if any(is_tls_failure(e) for e in chain):
            return RemoteUnavailable(tls_sentence(self._host))
        if any(_is_network_error(e) for e in chain):
            exc = next(e for e in chain if _is_network_error(e))
        if "AADSTS90002" in text or "invalid_tenant" in text:
            return RemoteAuthError(
                auth_error_sentence(
                    [90002],
                    "",
                    tenant_id=self.credentials.tenant_id,
                    client_id=self.credentials.client_id,
                    cloud=self.cloud.name,
                ),
                code="AADSTS90002",
            )
        if _is_network_error(exc):
            return RemoteUnavailable(network_sentence(self._host, exc))
        if "OIDC Discovery failed" in text or "Unable to get authority configuration" in text:
            return RemoteAuthError(
                f"The login endpoint {self._host} did not accept tenant "
                f"{self.credentials.tenant_id}; check the tenant id and the configured cloud."
            )
        if "private key" in text.lower() or "PEM" in text:
            return RemoteAuthError(
                f"The certificate private key of app {self.credentials.client_id} could not "
                "be loaded; check that it is an unencrypted PEM private key."
            )
        return RemoteAuthError(
            f"Token acquisition for app {self.credentials.client_id} failed "
            f"({type(exc).__name__}); check the app registration settings."
        )

    def _acquire_sync(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build()
        result = self._app.acquire_token_for_client(scopes=[self.cloud.scope])
        return result if isinstance(result, dict) else {}

    async def token(self) -> str:
        async with self._lock:
            try:
                result = await asyncio.to_thread(self._acquire_sync)
            except Exception as exc:  # MSAL raises ValueError/transport errors
                err = self._error_from_exception(exc)
                log.warning("token request failed: %s", err)
                raise err from None
        access = result.get("access_token")
        if isinstance(access, str) and access:
            self._last_token = access
            return access
        err = auth_error_from_msal(
            result,
            tenant_id=self.credentials.tenant_id,
            client_id=self.credentials.client_id,
            cloud=self.cloud.name,
        )
        log.warning("token request refused: %s", err)
        raise err

    async def invalidate(self, rejected: str | None = None) -> None:
        """Forget cached tokens (Graph said 401); the next ``token()`` asks Entra ID.

        With ``rejected`` (the token Graph refused) nothing happens when a newer token
        is already cached: ten requests failing together renew the token once.
        """
        async with self._lock:
            if rejected is not None and self._last_token not in (None, rejected):
                return
            app = self._app
            self._last_token = None
            if app is not None:
                await asyncio.to_thread(app.remove_tokens_for_client)

    async def roles(self) -> frozenset[str]:
        """The application permissions in the current token (``roles`` claim)."""
        return token_roles(await self.token())

    def cached_roles(self) -> frozenset[str] | None:
        """Roles of the last token handed out, without any I/O (None if none yet)."""
        return token_roles(self._last_token) if self._last_token else None

    async def aclose(self) -> None:
        async with self._lock:
            if self._http is not None:
                await asyncio.to_thread(self._http.close)
                self._http = None
            self._app = None
