"""Fixtures for the real-client suite: the whole bridge over the Graph simulator.

Re-exports ``running_bridge`` (see ``tests/e2e/conftest.py``).
"""

from __future__ import annotations

from tests.e2e.conftest import running_bridge  # noqa: F401
