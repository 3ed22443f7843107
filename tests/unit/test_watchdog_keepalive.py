"""The keepalive daemon loop, hand-off, sd_notify and signals, with a fake device and a fake clock."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bootguard.errors import UsageError, WatchdogError
from bootguard.seams._wd_consts import PingerStats
from bootguard.seams.sdnotify import NullNotifySocket
from bootguard.seams.watchdog import WatchdogDevice
from bootguard.services.keepalive import (
    Keepalive,
    KeepaliveConfig,
    StopSignal,
    make_notifier,
    service_watchdog_interval,
)
from tests.unit.test_watchdog_fakes import FakeClock, FakeDevice, FakeOps, clock, sysfs_root

__all__ = ["clock", "sysfs_root"]


class FakeStop:
    """Stands in for StopSignal: each wait advances the fake clock; stops after `ticks` waits."""

    def __init__(self, clock: FakeClock, ticks: int) -> None:
        self.clock = clock
        self.ticks = ticks
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        return len(self.waits) >= self.ticks


class Recorder:
    """A notifier that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: str) -> None:
        self.sent.append(message)


class FakePinger:
    """What the cffi backend's pinger does, driven by beats instead of a thread."""

    def __init__(self, dev: FakeDevice) -> None:
        self.dev = dev
        self.beats = 0
        self.stopped = False

    def beat(self) -> None:
        self.beats += 1
        self.dev.ping()

    def stats(self) -> PingerStats:
        return PingerStats(
            pings=self.beats, errors=0, skipped=0, max_gap_ns=0, last_ping_ns=0, last_errno=0, stalled=False
        )

    def stop(self) -> None:
        self.stopped = True


class FakeNativeOps(FakeOps):
    name = "fake-native"

    def start_pinger(self, fd: int, *, interval: float, stall_limit: float, use_write: bool) -> Any:
        self.pinger = FakePinger(self._dev(fd))
        self.pinger_args = (interval, stall_limit, use_write)
        return self.pinger


def _device(ops: FakeOps, sysfs_root: Path) -> WatchdogDevice:
    return WatchdogDevice.open("w", ops, sysfs_root=str(sysfs_root))


def _keepalive(
    dev: WatchdogDevice, clock: FakeClock, config: KeepaliveConfig, env: dict[str, str] | None = None
) -> tuple[Keepalive, Recorder, list[str]]:
    notes, logs = Recorder(), list[str]()
    ka = Keepalive(dev, config, notifier=notes, log=logs.append, env=env or {}, clock=clock)
    return ka, notes, logs


NO_PRIVILEGES = {"realtime": False, "lock_memory": False}


def _fake(
    sysfs_root: Path, clock: FakeClock, ops_type: type[FakeOps] = FakeOps, **kw: Any
) -> tuple[FakeOps, FakeDevice]:
    dev = FakeDevice(sysfs_root / "w", clock, **kw)
    return ops_type({"w": dev}), dev


def test_pings_every_interval_and_disarms_on_stop(sysfs_root: Path, clock: FakeClock) -> None:
    """Pure-Python path: one ping per tick at the interval, READY first, magic close at the end."""
    ops, dev = _fake(sysfs_root, clock)
    ka, notes, _ = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(timeout=8, **NO_PRIVILEGES))
    stop = FakeStop(clock, ticks=5)
    report = ka.run(stop)
    assert report.interval == 2.0 and report.timeout == 8 and report.pings == 5
    assert stop.waits == [2.0] * 5
    assert not dev.active and dev.writes == [b"V"] and not dev.expired
    assert notes.sent[0].startswith("READY=1\nSTATUS=feeding w every 2 s (timeout 8 s, backend fake)")
    assert notes.sent[-1] == "STOPPING=1" and report.closed == "disarmed"


def test_gaps_stay_below_half_the_timeout(sysfs_root: Path, clock: FakeClock) -> None:
    """Over a long run no two pings are further apart than the interval, so the fake never expires."""
    ops, dev = _fake(sysfs_root, clock, timeout=4)
    ka, _, _ = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(interval=2, **NO_PRIVILEGES))
    ka.run(FakeStop(clock, ticks=50))
    gaps = [b - a for a, b in zip(dev.pings, dev.pings[1:], strict=False)]
    assert max(gaps) <= 2.0


def test_handoff_leaves_the_timer_running(sysfs_root: Path, clock: FakeClock) -> None:
    """With handoff the last act is a ping and a close without 'V': the next owner has a full timeout."""
    ops, dev = _fake(sysfs_root, clock)
    ka, _, _ = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(handoff=True, **NO_PRIVILEGES))
    report = ka.run(FakeStop(clock, ticks=2))
    assert report.closed == "handed-off"
    assert dev.active and not dev.is_open and b"V" not in b"".join(dev.writes)
    assert dev.last_ping == clock()


def test_nowayout_stop_closes_armed_and_fails(sysfs_root: Path, clock: FakeClock) -> None:
    """Asked to disarm a nowayout device, the daemon closes it armed and reports the refusal."""
    ops, dev = _fake(sysfs_root, clock, nowayout=True)
    ka, _, _ = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(**NO_PRIVILEGES))
    with pytest.raises(WatchdogError, match="nowayout is set"):
        ka.run(FakeStop(clock, ticks=1))
    assert dev.active and not dev.is_open


def test_ping_failure_leaves_the_watchdog_armed(sysfs_root: Path, clock: FakeClock) -> None:
    """A failing ping is an error and the device is closed without 'V', never disarmed."""
    ops, dev = _fake(sysfs_root, clock)
    dev.fail_keepalive = errno.EIO
    ka, notes, logs = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(**NO_PRIVILEGES))
    with pytest.raises(WatchdogError, match="KEEPALIVE failed"):
        ka.run(FakeStop(clock, ticks=3))
    assert dev.active and not dev.is_open and dev.writes == []
    assert "left armed" in logs[-1] and "left armed" in notes.sent[-1]


