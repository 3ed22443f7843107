"""Options of the fleet gate of `bootguard upgrade` (`--host`, `--publish-verdicts`, `--canaries` …).

Standard library only: the CLI builds them on every run, also on the lean no-op path.
"""

from __future__ import annotations

import os
import re

from bootguard.errors import UsageError
from bootguard.model._frozen import Frozen

# A host name must be one safe ref component: it names the ref refs/bootguard/verdicts/<host>.
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def host_problem(name: str) -> str | None:
    """Why `name` cannot be a host name (one ref component, ≤ 63 characters), or None."""
    if not _HOST.fullmatch(name) or ".." in name or name.endswith((".lock", ".")):
        return f"{name!r} is not a valid host name (letters, digits, '.', '_', '-'; at most 63)"
    return None


def parse_duration(text: str, option: str = "--soak") -> float:
    """Seconds from `90`, `90s`, `30m`, `6h`, `2d`, `1w` or sums like `1h30m`; UsageError otherwise."""
    s = text.strip().lower()
    total, number = 0.0, ""
    for ch in s:
        if ch.isdigit():
            number += ch
        elif ch in _UNITS and number:
            total += int(number) * _UNITS[ch]
            number = ""
        else:
            raise UsageError(f"{option} {text!r}: not a duration", hint="e.g. 90s, 30m, 6h, 2d, 1w, 1h30m")
    if number:
        total += int(number)
    if not s:
        raise UsageError(f"{option}: empty duration", hint="e.g. 90s, 30m, 6h, 2d, 1w, 1h30m")
    return total


def default_host(nodename: str | None = None) -> str:
    """The host name verdicts are published under: the first label of the kernel's node name, made
    a valid host name (an odd hostname must not stop upgrades that do not even use the fleet)."""
    label = (nodename if nodename is not None else os.uname().nodename).split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]", "-", label)[:63].lstrip("-_") or "localhost"


class FleetOptions(Frozen):
    """How this host takes part in the fleet: its name, whether it publishes, what it waits for."""

    __slots__ = ("canaries", "canary_hosts", "host", "ignore_quarantine", "publish", "soak")

    host: str
    publish: bool  # push this host's verdicts to refs/bootguard/verdicts/<host>
    canaries: int  # deploy only once this many other hosts blessed the commit (0: no wait)
    canary_hosts: tuple[str, ...]  # only these hosts count as canaries (empty: any other host)
    soak: float | None  # … or once the commit has been out this many seconds without a failure
    ignore_quarantine: bool  # this run deploys whatever other hosts said

    def __init__(
        self,
        *,
        host: str,
        publish: bool = False,
        canaries: int = 0,
        canary_hosts: tuple[str, ...] = (),
        soak: float | None = None,
        ignore_quarantine: bool = False,
    ) -> None:
        self._init(
            host=host,
            publish=publish,
            canaries=canaries,
            canary_hosts=tuple(canary_hosts),
            soak=soak,
            ignore_quarantine=ignore_quarantine,
        )

    @classmethod
    def from_strings(
        cls,
        *,
        host: str | None = None,
        publish: bool = False,
        canaries: int = 0,
        canary_hosts: str | None = None,
        soak: str | None = None,
        ignore_quarantine: bool = False,
    ) -> FleetOptions:
        """From command-line strings; UsageError naming the option for a bad value."""
        name = host if host is not None else default_host()
        problem = host_problem(name)
        if problem:
            raise UsageError(f"--host: {problem}", hint="pass --host NAME")
        if canaries < 0:
            raise UsageError(f"--canaries {canaries}: must be 0 or more")
        hosts = tuple(h.strip() for h in (canary_hosts or "").split(",") if h.strip())
        for h in hosts:
            bad = host_problem(h)
            if bad:
                raise UsageError(f"--canary-hosts: {bad}")
        if hosts and canaries == 0:
            raise UsageError("--canary-hosts needs --canaries N (how many of them must bless a commit)")
        return cls(
            host=name,
            publish=publish,
            canaries=canaries,
            canary_hosts=hosts,
            soak=None if soak is None else parse_duration(soak),
            ignore_quarantine=ignore_quarantine,
        )
