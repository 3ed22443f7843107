"""A thin wrapper around PyPI `sdnotify` for READY/STATUS/WATCHDOG of bootguard-validate.service.

Why wrap: sdnotify 0.3.2 encodes messages as Latin-1 (systemd expects UTF-8, and characters
outside Latin-1 make it drop the whole message silently), has no WATCHDOG_USEC helper and ignores
WATCHDOG_PID. Here STATUS text is reduced to ASCII, the ping interval (half of WATCHDOG_USEC, as
sd_watchdog_enabled(3) advises) comes from the environment, and pings are rate-limited to twice per
interval, so a caller may call `ping()` as often as it likes. Outside systemd (no NOTIFY_SOCKET) every call
is a no-op.
"""

from __future__ import annotations

import os
import time

import sdnotify as _sdnotify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings the service manager expects (half of WATCHDOG_USEC), or None."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2e6


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\n", " ")


class Notifier:
    """READY=1, STATUS=…, WATCHDOG=1 and STOPPING=1 for the service manager."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._sd = _sdnotify.SystemdNotifier() if self.enabled else None
        self.interval = watchdog_interval()
        self._clock = clock
        self._last_ping = float("-inf")

    def _send(self, message: str) -> None:
        if self._sd is not None:
            self._sd.notify(message)

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1" + (f"\nSTATUS={_ascii(status)}" if status else ""))

    def status(self, text: str) -> None:
        self._send(f"STATUS={_ascii(text)}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def extend_timeout(self, seconds: float) -> None:
        """Ask for more start-up time (used while waiting out reboot-after:SECONDS)."""
        self._send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def ping(self, *, force: bool = False) -> bool:
        """WATCHDOG=1 if a service watchdog is set and half its interval has passed; True if sent."""
        if self.interval is None:
            return False
        now = self._clock()
        if not force and now - self._last_ping < self.interval / 2:
            return False
        self._last_ping = now
        self._send("WATCHDOG=1")
        return True
