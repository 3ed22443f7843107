"""READY/STATUS/WATCHDOG of bootguard-validate.service, over the one sd_notify seam
(bootguard.seams.sdnotify: UTF-8, errors reported).

What this adds: the ping interval (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, and only
when WATCHDOG_PID is ours) and a rate limit of two pings per interval, so a caller may call `ping()`
as often as it likes. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import os
import time

from bootguard.seams import sdnotify as sd_seam

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


def _line(text: str) -> str:
    return text.replace("\n", " ")  # one STATUS line: a newline would start another assignment


def _warn(message: str) -> None:
    import sys

    print(f"bootguard: warning: {message}", file=sys.stderr, flush=True)


class Notifier:
    """READY=1, STATUS=…, WATCHDOG=1 and STOPPING=1 for the service manager."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._sd = sd_seam.connect(os.environ, _warn)
        self.enabled = self._sd.enabled
        self.interval = watchdog_interval()
        self._clock = clock
        self._last_ping = float("-inf")

    def _send(self, message: str) -> None:
        self._sd.send(message)

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1" + (f"\nSTATUS={_line(status)}" if status else ""))

    def status(self, text: str) -> None:
        self._send(f"STATUS={_line(text)}")

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
