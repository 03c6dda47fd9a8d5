"""CacheSettings from the bridge config's ``sync`` section."""

from __future__ import annotations

import dataclasses

from bridge.backend.cached import CacheSettings
from bridge.backend.remote import DeleteMode
from bridge.config import ExpungeMode, SyncConfig


def test_defaults_map_from_sync_config() -> None:
    settings = CacheSettings.from_config(SyncConfig())
    assert settings.expunge_mode is DeleteMode.SOFT
    assert settings.poll_watched == SyncConfig().poll_interval
    assert settings.poll_idle == SyncConfig().background_poll_interval
    assert settings.prefetch_days == SyncConfig().prefetch_days


def test_every_expunge_mode_maps() -> None:
    expected = {
        ExpungeMode.DELETE: DeleteMode.SOFT,
        ExpungeMode.TRASH: DeleteMode.TRASH,
        ExpungeMode.PERMANENT: DeleteMode.PERMANENT,
    }
    for mode, wanted in expected.items():
        config = dataclasses.replace(SyncConfig(), expunge_mode=mode, hidden_folders=True)
        settings = CacheSettings.from_config(config)
        assert settings.expunge_mode is wanted
        assert settings.include_hidden
