"""The keepalive daemon: feed the hardware watchdog until told to stop, then disarm or hand off.

It runs when systemd (PID 1) does not own the watchdog through RuntimeWatchdogSec=, in the initrd or
as a service (docs/watchdog.md). Each tick it proves the interpreter is alive: with the cffi
backend it advances the heartbeat of the native pinger thread (which pings outside the GIL and
stops pinging when the heartbeat stalls), with the pure-Python backend it pings itself. It asks for
SCHED_RR and locked memory and reports what it got, talks sd_notify (READY, STATUS, WATCHDOG for its
own service watchdog), and on SIGTERM/SIGINT disarms with the magic close, or with `handoff` closes
without it so the timer keeps running for the next owner. A failure never disarms: it leaves the
timer running, because a broken keepalive must end in a reset, not in an unwatched machine.
Standard library only; `sdnotify` is imported only when $NOTIFY_SOCKET is set.
"""

from __future__ import annotations

import os
import select
import signal
import time

from bootguard.errors import UsageError, WatchdogError
from bootguard.model._frozen import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Protocol

    from bootguard.seams._wd_consts import Pinger
    from bootguard.seams.watchdog import WatchdogDevice

    class NotifyChannel(Protocol):
        """The sd_notify messages the daemon sends."""

        def send(self, message: str) -> None: ...

    class Stopper(Protocol):
        """Sleeps between ticks; True once the daemon is asked to stop (`StopSignal`)."""

        def wait(self, seconds: float) -> bool: ...


DEFAULT_PRIORITY = 10  # SCHED_RR priority: above every CFS task, below kernel threads' 50


class KeepaliveConfig(Frozen):
    """What `bootguard watchdog run` was asked to do."""

    __slots__ = ("handoff", "interval", "lock_memory", "priority", "realtime", "stall_limit", "timeout")

    timeout: int | None  # set this timeout first; None keeps the device's
    interval: float | None  # None: a quarter of the timeout
    handoff: bool  # on stop, close without 'V' so the timer keeps running
    realtime: bool
    priority: int
    lock_memory: bool
    stall_limit: float | None  # native pinger: stop pinging after this long without a heartbeat

    def __init__(
        self,
        *,
        timeout: int | None = None,
        interval: float | None = None,
        handoff: bool = False,
        realtime: bool = True,
        priority: int = DEFAULT_PRIORITY,
        lock_memory: bool = True,
        stall_limit: float | None = None,
    ) -> None:
        self._init(
            timeout=timeout,
            interval=interval,
            handoff=handoff,
            realtime=realtime,
            priority=priority,
            lock_memory=lock_memory,
            stall_limit=stall_limit,
        )

    def resolve_interval(self, timeout: int) -> float:
        """The ping interval for a device `timeout`: given, or timeout/4; never above timeout/2."""
        interval = self.interval if self.interval is not None else timeout / 4
        if interval <= 0:
            raise UsageError(f"--interval must be positive, not {interval:g}")
        if interval > timeout / 2:
            raise UsageError(
                f"--interval {interval:g} s exceeds half the watchdog timeout ({timeout} s)",
                hint="ping at least twice per timeout, as systemd does",
            )
        return interval

    def resolve_stall_limit(self, interval: float) -> float:
        """How long the native pinger keeps pinging without a heartbeat (default 3 intervals)."""
        return self.stall_limit if self.stall_limit is not None else 3 * interval


class KeepaliveReport(Frozen):
    """How a keepalive run went (printed by the CLI, asserted by tests)."""

    __slots__ = ("backend", "closed", "interval", "memory", "pings", "realtime", "timeout")

    backend: str
    timeout: int
    interval: float
    realtime: str
    memory: str
    pings: int
    closed: str  # "disarmed" | "handed-off" (a failure raises instead and leaves it armed)

    def __init__(self, **values: Any) -> None:
        self._init(**values)


# --------------------------------------------------------------------------- sd_notify


def make_notifier(env: Mapping[str, str], log: Callable[[str], None]) -> NotifyChannel:
    """An sd_notify sender (the one seam, bootguard.seams.sdnotify) when systemd started us with
    $NOTIFY_SOCKET, else a no-op; a missing package or an unreachable socket is a WatchdogError."""
    from bootguard.errors import EnvironmentProblem
    from bootguard.seams import sdnotify as sd_seam

    try:
        return sd_seam.connect(env, log)
    except EnvironmentProblem as exc:
        raise WatchdogError(exc.message, hint=exc.hint) from exc


def service_watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 messages (half of $WATCHDOG_USEC), or None when not asked.

    The service watchdog applies to us only when $WATCHDOG_PID is unset or is our pid (sd_watchdog_enabled).
    """
    usec, owner = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (owner and owner != str(pid)):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


# --------------------------------------------------------------------------- stop signals


class StopSignal:
    """SIGTERM/SIGINT set a flag and wake the loop at once (a wakeup pipe, so no polling)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1

    def install(self) -> StopSignal:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        self._previous_fd = signal.set_wakeup_fd(self._write)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        del frame
        self.received = signum

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop signal arrived."""
        if self.received is None and seconds > 0:
            ready, _, _ = select.select([self._read], [], [], seconds)
            if ready:
                try:
                    os.read(self._read, 512)
                except BlockingIOError:
                    pass
        return self.received is not None

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        os.close(self._read)
        os.close(self._write)


# --------------------------------------------------------------------------- privileges


def apply_realtime(priority: int) -> str:
    """Ask for SCHED_RR (what the `watchdog` daemon uses) and the lowest OOM score; say what we got."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
        got = f"SCHED_RR priority {priority}"
    except PermissionError:
        got = "normal priority (SCHED_RR not permitted: EPERM)"
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as f:
            f.write("-1000")
    except OSError as exc:
        got += f"; oom_score_adj unchanged ({exc.strerror})"
    return got


