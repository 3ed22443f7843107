"""Step 4, arm: the hardware watchdog, armed and let go of without disarming (hand-off), so a hang
from here until systemd (or bootguard's keepalive) takes over becomes a reset — and the reset becomes
a counted failure on the next boot. Runs whatever the steps before it came to."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.earlyboot.observe import Options


def arm_watchdog(opts: Options) -> str:
    """Arm the watchdog with the configured timeout and hand it on."""
    if not opts.watchdog_timeout:
        return "watchdog: not armed (no --watchdog-timeout)"
    from bootguard.seams import watchdog as wd  # only to arm: the device and its ioctls

    path = opts.watchdog_device
    if path is None:
        infos = wd.discover(sysfs_root=opts.watchdog_sysfs)
        if not infos:
            return "watchdog: none found; not armed"
        path = infos[0].device
    dev = wd.WatchdogDevice.open(path)
    try:
        actual = dev.set_timeout(opts.watchdog_timeout)
        dev.keepalive()
    finally:
        dev.close_armed()
    return f"watchdog: {path} armed with {actual} s and handed on (the next owner must ping it)"
