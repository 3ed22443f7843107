"""Watchdog backend selection: the cffi extension when it is built, else pure Python.

The choice is made once, at import, and exposed as `BACKEND` ("cffi" or "python") and `OPS`, the
system-call layer every `WatchdogDevice` uses unless given another one (tests pass a fake).
`BOOTGUARD_NO_NATIVE=1` forces the pure-Python fallback. `BOOTGUARD_REQUIRE_NATIVE=1` turns a
missing or broken extension into an ImportError instead of a silent fallback (CI sets it).
Standard library only: the extension is optional and this module runs in early boot.
"""

from __future__ import annotations

import os
import sys

from bootguard.seams._wd_consts import Ioctl, PingerStats
from bootguard.seams._wd_python import PythonOps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bootguard.seams._wd_consts import Pinger, WatchdogOps


def _check(err: int, what: str) -> None:
    if err:
        raise OSError(err, os.strerror(err), what)


class NativePinger:
    """Handle of a C pinger thread; `beat()` must be called more often than the stall limit."""

    def __init__(self, lib: Any, ffi: Any, handle: Any) -> None:
        self._lib = lib
        self._ffi = ffi
        self._handle: Any = handle

    def beat(self) -> None:
        self._lib.bg_pinger_beat(self._handle)

    def stats(self) -> PingerStats:
        out = self._ffi.new("struct bg_pinger_stats *")
        self._lib.bg_pinger_stats(self._handle, out)
        return PingerStats(
            pings=int(out.pings),
            errors=int(out.errors),
            skipped=int(out.skipped),
            max_gap_ns=int(out.max_gap_ns),
            last_ping_ns=int(out.last_ping_ns),
            last_errno=int(out.last_errno),
            stalled=bool(out.stalled),
        )

    def stop(self) -> None:
        """Stop and join the thread (idempotent); no ping is sent after this returns."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        _check(int(self._lib.bg_pinger_stop(handle)), "pthread_join")


class CffiOps:
    """The system-call layer through the compiled `bootguard._native_wd` extension."""

    name = "cffi"

    def __init__(self, module: Any) -> None:
        self._lib = module.lib
        self._ffi = module.ffi
        self._codes = {req: int(getattr(self._lib, req.value)) for req in Ioctl}

    def code(self, request: Ioctl) -> int:
        """The request number from the real <linux/watchdog.h>."""
        return self._codes[request]

    def constant(self, name: str) -> int:
        """Any constant the extension was compiled with (WDIOF_*, WDIOS_*, MCL_*)."""
        return int(getattr(self._lib, name))

    def open(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        os.close(fd)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def ioctl_int(self, fd: int, request: Ioctl, value: int = 0) -> int:
        box = self._ffi.new("int *", value)
        _check(int(self._lib.bg_wd_ioctl_int(fd, self._codes[request], box)), request.value)
        return int(box[0])

    def get_support(self, fd: int) -> tuple[int, int, bytes]:
        info = self._ffi.new("struct watchdog_info *")
        _check(int(self._lib.bg_wd_get_support(fd, info)), Ioctl.GETSUPPORT.value)
        identity = bytes(self._ffi.buffer(info.identity)).split(b"\0", 1)[0]
        return int(info.options), int(info.firmware_version), identity

    def mlockall(self, *, onfault: bool) -> None:
        lib = self._lib
        flags = lib.MCL_CURRENT | lib.MCL_FUTURE | (lib.MCL_ONFAULT if onfault else 0)
        _check(int(lib.bg_wd_mlockall(flags)), "mlockall")

    def start_pinger(self, fd: int, *, interval: float, stall_limit: float, use_write: bool) -> Pinger:
        err = self._ffi.new("int *")
        handle = self._lib.bg_pinger_start(
            fd, round(interval * 1000), round(stall_limit * 1000), int(use_write), err
        )
        if handle == self._ffi.NULL:
            _check(int(err[0]) or 12, "pthread_create")
        return NativePinger(self._lib, self._ffi, handle)


def _load_native() -> CffiOps | None:
    if os.environ.get("BOOTGUARD_NO_NATIVE") == "1":
        return None
    try:
        # __import__, as the CLI loads its commands: importlib.import_module would load the importlib
        # package, and this runs when the early-boot step arms the watchdog (one module less to pack).
        __import__("bootguard._native_wd")
    except ImportError as exc:
        if os.environ.get("BOOTGUARD_REQUIRE_NATIVE") == "1":
            raise ImportError(
                f"BOOTGUARD_REQUIRE_NATIVE=1 but bootguard._native_wd does not load ({exc}); "
                "build it with `python3 c_ext/watchdog_build.py` or `pip install .`"
            ) from exc
        return None
    return CffiOps(sys.modules["bootguard._native_wd"])


def _select() -> WatchdogOps:
    native = _load_native()
    return native if native is not None else PythonOps()


OPS: WatchdogOps = _select()
BACKEND: str = OPS.name
