"""Userland watchdog discovery through udev (pyudev), with the plain sysfs walk as fallback.

udev adds the device node udev really created (a rule may rename or link it); the attributes still
come from sysfs through `WatchdogInfo.from_sysfs`, so both paths describe a device the same way and
neither opens it. pyudev is imported only here and only when udev runs: early boot (no udevd yet,
or a minimal initrd) takes `bootguard.seams.watchdog.discover` directly.
"""

from __future__ import annotations

import os

from bootguard.seams.watchdog import WatchdogInfo, discover
from bootguard.seams.watchdog_sysfs import DEV_ROOT, SYSFS_ROOT

UDEV_CONTROL = "/run/udev/control"  # exists while systemd-udevd runs (what libudev checks too)


def udev_running(control: str = UDEV_CONTROL) -> bool:
    return os.path.exists(control)


def discover_udev() -> list[WatchdogInfo]:
    """Enumerate the `watchdog` subsystem through pyudev (raises ImportError without pyudev)."""
    import pyudev

    context = pyudev.Context()
    found: list[tuple[int, WatchdogInfo]] = []
    for device in context.list_devices(subsystem="watchdog"):
        number = device.sys_number
        index = int(number) if number and number.isdigit() else 1 << 30
        found.append((index, WatchdogInfo.from_sysfs(device.sys_path, device=device.device_node)))
    return [info for _, info in sorted(found, key=lambda pair: pair[0])]


def discover_best(
    sysfs_root: str = SYSFS_ROOT, dev_root: str = DEV_ROOT, *, control: str = UDEV_CONTROL
) -> tuple[list[WatchdogInfo], str]:
    """(devices, how): udev when it runs and the default roots are asked for, else the sysfs walk."""
    if sysfs_root == SYSFS_ROOT and dev_root == DEV_ROOT and udev_running(control):
        try:
            devices = discover_udev()
        except ImportError:
            return discover(sysfs_root, dev_root), "sysfs (pyudev not installed)"
        # A legacy-only watchdog has no sysfs class device: the walk still finds its node.
        return (devices or discover(sysfs_root, dev_root)), "udev"
    return discover(sysfs_root, dev_root), "sysfs"
