"""A fake watchdog at the system-call seam (`WatchdogOps`), and tests that it behaves like the kernel.

`FakeOps` stands in for the cffi/python backends: it keeps one simulated device per path with the
semantics of drivers/watchdog/watchdog_dev.c (open arms, single open → EBUSY, any write pings,
'V' in the last write + close stops unless nowayout, close without 'V' leaves it running,
SETTIMEOUT range-checks and pings) on a fake clock, and mirrors state/timeout/nowayout into a
sysfs directory so the device layer's sysfs reads see the same truth.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bootguard.seams._wd_consts import Ioctl, SetOption, WatchdogFlag

I6300ESB_OPTIONS = int(WatchdogFlag.KEEPALIVEPING | WatchdogFlag.MAGICCLOSE | WatchdogFlag.SETTIMEOUT)


class FakeClock:
    """Monotonic time that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeDevice:
    """One simulated watchdog (defaults: an i6300esb)."""

    def __init__(
        self,
        sysfs: Path,
        clock: FakeClock,
        *,
        timeout: int = 30,
        min_timeout: int = 1,
        max_timeout: int = 2046,
        options: int = I6300ESB_OPTIONS,
        identity: bytes = b"i6300ESB timer",
        nowayout: bool = False,
        bootstatus: int = 0,
        timeleft: bool = False,
        dev: str | None = None,
    ) -> None:
        self.sysfs = sysfs
        self.clock = clock
        self.timeout = timeout
        self.min_timeout, self.max_timeout = min_timeout, max_timeout
        self.options, self.identity = options, identity
        self.nowayout, self.bootstatus, self.has_timeleft = nowayout, bootstatus, timeleft
        self.pretimeout = 0
        self.active = False
        self.is_open = False
        self.expect_close = False
        self.last_ping = clock()
        self.pings: list[float] = []
        self.writes: list[bytes] = []
        self.fail_keepalive: int | None = None  # errno to answer KEEPALIVE with
        sysfs.mkdir(parents=True, exist_ok=True)
        for name, value in {
            "identity": identity.decode(),
            "min_timeout": str(min_timeout),
            "max_timeout": str(max_timeout),
            "bootstatus": str(bootstatus),
            "options": f"0x{options:x}",
            "fw_version": "0",
            "status": "0x0",
        }.items():
            (sysfs / name).write_text(value + "\n")
        if dev:
            (sysfs / "dev").write_text(dev + "\n")
        self._sync()

    def _sync(self) -> None:
        (self.sysfs / "state").write_text(("active" if self.active else "inactive") + "\n")
        (self.sysfs / "timeout").write_text(f"{self.timeout}\n")
        (self.sysfs / "pretimeout").write_text(f"{self.pretimeout}\n")
        (self.sysfs / "nowayout").write_text(f"{int(self.nowayout)}\n")

    def state(self) -> str:
        """What sysfs `state` says now."""
        return (self.sysfs / "state").read_text().strip()

    def ping(self) -> None:
        self.last_ping = self.clock()
        self.pings.append(self.last_ping)

    @property
    def expired(self) -> bool:
        """True when the timer ran out: the real machine would have reset."""
        return self.active and self.clock() - self.last_ping > self.timeout

    def start(self) -> None:
        self.active = True
        self.ping()
        self._sync()

    def stop(self) -> None:
        self.active = False
        self._sync()

    def set_timeout(self, value: int) -> int:
        if not self.min_timeout <= value <= self.max_timeout:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self.timeout = value
        self.ping()
        self._sync()
        return value

    def set_pretimeout(self, value: int) -> int:
        if value >= self.timeout:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self.pretimeout = value
        self._sync()
        return value


