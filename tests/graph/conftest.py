"""Fixtures for the Graph client tests: a GraphApp pointed at the session simulator.

``sleeps`` records every back-off the client asked for and returns at once, so retry
tests neither sleep nor depend on timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.graph import AppCredentials, Cloud, GraphApp, cloud_by_name
from tests.conftest import SimTenant


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sim_cloud(tenant: SimTenant) -> Cloud:
    cs = tenant.cloud_settings()
    return cloud_by_name(
        "custom", login_url=cs["login_url"], graph_url=cs["graph_url"], ca_file=cs["ca_file"]
    )


def secret_credentials(tenant: SimTenant, **changes: str) -> AppCredentials:
    cs = tenant.cloud_settings()
    fields = {
        "tenant_id": cs["tenant_id"],
        "client_id": cs["client_id"],
        "client_secret": cs["client_secret"],
        **changes,
    }
    return AppCredentials(**fields)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def app(tenant: SimTenant, sleeps: Sleeps) -> AsyncIterator[GraphApp]:
    graph = GraphApp(sim_cloud(tenant), secret_credentials(tenant), sleep=sleeps)
    try:
        yield graph
    finally:
        await graph.aclose()
