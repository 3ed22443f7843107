"""The hardware watchdog as sysfs shows it (read only: opening /dev/watchdog would arm it).

bootguard arms the watchdog in the initrd and lets go of it without disarming it, so in userland
`state` = active means it was armed and handed on: systemd (RuntimeWatchdogSec) or
bootguard-keepalive now pings it, or the host resets.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.metrics.sources import Sources
    from bootguard.metrics.textfile import Out


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def collect(src: Sources, out: Out) -> None:
    try:
        names = sorted(n for n in os.listdir(src.watchdog_sysfs) if n.startswith("watchdog"))
    except OSError:
        names = []
    out.family(
        "bootguard_watchdog_active",
        "gauge",
        "1 when the hardware watchdog is running (armed in the initrd and handed on to its keeper).",
    )
    out.family("bootguard_watchdog_timeout_seconds", "gauge", "The hardware watchdog's timeout.")
    for name in names:
        base = os.path.join(src.watchdog_sysfs, name)
        state = _read(os.path.join(base, "state"))
        if state is not None:
            out.sample("bootguard_watchdog_active", int(state == "active"), device=name)
        timeout = _read(os.path.join(base, "timeout"))
        if timeout is not None and timeout.isdigit():
            out.sample("bootguard_watchdog_timeout_seconds", int(timeout), device=name)
