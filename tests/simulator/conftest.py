"""Test helpers for the simulator suite: real msal for tokens, real httpx over HTTPS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import msal
import pytest

if TYPE_CHECKING:
    from tests.conftest import SimTenant


class MsalHttpClient:
    """An msal ``http_client`` that verifies TLS with the simulator's CA on every request
    (so REQUESTS_CA_BUNDLE cannot override it, §1.2)."""

    def __init__(self, ca_file: str) -> None:
        self._client = httpx.Client(verify=ssl.create_default_context(cafile=ca_file), timeout=30)

    def get(
        self, url: str, params: Any = None, headers: Any = None, **kwargs: Any
    ) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> httpx.Response:
        if isinstance(data, dict):
            # requests (msal's default transport) form-encodes bytes values as text; httpx
            # would str() them, so decode here (msal passes the client assertion as bytes).
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self._client.post(url, params=params, data=data, headers=headers)

    def close(self) -> None:
        self._client.close()


def msal_app(
    t: SimTenant,
    credential: Any = None,
    client_id: str | None = None,
    tenant_segment: str | None = None,
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id or t.app.client_id,
        client_credential=credential if credential is not None else t.app.secret,
        authority=f"{t.sim.base_url}/{tenant_segment or t.tenant.id}",
        validate_authority=False,
        instance_discovery=False,
        http_client=MsalHttpClient(str(t.sim.ca_file)),
    )


def acquire(app: msal.ConfidentialClientApplication, t: SimTenant) -> dict[str, Any]:
    return app.acquire_token_for_client(scopes=[f"{t.sim.graph_url}/.default"])  # type: ignore[no-any-return]


@dataclass
class Graph:
    """httpx against ``/v1.0`` with a bearer token from msal."""

    t: SimTenant
    token: str
    client: httpx.Client

    @property
    def root(self) -> str:
        return f"{self.t.sim.base_url}/v1.0"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(extra or {})
        return h

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        url = path if path.startswith("https://") else self.root + path
        return self.client.request(method, url, headers=self.headers(headers), **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def mb(self, user: Any) -> str:
        return f"/users/{user.id}"


def token_for(t: SimTenant) -> str:
    result = acquire(msal_app(t), t)
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture
def graph(tenant: SimTenant) -> Iterator[Graph]:
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(tenant.sim.ca_file)), timeout=30
    ) as client:
        yield Graph(tenant, token_for(tenant), client)
