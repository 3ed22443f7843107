"""The watchdog's system-call layer, in one place: its ABI constants for the pure-Python backend,
the flag vocabularies, and the protocols both backends (_wd_native's cffi, _wd_python's) implement.

The ioctl numbers are computed with the kernel's `_IOC` encoding for the running architecture
(asm-generic on x86, arm and riscv; the 3-bit direction field of powerpc, mips, sparc and alpha), so
they match `<linux/watchdog.h>` there. The cffi backend takes every number from the real header
instead, and a test compares the two. Standard library only (early boot).
"""

from __future__ import annotations

import os

from bootguard._vocab import FlagVocab, Vocab
from bootguard.seams.watchdog_sysfs import CARDRESET as _CARDRESET


class Ioctl(Vocab):
    """The `WDIOC_*` requests bootguard uses (value: the header's macro name)."""

    GETSUPPORT = "WDIOC_GETSUPPORT"
    GETSTATUS = "WDIOC_GETSTATUS"
    GETBOOTSTATUS = "WDIOC_GETBOOTSTATUS"
    SETOPTIONS = "WDIOC_SETOPTIONS"
    KEEPALIVE = "WDIOC_KEEPALIVE"
    SETTIMEOUT = "WDIOC_SETTIMEOUT"
    GETTIMEOUT = "WDIOC_GETTIMEOUT"
    SETPRETIMEOUT = "WDIOC_SETPRETIMEOUT"
    GETPRETIMEOUT = "WDIOC_GETPRETIMEOUT"
    GETTIMELEFT = "WDIOC_GETTIMELEFT"


class WatchdogFlag(FlagVocab):
    """`WDIOF_*`: capability bits (GETSUPPORT options) and status bits (GETBOOTSTATUS, GETSTATUS)."""

    OVERHEAT = 0x0001
    FANFAULT = 0x0002
    EXTERN1 = 0x0004
    EXTERN2 = 0x0008
    POWERUNDER = 0x0010
    CARDRESET = _CARDRESET  # the card reset the machine (defined where the early-boot step reads it)
    POWEROVER = 0x0040
    SETTIMEOUT = 0x0080
    MAGICCLOSE = 0x0100
    PRETIMEOUT = 0x0200
    ALARMONLY = 0x0400
    KEEPALIVEPING = 0x8000


class SetOption(FlagVocab):
    """`WDIOS_*`: arguments of WDIOC_SETOPTIONS."""

    DISABLECARD = 0x0001
    ENABLECARD = 0x0002
    TEMPPANIC = 0x0004


def decode_flags(value: int) -> tuple[str, ...]:
    """Names of the set `WDIOF_*` bits, lowest first; unknown bits as hex so nothing is hidden."""
    known = {int(flag): str(flag.name) for flag in WatchdogFlag}
    return tuple(known.get(1 << bit, f"0x{1 << bit:x}") for bit in range(32) if value & (1 << bit))


# struct watchdog_info { __u32 options; __u32 firmware_version; __u8 identity[32]; }
WATCHDOG_INFO_FORMAT = "=II32s"
WATCHDOG_INFO_SIZE = 40
_INT_SIZE = 4

# Architectures with the 3-bit direction field (arch/*/include/uapi/asm/ioctl.h).
_THREE_BIT_DIR = ("ppc", "powerpc", "mips", "sparc", "alpha")


def _ioc_layout(machine: str) -> tuple[int, int, int]:
    """(direction shift, READ bit, WRITE bit) of `_IOC` on `machine` (as `uname -m` prints it)."""
    if machine.startswith(_THREE_BIT_DIR):
        return 29, 2, 4
    return 30, 2, 1


def ioctl_codes(machine: str | None = None) -> dict[Ioctl, int]:
    """The request numbers of `Ioctl` for `machine` (default: this one)."""
    shift, read, write = _ioc_layout(machine or os.uname().machine)

    def ioc(direction: int, nr: int, size: int) -> int:
        return (direction << shift) | (size << 16) | (ord("W") << 8) | nr

    r, rw = read, read | write
    return {
        Ioctl.GETSUPPORT: ioc(r, 0, WATCHDOG_INFO_SIZE),
        Ioctl.GETSTATUS: ioc(r, 1, _INT_SIZE),
        Ioctl.GETBOOTSTATUS: ioc(r, 2, _INT_SIZE),
        Ioctl.SETOPTIONS: ioc(r, 4, _INT_SIZE),  # sic: _IOR in the header
        Ioctl.KEEPALIVE: ioc(r, 5, _INT_SIZE),
        Ioctl.SETTIMEOUT: ioc(rw, 6, _INT_SIZE),
        Ioctl.GETTIMEOUT: ioc(r, 7, _INT_SIZE),
        Ioctl.SETPRETIMEOUT: ioc(rw, 8, _INT_SIZE),
        Ioctl.GETPRETIMEOUT: ioc(r, 9, _INT_SIZE),
        Ioctl.GETTIMELEFT: ioc(r, 10, _INT_SIZE),
    }


def mlockall_flags(machine: str | None = None) -> tuple[int, int, int]:
    """(MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT) for `machine`; powerpc and sparc use other bits."""
    m = machine or os.uname().machine
    if m.startswith(("ppc", "powerpc", "sparc")):
        return 0x2000, 0x4000, 0x8000
    if m.startswith("alpha"):
        return 8192, 16384, 32768
    return 1, 2, 4


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Pinger(Protocol):
        """A running native pinger thread (see c_ext/watchdog.c)."""

        def beat(self) -> None: ...
        def stats(self) -> PingerStats: ...
        def stop(self) -> None: ...

    class WatchdogOps(Protocol):
        """The system-call layer of a watchdog device; methods raise OSError with the errno."""

        name: str

        def open(self, path: str) -> int: ...
        def close(self, fd: int) -> None: ...
        def write(self, fd: int, data: bytes) -> int: ...
        def ioctl_int(self, fd: int, request: Ioctl, value: int = 0) -> int: ...
        def get_support(self, fd: int) -> tuple[int, int, bytes]: ...
        def mlockall(self, *, onfault: bool) -> None: ...
        def start_pinger(
            self, fd: int, *, interval: float, stall_limit: float, use_write: bool
        ) -> Pinger | None: ...


class PingerStats:
    """A snapshot of the native pinger's counters."""

    __slots__ = ("errors", "last_errno", "last_ping_ns", "max_gap_ns", "pings", "skipped", "stalled")

    def __init__(
        self,
        *,
        pings: int,
        errors: int,
        skipped: int,
        max_gap_ns: int,
        last_ping_ns: int,
        last_errno: int,
        stalled: bool,
    ) -> None:
        self.pings = pings
        self.errors = errors
        self.skipped = skipped
        self.max_gap_ns = max_gap_ns
        self.last_ping_ns = last_ping_ns
        self.last_errno = last_errno
        self.stalled = stalled
