"""The watchdog's sysfs attributes, read without opening (and so without arming) the device.

The early-boot step needs one bit of one file per watchdog (did the previous boot end in a reset?);
this module is all it imports for that. `bootguard.seams.watchdog` builds the full view
(`WatchdogInfo`) and the device on top of it, with the ioctl vocabulary the step does not need
unless it arms (issue 13: every module costs on every boot). Standard library only (early boot).
"""

from __future__ import annotations

import errno
import os

SYSFS_ROOT = "/sys/class/watchdog"
DEV_ROOT = "/dev"
CARDRESET = 0x0020  # WDIOF_CARDRESET in bootstatus: the card reset the machine

# Attributes a driver may lack answer these instead of holding a value (`timeleft` and friends).
_ABSENT = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODATA, errno.EIO)


def read_attr(directory: str, name: str) -> str | None:
    """One sysfs attribute, stripped; None when the kernel or driver does not provide it."""
    try:
        fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise
    try:
        data = os.read(fd, 1 << 16)  # sysfs hands out an attribute in one read of up to a page
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").strip()


def int_attr(directory: str, name: str) -> int | None:
    raw = read_attr(directory, name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw, 0)  # `status` and `options` are hex ("0x8180"), the rest decimal
    except ValueError:
        return None


def watchdog_index(name: str) -> int | None:
    suffix = name[len("watchdog") :]
    return int(suffix) if name.startswith("watchdog") and suffix.isdigit() else None


def watchdog_names(sysfs_root: str = SYSFS_ROOT) -> list[str]:
    """The kernel's watchdogs in sysfs (watchdog0, watchdog1, …), by index."""
    try:
        names = os.listdir(sysfs_root)
    except FileNotFoundError:
        names = []
    indexed = [(i, n) for n in names if (i := watchdog_index(n)) is not None]
    return [n for _, n in sorted(indexed)]


def reset_seen(sysfs_root: str = SYSFS_ROOT) -> bool:
    """True when a watchdog's bootstatus says it reset the machine (CARDRESET) during the previous boot.

    Read from `bootstatus`, never from `options`: i6300esb does not list CARDRESET among its
    options yet sets it in bootstatus after a reset. softdog never sets it. A legacy /dev/watchdog
    without a sysfs class has no bootstatus and never says so.
    """
    statuses = (int_attr(os.path.join(sysfs_root, n), "bootstatus") for n in watchdog_names(sysfs_root))
    return any((status or 0) & CARDRESET for status in statuses)
