"""A pass-through ``Remote`` that can hold delta pages back, to stage races in tests.

``GatedRemote`` forwards every call to the real ``GraphRemote`` (so every request still
goes to the simulator); only ``message_delta`` and ``list_folders`` can be made to
pause *after* Graph answered and before the answer is handed to the sync engine.
That reproduces, without sleeps, a delta page (or folder list) that Graph generated
before a client's write and that is applied after it: a sync round running concurrently
with APPEND/COPY/MOVE/STORE/EXPUNGE or CREATE/DELETE/RENAME.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.backend.remote import DeltaPage, Remote, RemoteFolder


class GatedRemote:
    """Wraps ``inner``; while ``hold`` is set, answers wait for ``release()``."""

    def __init__(self, inner: Remote) -> None:
        self._inner = inner
        self.hold = False
        self.fetched = asyncio.Event()
        self._open = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def message_delta(self, folder_id: str, link: str | None) -> DeltaPage:
        page = await self._inner.message_delta(folder_id, link)
        if self.hold:
            self.fetched.set()
            await self._open.wait()
        return page

    async def list_folders(self, include_hidden: bool = False) -> list[RemoteFolder]:
        folders = await self._inner.list_folders(include_hidden)
        if self.hold:
            self.fetched.set()
            await self._open.wait()
        return folders

    def release(self) -> None:
        self.hold = False
        self._open.set()
