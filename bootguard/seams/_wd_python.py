"""Pure-Python watchdog backend: fcntl.ioctl + struct, mlockall through ctypes.

Used when the cffi extension `bootguard._native_wd` is not built (no compiler at install time) or
`BOOTGUARD_NO_NATIVE=1`. It has no pinger thread: the keepalive loop pings from Python, so a hung
interpreter stops the pings by itself. Every method raises `OSError` with the kernel's errno; the
device layer (`bootguard.seams.watchdog`) turns those into domain errors. Standard library only.
"""

from __future__ import annotations

import array
import fcntl
import os
import struct

from bootguard.seams._wd_consts import WATCHDOG_INFO_FORMAT, WATCHDOG_INFO_SIZE, Ioctl, ioctl_codes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.seams._wd_consts import Pinger


class PythonOps:
    """The system-call layer of a watchdog device, in pure Python."""

    name = "python"

    def __init__(self) -> None:
        self._codes = ioctl_codes()

    def code(self, request: Ioctl) -> int:
        """The request number used for `request`."""
        return self._codes[request]

    def open(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        os.close(fd)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def ioctl_int(self, fd: int, request: Ioctl, value: int = 0) -> int:
        # An int argument would be passed by value; the kernel wants a pointer to an int, so pass
        # a mutable buffer and read the (possibly rounded) value back from it.
        buf = array.array("i", [value])
        fcntl.ioctl(fd, self._codes[request], buf, True)
        return int(buf[0])

    def get_support(self, fd: int) -> tuple[int, int, bytes]:
        buf = bytearray(WATCHDOG_INFO_SIZE)
        fcntl.ioctl(fd, self._codes[Ioctl.GETSUPPORT], buf, True)
        options, firmware, identity = struct.unpack(WATCHDOG_INFO_FORMAT, bytes(buf))
        return int(options), int(firmware), bytes(identity).split(b"\0", 1)[0]

    def mlockall(self, *, onfault: bool) -> None:
        """Lock current and future pages (only as they are touched with `onfault`)."""
        import ctypes

        from bootguard.seams._wd_consts import mlockall_flags

        current, future, on_fault = mlockall_flags()
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(current | future | (on_fault if onfault else 0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), "mlockall")

    def start_pinger(self, fd: int, *, interval: float, stall_limit: float, use_write: bool) -> Pinger | None:
        """No native thread here: the caller pings from its own loop."""
        del fd, interval, stall_limit, use_write
        return None