def lock_memory(device: WatchdogDevice) -> str:
    """mlockall(CURRENT|FUTURE|ONFAULT): pages we touch are never paged out, untouched ones are
    not faulted in (plain MCL_CURRENT would pull all of libpython into RSS)."""
    try:
        device.mlockall(onfault=True)
    except OSError as exc:
        return f"not locked (mlockall: {exc.strerror})"
    return "locked (mlockall CURRENT|FUTURE|ONFAULT)"


# --------------------------------------------------------------------------- the loop


class Keepalive:
    """One run of the daemon on an open device."""

    def __init__(
        self,
        device: WatchdogDevice,
        config: KeepaliveConfig,
        *,
        notifier: NotifyChannel | None = None,
        log: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.config = config
        self._log = log or (lambda _msg: None)
        self._env = os.environ if env is None else env
        self._notifier = notifier if notifier is not None else make_notifier(self._env, self._log)
        self._clock = clock
        self._pings = 0

    def run(self, stop: Stopper) -> KeepaliveReport:
        """Ping until `stop` fires; disarm or hand off. Any failure, also during set-up, closes the
        device without disarming it: the timer keeps running and the machine resets."""
        pinger: Pinger | None = None
        try:
            timeout = self._configure_timeout()
            interval = self.config.resolve_interval(timeout)
            realtime = apply_realtime(self.config.priority) if self.config.realtime else "not requested"
            memory = lock_memory(self.device) if self.config.lock_memory else "not requested"
            stall_limit = self.config.resolve_stall_limit(interval)
            pinger = self.device.start_pinger(interval=interval, stall_limit=stall_limit)
            describe = (
                f"feeding {self.device.path} every {interval:g} s (timeout {timeout} s, backend "
                f"{self.device.backend}{', native pinger' if pinger else ''}); {realtime}; memory {memory}"
            )
            self._log(describe)
            self._notifier.send(f"READY=1\nSTATUS={describe}")
            self._loop(stop, interval, pinger)
        except BaseException:
            self._abandon(pinger)
            raise
        closed = self._finish(pinger)
        return KeepaliveReport(
            backend=self.device.backend,
            timeout=timeout,
            interval=interval,
            realtime=realtime,
            memory=memory,
            pings=self._pings,
            closed=closed,
        )

    def _configure_timeout(self) -> int:
        if self.config.timeout is None:
            return self.device.get_timeout()
        got = self.device.set_timeout(self.config.timeout)
        if got != self.config.timeout:
            self._log(
                f"{self.device.path}: the driver rounded the timeout {self.config.timeout} s to {got} s"
            )
        return got

    def _loop(self, stop: Stopper, interval: float, pinger: Pinger | None) -> None:
        sd_every = service_watchdog_interval(self._env, os.getpid())
        tick = min(interval, sd_every) if sd_every else interval
        deadline = self._clock()
        while True:
            self._feed(pinger)
            if sd_every:
                self._notifier.send("WATCHDOG=1")
            deadline += tick
            now = self._clock()
            deadline = max(deadline, now)  # overslept (suspend, overload): no burst of catch-up pings
            if stop.wait(deadline - now):
                return

    def _feed(self, pinger: Pinger | None) -> None:
        if pinger is None:
            self.device.keepalive()
            self._pings += 1
            return
        pinger.beat()
        stats = pinger.stats()
        if stats.errors:
            raise WatchdogError(
                f"{self.device.path}: the native pinger failed: {os.strerror(stats.last_errno)}",
                hint="the timer keeps running; the machine resets unless the device recovers",
            )
        self._pings = stats.pings

    def _abandon(self, pinger: Pinger | None) -> None:
        """On failure: stop pinging and close *without* disarming."""
        if pinger is not None:
            pinger.stop()
        if not self.device.closed:
            self.device.close_armed()
            self._log(f"{self.device.path}: keepalive failed; the watchdog is left armed")
        self._notifier.send("STOPPING=1\nSTATUS=keepalive failed; watchdog left armed")

    def _finish(self, pinger: Pinger | None) -> str:
        if pinger is not None:
            self._pings = pinger.stats().pings
            pinger.stop()
        self._notifier.send("STOPPING=1")
        if self.config.handoff:
            self.device.keepalive()  # a full timeout for the next owner to open the device
            self.device.close_armed()
            self._log(f"{self.device.path}: handed off, timer running for the next owner")
            return "handed-off"
        try:
            self.device.magic_close()
        except WatchdogError:
            if not self.device.closed:  # nowayout: close anyway, the timer keeps running
                self.device.close_armed()
            raise
        self._log(f"{self.device.path}: disarmed (magic close)")
        return "disarmed"
