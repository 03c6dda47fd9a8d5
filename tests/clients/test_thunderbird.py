"""Thunderbird (Debian's, headless, driven through Marionette) against ``demo``: it must
download exactly what the bridge serves, folder by folder, byte for byte. See
``thunderbird_check.py`` for how; the same check can be run by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.thunderbird_check import check


@pytest.mark.timeout(600)
def test_thunderbird_downloads_what_the_bridge_serves(tmp_path: Path) -> None:
    problems = check(tmp_path, timeout=120.0)
    assert problems == []
