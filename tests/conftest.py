"""Shared fixtures: one Graph simulator per test session, a fresh tenant per test.

Other test packages depend on these names: ``simulator`` and ``tenant`` (a ``SimTenant``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from bridge.simulator import AppHandle, Simulator, TenantHandle, UserHandle

# CI replays the same examples every run (a landing must not depend on a lucky draw);
# developers' runs keep exploring new ones. Long fuzzing lives in bench/fuzz_wire.py.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

_tenant_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SimTenant:
    """A tenant on the session simulator: one app with all three roles, alice, bob and a
    shared mailbox that alice may send as."""

    sim: Simulator
    tenant: TenantHandle
    app: AppHandle
    alice: UserHandle
    bob: UserHandle
    shared: UserHandle

    def cloud_settings(self) -> dict[str, str]:
        return {
            "login_url": self.sim.login_url,
            "graph_url": self.sim.graph_url,
            "ca_file": str(self.sim.ca_file),
            "tenant_id": self.tenant.id,
            "client_id": self.app.client_id,
            "client_secret": self.app.secret or "",
        }


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    state: Path = tmp_path_factory.mktemp("graph-simulator")
    sim = Simulator(state_dir=state, persist=False)  # nothing to keep after the session
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def tenant(simulator: Simulator) -> Iterator[SimTenant]:
    n = next(_tenant_numbers)
    domain = f"t{n}.contoso.example"
    t = simulator.add_tenant(domain)
    app = simulator.add_app(t.id, roles=("Mail.ReadWrite", "Mail.Send", "User.Read.All"))
    alice = simulator.add_user(t.id, f"alice@{domain}", display_name="Alice Anders")
    bob = simulator.add_user(t.id, f"bob@{domain}", display_name="Bob Berg")
    shared = simulator.add_user(t.id, f"shared@{domain}", display_name="Shared Desk", shared=True)
    simulator.grant_send_as(mailbox=shared, to=alice)
    yield SimTenant(simulator, t, app, alice, bob, shared)
    # Faults are session-wide: a test that set them must not leak them into the next one.
    simulator.faults.clear()
