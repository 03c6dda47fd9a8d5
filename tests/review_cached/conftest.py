"""Fixtures of the review tests of the Graph-backed mailbox layer (see tests/cached/harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.cached.harness import Account, open_account


@pytest.fixture
async def account(tenant: Any, tmp_path: Path) -> AsyncIterator[Account]:
    acc, app = await open_account(tenant, tmp_path / "alice")
    await acc.sync()
    acc.events.clear()
    try:
        yield acc
    finally:
        await acc.close()
        await app.aclose()
