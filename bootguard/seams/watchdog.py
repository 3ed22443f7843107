"""The hardware watchdog: sysfs discovery (never opens the device) and the /dev/watchdogN device.

Opening a watchdog device starts its timer, so everything that only *looks* (`discover`,
`WatchdogInfo`, `bootstatus_says_watchdog_reset`) reads sysfs. `WatchdogDevice` is for the owner:
the early-boot step and the keepalive daemon. Its system calls go through a backend chosen once at
import (`bootguard.seams._wd_native.BACKEND`: the cffi extension or pure Python); tests pass a
fake. Every OSError becomes a domain error naming the device and saying what to do.
Standard library only (runs in the initrd).
"""

from __future__ import annotations

import errno
import os
import stat

from bootguard._vocab import Vocab
from bootguard.errors import BootguardError, NotFoundError, WatchdogBusyError, WatchdogError
from bootguard.model._frozen import Frozen
from bootguard.seams._wd_consts import Ioctl, SetOption, WatchdogFlag, decode_flags
from bootguard.seams.watchdog_sysfs import DEV_ROOT, SYSFS_ROOT, watchdog_names
from bootguard.seams.watchdog_sysfs import int_attr as _int_attr
from bootguard.seams.watchdog_sysfs import read_attr as _read_attr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

    from bootguard.seams._wd_consts import Pinger, WatchdogOps

PROC_ROOT = "/proc"
DEFAULT_DEVICE = "/dev/watchdog0"
LEGACY_MISC = (10, 130)  # /dev/watchdog: the misc-device alias of watchdog0

DRIVER_HINT = (
    "load a watchdog driver: `modprobe i6300esb` (QEMU -device i6300esb), `modprobe softdog` "
    "(software only), or your board's driver; `bootguard watchdog info` lists what is there"
)


class WatchdogState(Vocab):
    """sysfs `state`: whether the timer runs."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


class PingMode(Vocab):
    """How `keepalive()` pings."""

    AUTO = "auto"  # KEEPALIVE ioctl when GETSUPPORT says KEEPALIVEPING, else a write
    IOCTL = "ioctl"
    WRITE = "write"  # any write is a ping (also what a FIFO stand-in in the benchmark understands)


# --------------------------------------------------------------------------- sysfs (read only)


class WatchdogInfo(Frozen):
    """What sysfs says about one watchdog; reading it never opens (and so never arms) the device."""

    __slots__ = (
        "bootstatus",
        "bootstatus_raw",
        "device",
        "firmware_version",
        "identity",
        "max_timeout",
        "min_timeout",
        "name",
        "nowayout",
        "options",
        "pretimeout",
        "state",
        "status",
        "sysfs_path",
        "timeleft",
        "timeout",
    )

    name: str
    device: str
    sysfs_path: str | None
    identity: str | None
    firmware_version: int | None
    options: int | None
    timeout: int | None
    min_timeout: int | None
    max_timeout: int | None
    pretimeout: int | None
    timeleft: int | None
    state: WatchdogState
    nowayout: bool | None
    bootstatus: tuple[str, ...]
    bootstatus_raw: int | None
    status: int | None

    @classmethod
    def from_sysfs(
        cls, sysfs_path: str, *, dev_root: str = DEV_ROOT, device: str | None = None
    ) -> WatchdogInfo:
        """Read `sysfs_path` (…/watchdogN); `device` defaults to `dev_root`/watchdogN."""
        name = os.path.basename(sysfs_path.rstrip("/"))
        state = _read_attr(sysfs_path, "state")
        nowayout = _int_attr(sysfs_path, "nowayout")
        boot = _int_attr(sysfs_path, "bootstatus")  # decimal: CARDRESET reads 32
        new = object.__new__(cls)
        new._init(
            name=name,
            device=device or os.path.join(dev_root, name),
            sysfs_path=sysfs_path,
            identity=_read_attr(sysfs_path, "identity"),
            firmware_version=_int_attr(sysfs_path, "fw_version"),
            options=_int_attr(sysfs_path, "options"),
            timeout=_int_attr(sysfs_path, "timeout"),
            min_timeout=_int_attr(sysfs_path, "min_timeout"),
            max_timeout=_int_attr(sysfs_path, "max_timeout"),
            pretimeout=_int_attr(sysfs_path, "pretimeout"),
            timeleft=_int_attr(sysfs_path, "timeleft"),
            state=_parse_state(state),
            nowayout=None if nowayout is None else bool(nowayout),
            bootstatus=decode_flags(boot or 0),
            bootstatus_raw=boot,
            status=_int_attr(sysfs_path, "status"),
        )
        return new

    @classmethod
    def legacy(cls, device: str) -> WatchdogInfo:
        """A watchdog that has only the /dev/watchdog misc node and no sysfs class (e.g. ib700wdt)."""
        new = object.__new__(cls)
        new._init(
            name=os.path.basename(device),
            device=device,
            sysfs_path=None,
            identity=None,
            firmware_version=None,
            options=None,
            timeout=None,
            min_timeout=None,
            max_timeout=None,
            pretimeout=None,
            timeleft=None,
            state=WatchdogState.UNKNOWN,
            nowayout=None,
            bootstatus=(),
            bootstatus_raw=None,
            status=None,
        )
        return new

    @property
    def option_names(self) -> tuple[str, ...]:
        """Decoded GETSUPPORT options, where sysfs shows them (Linux ≥ 6.2)."""
        return decode_flags(self.options) if self.options is not None else ()

    def timeout_range(self) -> str:
        """ "1–2046 s" from sysfs, or "unknown" where the driver does not say."""
        if self.min_timeout is None or self.max_timeout is None:
            return "unknown"
        return f"{self.min_timeout}–{self.max_timeout} s"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (enum as its value, flags as names)."""
        out: dict[str, object] = {n: getattr(self, n) for n in self._fields()}
        out["state"] = self.state.value
        out["bootstatus"] = list(self.bootstatus)
        out["options_decoded"] = list(self.option_names)
        out["watchdog_reset"] = bootstatus_says_watchdog_reset(self)
        return out


