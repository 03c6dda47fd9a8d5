"""Fixtures for the conformance suite: the same IMAP transcripts against the session over
the in-memory backend and against the whole bridge (CachedBackend over the Graph
simulator), so both are held to one behaviour.

``running_bridge`` is the fixture of ``tests/e2e/conftest.py`` (alice and bob with
``PASSWORD``); it is re-exported here so pytest finds it for this package.
"""

from __future__ import annotations

from tests.e2e.conftest import running_bridge

__all__ = ["running_bridge"]
