"""Fixtures for the foundation tests: a config file in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.secrets import generate_key


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write ``text`` as tmp_path/config.yaml and return its path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def bridge_config(tmp_path: Path, encryption_key: str) -> Path:
    """A config with a relative state_dir and an encryption key from a file."""
    (tmp_path / "key").write_text(encryption_key + "\n", encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text("state_dir: state\nsecrets:\n  encryption_key_file: key\n", encoding="utf-8")
    return path