def _parse_state(raw: str | None) -> WatchdogState:
    try:
        return WatchdogState(raw)
    except ValueError:
        return WatchdogState.UNKNOWN


def discover(sysfs_root: str = SYSFS_ROOT, dev_root: str = DEV_ROOT) -> list[WatchdogInfo]:
    """Every watchdog the kernel registered, by index; the legacy node alone where sysfs has none."""
    names = watchdog_names(sysfs_root)
    found = [WatchdogInfo.from_sysfs(os.path.join(sysfs_root, n), dev_root=dev_root) for n in names]
    legacy = os.path.join(dev_root, "watchdog")
    if not found and _is_char_device(legacy):
        found.append(WatchdogInfo.legacy(legacy))
    return found


def bootstatus_says_watchdog_reset(info: WatchdogInfo) -> bool:
    """True when the previous boot ended in a reset by this watchdog (bootstatus CARDRESET).

    Read from `bootstatus`, never from `options`: i6300esb does not list CARDRESET among its
    options yet sets it in bootstatus after a reset. softdog never sets it.
    """
    return WatchdogFlag.CARDRESET.name in info.bootstatus


def _is_char_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def sysfs_for_device(path: str, sysfs_root: str = SYSFS_ROOT) -> str | None:
    """The sysfs directory of the device node `path` (matched by major:minor, then by name)."""
    try:
        rdev = os.stat(path).st_rdev
    except OSError:
        rdev = None
    if rdev is not None and (os.major(rdev), os.minor(rdev)) == LEGACY_MISC:
        candidate = os.path.join(sysfs_root, "watchdog0")
        return candidate if os.path.isdir(candidate) else None
    try:
        names = sorted(os.listdir(sysfs_root))
    except FileNotFoundError:
        return None
    for name in names:
        directory = os.path.join(sysfs_root, name)
        dev = _read_attr(directory, "dev")
        if rdev is not None and dev == f"{os.major(rdev)}:{os.minor(rdev)}":
            return directory
    by_name = os.path.join(sysfs_root, os.path.basename(path))
    return by_name if os.path.isdir(by_name) else None


# --------------------------------------------------------------------------- who holds it (EBUSY)


