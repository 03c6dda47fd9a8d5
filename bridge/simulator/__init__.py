"""A Microsoft Graph (v1.0 mail) simulator: a real HTTPS server on loopback with an Entra
ID token endpoint, used by the tests, the benchmarks and ``graph-mail-bridge demo``.

Owns: everything under ``bridge/simulator``. It shares no code with ``bridge.graph`` (the
bridge's client) and imports nothing from ``bridge`` outside this package, so a bug in
the client cannot hide behind the same bug in the simulator. See README.md.
"""

from __future__ import annotations

from .certs import ClientCertificate, make_client_certificate
from .faults import Faults
from .model import SentRecord
from .simulator import AppHandle, Simulator, TenantHandle, UserHandle
from .subscriptions import Delivery
from .throttle import Counters

__all__ = [
    "AppHandle",
    "ClientCertificate",
    "Counters",
    "Delivery",
    "Faults",
    "SentRecord",
    "Simulator",
    "TenantHandle",
    "UserHandle",
    "make_client_certificate",
]
