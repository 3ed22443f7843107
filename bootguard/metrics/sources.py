"""Where a host keeps what the metrics are made from."""

from __future__ import annotations

import os

import attrs

DEFAULT_FILE = "/var/lib/prometheus/node-exporter/bootguard.prom"
FILE_ENV = "BOOTGUARD_METRICS_FILE"
WATCHDOG_SYSFS = "/sys/class/watchdog"


@attrs.frozen
class Sources:
    state_dir: str
    esp: str | None = None
    xbootldr: str | None = None
    efivars: str = "/sys/firmware/efi/efivars"
    watchdog_sysfs: str = WATCHDOG_SYSFS


def target(configured: str | None = None) -> str | None:
    """The textfile to write: configured, else $BOOTGUARD_METRICS_FILE, else the default where its
    directory (node-exporter's textfile directory) exists; None when there is nowhere to write."""
    explicit = configured or os.environ.get(FILE_ENV) or None
    if explicit:
        return explicit
    return DEFAULT_FILE if os.path.isdir(os.path.dirname(DEFAULT_FILE)) else None