def _alias_rdevs(path: str) -> set[int]:
    """Device numbers that reach the same watchdog as `path` (/dev/watchdog is watchdog0)."""
    names = [path]
    base = os.path.basename(path)
    if base in ("watchdog", "watchdog0"):
        names += [os.path.join(os.path.dirname(path), n) for n in ("watchdog", "watchdog0")]
    rdevs: set[int] = set()
    for name in names:
        try:
            st = os.stat(name)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode):
            rdevs.add(st.st_rdev)
    return rdevs


def _proc_comm(proc_root: str, pid: int) -> str:
    try:
        with open(os.path.join(proc_root, str(pid), "comm"), encoding="utf-8", errors="replace") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def find_holders(path: str, proc_root: str = PROC_ROOT) -> list[tuple[int, str]]:
    """(pid, command name) of every process with `path` (or its alias) open, via /proc/*/fd."""
    rdevs = _alias_rdevs(path)
    if not rdevs:
        return []
    holders: list[tuple[int, str]] = []
    for entry in sorted(os.listdir(proc_root), key=lambda n: (len(n), n)):
        if not entry.isdigit():
            continue
        fd_dir = os.path.join(proc_root, entry, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # the process exited, or we may not look
            continue
        if any(_fd_matches(os.path.join(fd_dir, fd), rdevs) for fd in fds):
            holders.append((int(entry), _proc_comm(proc_root, int(entry))))
    return holders


def _fd_matches(link: str, rdevs: set[int]) -> bool:
    try:
        st = os.stat(link)  # follows the magic link to the open file itself
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev in rdevs


def busy_error(path: str, proc_root: str = PROC_ROOT) -> WatchdogBusyError:
    """The EBUSY explanation: who holds `path`, and what to do about it."""
    holders = find_holders(path, proc_root)
    if not holders:
        return WatchdogBusyError(
            f"{path} is busy: another process holds it (not visible in {proc_root})",
            hint="a watchdog allows one opener; look for watchdog daemons or a container sharing the device",
        )
    who = ", ".join(f"{comm} (PID {pid})" for pid, comm in holders)
    if any(pid == 1 for pid, _ in holders):
        hint = (
            "systemd (PID 1) owns the watchdog through RuntimeWatchdogSec= (system.conf or "
            "systemd.watchdog_sec=); let systemd keep it, or set RuntimeWatchdogSec=off before "
            "running `bootguard watchdog run`"
        )
    else:
        hint = "a watchdog allows one opener: stop that process or let it keep the watchdog"
    return WatchdogBusyError(f"{path} is busy: held by {who}", hint=hint)


# --------------------------------------------------------------------------- the device


def _open_error(path: str, exc: OSError, proc_root: str) -> BootguardError:
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return NotFoundError(
            f"no watchdog device at {path} ({os.strerror(exc.errno or 0)})", hint=DRIVER_HINT
        )
    if exc.errno == errno.EBUSY:
        return busy_error(path, proc_root)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return WatchdogError(f"permission denied opening {path}", hint="run bootguard as root")
    return WatchdogError(f"cannot open {path}: {exc.strerror}")


class WatchdogSupport(Frozen):
    """GETSUPPORT: what the driver says it can do."""

    __slots__ = ("firmware_version", "identity", "options")

    identity: str
    firmware_version: int
    options: int

    def __init__(self, options: int, firmware_version: int, identity: str) -> None:
        self._init(options=options, firmware_version=firmware_version, identity=identity)

    @property
    def option_names(self) -> tuple[str, ...]:
        return decode_flags(self.options)

    def has(self, flag: WatchdogFlag) -> bool:
        return bool(self.options & flag)


class WatchdogDevice:
    """An open watchdog device. Opening it starts the timer; someone must ping it from now on.

    As a context manager it disarms (magic close) when the block ends normally and leaves the
    timer running when the block raised: a crash must still end in a reset.
    """

    def __init__(
        self,
        path: str,
        fd: int,
        ops: WatchdogOps,
        *,
        sysfs_path: str | None,
        ping_mode: PingMode = PingMode.AUTO,
    ) -> None:
        self.path = path
        self.sysfs_path = sysfs_path
        self._fd: int | None = fd
        self._ops = ops
        self._ping_mode = ping_mode

    @classmethod
    def open(
        cls,
        path: str = DEFAULT_DEVICE,
        backend: WatchdogOps | None = None,
        *,
        ping_mode: PingMode = PingMode.AUTO,
        sysfs_root: str = SYSFS_ROOT,
        proc_root: str = PROC_ROOT,
    ) -> WatchdogDevice:
        """Open `path` with O_WRONLY|O_CLOEXEC (this arms it) through `backend` (default: `OPS`)."""
        if backend is None:
            from bootguard.seams._wd_native import OPS

            backend = OPS
        try:
            fd = backend.open(path)
        except OSError as exc:
            raise _open_error(path, exc, proc_root) from exc
        return cls(path, fd, backend, sysfs_path=sysfs_for_device(path, sysfs_root), ping_mode=ping_mode)

    # -- plumbing

    @property
    def backend(self) -> str:
        """ "cffi" or "python" (or a test fake's name)."""
        return self._ops.name

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise WatchdogError(f"{self.path} is already closed")
        return self._fd

    def _ioctl(self, request: Ioctl, value: int = 0) -> int:
        try:
            return self._ops.ioctl_int(self.fd, request, value)
        except OSError as exc:
            raise self._ioctl_error(request, exc) from exc

    def _ioctl_error(self, request: Ioctl, exc: OSError) -> WatchdogError:
        what = request.name
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY):
            return WatchdogError(f"{self.path}: {what} is not supported by the driver ({exc.strerror})")
        return WatchdogError(f"{self.path}: {what} failed: {exc.strerror}")

    def info(self) -> WatchdogInfo | None:
        """sysfs view of this device, re-read now (None for a legacy node without sysfs)."""
        return WatchdogInfo.from_sysfs(self.sysfs_path, device=self.path) if self.sysfs_path else None

    # -- queries

    def support(self) -> WatchdogSupport:
        """GETSUPPORT: options, firmware version, identity."""
        try:
            options, firmware, identity = self._ops.get_support(self.fd)
        except OSError as exc:
            if exc.errno == errno.ENOTTY:
                raise WatchdogError(f"{self.path} is not a watchdog device (GETSUPPORT: ENOTTY)") from exc
            raise self._ioctl_error(Ioctl.GETSUPPORT, exc) from exc
        return WatchdogSupport(options, firmware, identity.decode("ascii", "replace"))

    def get_timeout(self) -> int:
        return self._ioctl(Ioctl.GETTIMEOUT)

    def set_timeout(self, seconds: int) -> int:
        """Set the timeout (this also pings); returns what the driver really set (it may round)."""
        try:
            return self._ops.ioctl_int(self.fd, Ioctl.SETTIMEOUT, int(seconds))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise WatchdogError(
                    f"{self.path}: timeout {seconds} s is out of range ({self._range()})",
                    hint="choose a value within the driver's min_timeout..max_timeout (sysfs)",
                ) from exc
            raise self._ioctl_error(Ioctl.SETTIMEOUT, exc) from exc

    def _range(self) -> str:
        info = self.info()
        return f"allowed: {info.timeout_range()}" if info else "the driver rejected it"

    def get_pretimeout(self) -> int:
        return self._ioctl(Ioctl.GETPRETIMEOUT)

    def set_pretimeout(self, seconds: int) -> int:
        """Set the pretimeout (0 disables); it must stay below the timeout. Returns the value set."""
        try:
            return self._ops.ioctl_int(self.fd, Ioctl.SETPRETIMEOUT, int(seconds))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise WatchdogError(
                    f"{self.path}: pretimeout {seconds} s rejected: it must be below the timeout "
                    f"({self.get_timeout()} s); 0 disables it"
                ) from exc
            raise self._ioctl_error(Ioctl.SETPRETIMEOUT, exc) from exc

    def time_left(self) -> int | None:
        """Seconds until reset, or None where the driver cannot tell (softdog, i6300esb)."""
        try:
            return self._ops.ioctl_int(self.fd, Ioctl.GETTIMELEFT)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY):
                return None
            raise self._ioctl_error(Ioctl.GETTIMELEFT, exc) from exc

    def bootstatus(self) -> int:
        """GETBOOTSTATUS bits (decode with `decode_flags`; CARDRESET = 0x20 after a watchdog reset)."""
        return self._ioctl(Ioctl.GETBOOTSTATUS)

    def status(self) -> int:
        return self._ioctl(Ioctl.GETSTATUS)

    # -- actions

    def keepalive(self) -> None:
        """Ping: the KEEPALIVE ioctl, or a write where the driver lacks KEEPALIVEPING."""
        if self._ping_mode is PingMode.AUTO:
            has_ioctl = self.support().has(WatchdogFlag.KEEPALIVEPING)
            self._ping_mode = PingMode.IOCTL if has_ioctl else PingMode.WRITE
        if self._ping_mode is PingMode.IOCTL:
            try:
                self._ops.ioctl_int(self.fd, Ioctl.KEEPALIVE)
                return
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise self._ioctl_error(Ioctl.KEEPALIVE, exc) from exc
                self._ping_mode = PingMode.WRITE
        self._write(b"\0", "ping")

    def uses_write_pings(self) -> bool:
        """Whether pings are writes (decides the native pinger's mode); resolves AUTO first."""
        if self._ping_mode is PingMode.AUTO:
            has_ioctl = self.support().has(WatchdogFlag.KEEPALIVEPING)
            self._ping_mode = PingMode.IOCTL if has_ioctl else PingMode.WRITE
        return self._ping_mode is PingMode.WRITE

    def _write(self, data: bytes, what: str) -> None:
        try:
            self._ops.write(self.fd, data)
        except OSError as exc:
            raise WatchdogError(f"{self.path}: {what} (write) failed: {exc.strerror}") from exc

    def enable(self) -> None:
        """SETOPTIONS ENABLECARD: (re)start the timer."""
        self._ioctl(Ioctl.SETOPTIONS, int(SetOption.ENABLECARD))

    def disable(self) -> None:
        """SETOPTIONS DISABLECARD: stop the timer while keeping the device open."""
        self._check_may_disarm()
        self._ioctl(Ioctl.SETOPTIONS, int(SetOption.DISABLECARD))

    def start_pinger(self, *, interval: float, stall_limit: float) -> Pinger | None:
        """A native pinger thread for this device, or None with the pure-Python backend."""
        return self._ops.start_pinger(
            self.fd, interval=interval, stall_limit=stall_limit, use_write=self.uses_write_pings()
        )

    def mlockall(self, *, onfault: bool = True) -> None:
        """Lock the process's memory through this backend (raises OSError: EPERM, ENOMEM)."""
        self._ops.mlockall(onfault=onfault)

    def _check_may_disarm(self) -> None:
        nowayout = _int_attr(self.sysfs_path, "nowayout") if self.sysfs_path else None
        if nowayout:
            raise WatchdogError(
                f"{self.path}: nowayout is set ({self.sysfs_path}/nowayout = 1): the timer cannot be stopped",
                hint="keep pinging it, or hand it to the next owner before the timeout (close_armed)",
            )

    def magic_close(self) -> None:
        """Disarm: write the magic 'V' and close. Refuses (device stays open) when nowayout is set."""
        self._check_may_disarm()
        fd = self.fd
        self._write(b"V", "magic close")
        self._fd = None
        self._ops.close(fd)
        info = self.info()
        if info is not None and info.state is WatchdogState.ACTIVE:
            raise WatchdogError(
                f"{self.path}: still active after the magic close; the driver did not stop the timer",
                hint="the machine resets unless someone reopens and pings the device",
            )

    def close_armed(self) -> None:
        """Close without 'V': the timer keeps running for the next owner (the kernel logs
        "watchdog did not stop!"); the machine resets `timeout` s after the last ping unless
        someone reopens the device first."""
        fd = self.fd
        self._fd = None
        self._ops.close(fd)

    def __enter__(self) -> WatchdogDevice:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is None:
            return
        if exc_type is not None:
            self.close_armed()
            return
        try:
            self.magic_close()
        finally:
            if self._fd is not None:  # nowayout refused the disarm: do not leak the descriptor
                self.close_armed()

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else f"fd={self._fd}"
        return f"WatchdogDevice({self.path!r}, {state}, backend={self.backend})"