class FakeOps:
    """`WatchdogOps` over `FakeDevice`s keyed by path."""

    name = "fake"

    def __init__(self, devices: dict[str, FakeDevice]) -> None:
        self.devices = devices
        self._fds: dict[int, FakeDevice] = {}
        self._next_fd = 100
        self.mlock_errno: int | None = None
        self.mlocked = False

    def _dev(self, fd: int) -> FakeDevice:
        try:
            return self._fds[fd]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None

    def open(self, path: str) -> int:
        dev = self.devices.get(path)
        if dev is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if dev.is_open:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        dev.is_open = True
        dev.expect_close = False
        dev.start()
        fd, self._next_fd = self._next_fd, self._next_fd + 1
        self._fds[fd] = dev
        return fd

    def close(self, fd: int) -> None:
        dev = self._fds.pop(fd, None)
        if dev is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        dev.is_open = False
        if dev.expect_close and not dev.nowayout:
            dev.stop()

    def write(self, fd: int, data: bytes) -> int:
        dev = self._dev(fd)
        dev.writes.append(data)
        dev.expect_close = b"V" in data
        dev.ping()
        return len(data)

    def ioctl_int(self, fd: int, request: Ioctl, value: int = 0) -> int:
        dev = self._dev(fd)
        if request is Ioctl.GETTIMEOUT:
            return dev.timeout
        if request is Ioctl.SETTIMEOUT:
            return dev.set_timeout(value)
        if request is Ioctl.GETPRETIMEOUT:
            return dev.pretimeout
        if request is Ioctl.SETPRETIMEOUT:
            return dev.set_pretimeout(value)
        if request is Ioctl.GETBOOTSTATUS:
            return dev.bootstatus
        if request is Ioctl.GETSTATUS:
            return 0
        if request is Ioctl.GETTIMELEFT:
            if not dev.has_timeleft:
                raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
            return max(0, int(dev.timeout - (dev.clock() - dev.last_ping)))
        if request is Ioctl.KEEPALIVE:
            if dev.fail_keepalive is not None:
                raise OSError(dev.fail_keepalive, os.strerror(dev.fail_keepalive))
            if not dev.options & WatchdogFlag.KEEPALIVEPING:
                raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
            dev.ping()
            return 0
        if request is Ioctl.SETOPTIONS:
            if value & SetOption.DISABLECARD:
                dev.stop()
            if value & SetOption.ENABLECARD:
                dev.start()
            return 0
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    def get_support(self, fd: int) -> tuple[int, int, bytes]:
        dev = self._dev(fd)
        return dev.options, 0, dev.identity

    def mlockall(self, *, onfault: bool) -> None:
        if self.mlock_errno is not None:
            raise OSError(self.mlock_errno, os.strerror(self.mlock_errno), "mlockall")
        self.mlocked = onfault

    def start_pinger(self, fd: int, *, interval: float, stall_limit: float, use_write: bool) -> None:
        """Like the pure-Python backend: no thread, the loop pings."""
        del fd, interval, stall_limit, use_write


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sysfs_root(tmp_path: Path) -> Path:
    root = tmp_path / "sys" / "class" / "watchdog"
    root.mkdir(parents=True)
    return root


def test_fake_open_arms_and_second_open_is_busy(sysfs_root: Path, clock: FakeClock) -> None:
    """Opening arms the fake and a second opener gets EBUSY, as with a real single-open watchdog."""
    dev = FakeDevice(sysfs_root / "watchdog0", clock)
    ops = FakeOps({"/dev/watchdog0": dev})
    ops.open("/dev/watchdog0")
    assert (sysfs_root / "watchdog0" / "state").read_text().strip() == "active"
    with pytest.raises(OSError, match="Device or resource busy") as err:
        ops.open("/dev/watchdog0")
    assert err.value.errno == errno.EBUSY


def test_fake_stops_only_after_magic_v_without_nowayout(sysfs_root: Path, clock: FakeClock) -> None:
    """Only a 'V' in the last write followed by close stops the fake, and never with nowayout."""
    plain = FakeDevice(sysfs_root / "watchdog0", clock)
    stuck = FakeDevice(sysfs_root / "watchdog1", clock, nowayout=True)
    ops = FakeOps({"a": plain, "b": stuck})
    fd = ops.open("a")
    ops.write(fd, b"V")
    ops.write(fd, b"\0")
    ops.close(fd)
    assert plain.active
    for path, dev, running in (("a", plain, False), ("b", stuck, True)):
        fd = ops.open(path)
        ops.write(fd, b"V")
        ops.close(fd)
        assert dev.active is running


def test_fake_expires_after_timeout_without_pings(sysfs_root: Path, clock: FakeClock) -> None:
    """The fake reports expiry once the timeout passes without a ping."""
    dev = FakeDevice(sysfs_root / "watchdog0", clock, timeout=5)
    ops = FakeOps({"w": dev})
    ops.open("w")
    clock.advance(4.9)
    assert not dev.expired
    clock.advance(0.2)
    assert dev.expired