def test_interval_above_half_the_timeout_is_refused(sysfs_root: Path, clock: FakeClock) -> None:
    """An interval longer than timeout/2 is a usage error naming both values."""
    ops, _ = _fake(sysfs_root, clock)
    ka, _, _ = _keepalive(
        _device(ops, sysfs_root), clock, KeepaliveConfig(timeout=10, interval=6, **NO_PRIVILEGES)
    )
    with pytest.raises(UsageError, match=r"--interval 6 s exceeds half the watchdog timeout \(10 s\)"):
        ka.run(FakeStop(clock, ticks=1))


def test_service_watchdog_is_fed_at_half_watchdog_usec(sysfs_root: Path, clock: FakeClock) -> None:
    """With WATCHDOG_USEC=2 s the loop ticks every 1 s and sends WATCHDOG=1 each tick."""
    ops, _ = _fake(sysfs_root, clock)
    env = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    ka, notes, _ = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(**NO_PRIVILEGES), env)
    stop = FakeStop(clock, ticks=3)
    ka.run(stop)
    assert stop.waits == [1.0] * 3
    assert notes.sent.count("WATCHDOG=1") == 3


def test_native_path_beats_instead_of_pinging(sysfs_root: Path, clock: FakeClock) -> None:
    """With a pinger the loop only beats the heartbeat; stall limit defaults to 3 intervals."""
    ops, dev = _fake(sysfs_root, clock, FakeNativeOps)
    ka, _, _ = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(timeout=20, **NO_PRIVILEGES))
    report = ka.run(FakeStop(clock, ticks=4))
    assert isinstance(ops, FakeNativeOps)
    assert ops.pinger.beats == 4 and ops.pinger.stopped and report.pings == 4
    assert ops.pinger_args == (5.0, 15.0, False)
    assert not dev.active


def test_privileges_are_reported(sysfs_root: Path, clock: FakeClock) -> None:
    """A refused mlockall is reported in the report and the status line, not hidden."""
    ops, _ = _fake(sysfs_root, clock)
    ops.mlock_errno = errno.EPERM
    config = KeepaliveConfig(realtime=False, lock_memory=True)
    ka, notes, _ = _keepalive(_device(ops, sysfs_root), clock, config)
    report = ka.run(FakeStop(clock, ticks=1))
    assert report.memory == "not locked (mlockall: Operation not permitted)"
    assert "memory not locked" in notes.sent[0]


def test_rounded_timeout_is_logged(sysfs_root: Path, clock: FakeClock) -> None:
    """A driver that rounds the timeout is believed (read back) and the rounding is logged."""
    ops, dev = _fake(sysfs_root, clock)
    orig = dev.set_timeout
    dev.set_timeout = lambda value: orig(value + 1)  # type: ignore[method-assign]
    ka, _, logs = _keepalive(_device(ops, sysfs_root), clock, KeepaliveConfig(timeout=9, **NO_PRIVILEGES))
    report = ka.run(FakeStop(clock, ticks=1))
    assert report.timeout == 10 and "rounded the timeout 9 s to 10 s" in logs[0]


# --------------------------------------------------------------------------- sd_notify and signals


def test_service_watchdog_interval_follows_sd_watchdog_enabled() -> None:
    """WATCHDOG_USEC counts only when WATCHDOG_PID is unset or ours; half of it is the interval."""
    assert service_watchdog_interval({"WATCHDOG_USEC": "3000000"}, 5) == 1.5
    assert service_watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "5"}, 5) == 1.5
    assert service_watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "6"}, 5) is None
    assert service_watchdog_interval({"WATCHDOG_USEC": "junk"}, 5) is None
    assert service_watchdog_interval({}, 5) is None


def test_sd_notify_sends_utf8_and_reports_a_failed_send_once(tmp_path: Path) -> None:
    """The one seam: UTF-8 on a real notify socket; once the socket is gone, the failure is logged
    once (not swallowed, not fatal)."""
    import socket

    from bootguard.seams import sdnotify as sd_seam

    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    logs: list[str] = []
    sender = make_notifier({"NOTIFY_SOCKET": path}, logs.append)
    assert isinstance(sender, sd_seam.NotifySocket)
    sender.send("STATUS=feeding \u2713 café")
    assert server.recv(4096) == "STATUS=feeding \u2713 café".encode()
    server.close()
    os.unlink(path)
    sender.send("WATCHDOG=1")
    sender.send("WATCHDOG=1")
    assert len(logs) == 1 and logs[0].startswith("sd_notify failed (") and logs[0].endswith(
        "systemd may not see READY/WATCHDOG"
    )


def test_an_unreachable_notify_socket_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WatchdogError, match="cannot connect to \\$NOTIFY_SOCKET"):
        make_notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}, print)


def test_no_notify_socket_means_no_notifier() -> None:
    """Without $NOTIFY_SOCKET nothing is imported or sent."""
    assert isinstance(make_notifier({}, print), NullNotifySocket)


def test_sigterm_wakes_the_wait_at_once() -> None:
    """SIGTERM ends a long wait immediately, and close() restores the previous handler."""
    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignal().install()
    try:
        assert stop.wait(0.01) is False
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
        try:
            assert stop.wait(5.0) is True
        finally:
            signal.signal(signal.SIGALRM, previous)
        assert time.monotonic() - started < 2.0
        assert stop.received == signal.SIGTERM
    finally:
        stop.close()
    assert signal.getsignal(signal.SIGTERM) == before
