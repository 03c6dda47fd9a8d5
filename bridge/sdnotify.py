"""systemd's notify protocol (sd_notify(3)) with the standard library only.

``Type=notify`` services tell systemd when they are ready (``READY=1``), when they stop
(``STOPPING=1``) and that they are alive (``WATCHDOG=1`` at least every
``WATCHDOG_USEC/2``). Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op, so
the daemon code can call these unconditionally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields; returns False (and logs once) if systemd is gone."""
        if self._sock is None or not self.address:
            return False
        address = self.address
        # An address starting with '@' lives in the abstract namespace (sd_notify(3)).
        target = "\0" + address[1:] if address.startswith("@") else address
        try:
            self._sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", address, exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def reloading(self) -> None:
        self.notify("RELOADING=1")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return max(int(usec) / 2_000_000, 0.5)
        except ValueError:
            return None

    async def run_watchdog(self, healthy: Callable[[], bool] | None = None) -> None:
        """Ping the watchdog until cancelled; skips pings while ``healthy()`` is False so
        that systemd restarts a wedged process (a stuck event loop cannot ping at all)."""
        interval = self.watchdog_interval()
        if interval is None or not self.enabled:
            return
        while True:
            if healthy is None or healthy():
                self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
