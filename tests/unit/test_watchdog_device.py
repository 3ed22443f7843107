"""The device layer: sysfs discovery, the WatchdogDevice API and its errors, with a fake at the seam."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from bootguard.errors import NotFoundError, WatchdogBusyError, WatchdogError
from bootguard.seams._wd_consts import WatchdogFlag, decode_flags
from bootguard.seams.watchdog import (
    PingMode,
    WatchdogDevice,
    WatchdogInfo,
    WatchdogState,
    bootstatus_says_watchdog_reset,
    discover,
    find_holders,
    sysfs_for_device,
)
from tests.unit.test_watchdog_fakes import FakeClock, FakeDevice, FakeOps, clock, sysfs_root

__all__ = ["clock", "sysfs_root"]  # fixtures re-used from the fake's module

NULL_DEV = f"{os.major(os.stat('/dev/null').st_rdev)}:{os.minor(os.stat('/dev/null').st_rdev)}"


def _write_sysfs(directory: Path, **attrs: str) -> Path:
    directory.mkdir(parents=True)
    for name, value in attrs.items():
        (directory / name).write_text(value + "\n")
    return directory


def _open(ops: FakeOps, path: str, sysfs_root: Path, **kw: object) -> WatchdogDevice:
    return WatchdogDevice.open(path, ops, sysfs_root=str(sysfs_root), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- discovery


def test_discover_decodes_an_i6300esb_after_a_watchdog_reset(sysfs_root: Path) -> None:
    """A sysfs entry with bootstatus 32 decodes to CARDRESET and says the last boot was reset."""
    _write_sysfs(
        sysfs_root / "watchdog0",
        identity="i6300ESB timer",
        state="active",
        timeout="30",
        min_timeout="1",
        max_timeout="2046",
        nowayout="0",
        bootstatus="32",
        options="0x8180",
        status="0x0",
    )
    (info,) = discover(str(sysfs_root), "/dev")
    assert info.identity == "i6300ESB timer"
    assert info.device == "/dev/watchdog0"
    assert info.state is WatchdogState.ACTIVE
    assert (info.timeout, info.min_timeout, info.max_timeout) == (30, 1, 2046)
    assert info.nowayout is False
    assert info.bootstatus == ("CARDRESET",)
    assert info.option_names == ("SETTIMEOUT", "MAGICCLOSE", "KEEPALIVEPING")
    assert info.timeleft is None and info.pretimeout is None
    assert bootstatus_says_watchdog_reset(info)
    assert info.to_dict()["watchdog_reset"] is True


def test_clean_bootstatus_is_not_a_watchdog_reset(sysfs_root: Path) -> None:
    """bootstatus 0 (softdog, cold boot, reboot -f) is no watchdog reset, nor is a missing file."""
    _write_sysfs(sysfs_root / "watchdog0", bootstatus="0")
    _write_sysfs(sysfs_root / "watchdog1", identity="Software Watchdog")
    infos = discover(str(sysfs_root), "/dev")
    assert [bootstatus_says_watchdog_reset(i) for i in infos] == [False, False]
    assert infos[1].bootstatus_raw is None


def test_cardreset_in_options_alone_is_not_a_reset(sysfs_root: Path) -> None:
    """Only bootstatus counts: a driver listing CARDRESET among its options was not thereby reset."""
    _write_sysfs(sysfs_root / "watchdog0", options="0x81a0", bootstatus="0")
    (info,) = discover(str(sysfs_root), "/dev")
    assert "CARDRESET" in info.option_names
    assert not bootstatus_says_watchdog_reset(info)


def test_discover_orders_numerically_and_ignores_strangers(sysfs_root: Path) -> None:
    """watchdog10 sorts after watchdog2; entries that are not watchdogN are ignored."""
    for name in ("watchdog10", "watchdog2", "watchdogX", "other"):
        _write_sysfs(sysfs_root / name, identity=name)
    assert [i.name for i in discover(str(sysfs_root), "/dev")] == ["watchdog2", "watchdog10"]


def test_discover_finds_a_legacy_only_node(tmp_path: Path) -> None:
    """A /dev/watchdog misc node without a sysfs class (ib700wdt) is still listed, marked legacy."""
    dev = tmp_path / "dev"
    dev.mkdir()
    os.mknod(dev / "watchdog", stat.S_IFCHR | 0o600, os.makedev(10, 130))
    (info,) = discover(str(tmp_path / "missing"), str(dev))
    assert info.device == str(dev / "watchdog")
    assert info.sysfs_path is None and info.state is WatchdogState.UNKNOWN


def test_decode_flags_names_unknown_bits_in_hex() -> None:
    """Unknown status bits are shown as hex instead of being dropped."""
    assert decode_flags(0x20 | 0x10000) == ("CARDRESET", "0x10000")


def test_sysfs_for_device_matches_by_major_minor(sysfs_root: Path) -> None:
    """The sysfs directory is found by the node's major:minor, whatever the node is called."""
    _write_sysfs(sysfs_root / "watchdog0", dev="250:0")
    target = _write_sysfs(sysfs_root / "watchdog1", dev=NULL_DEV)
    assert sysfs_for_device("/dev/null", str(sysfs_root)) == str(target)


# --------------------------------------------------------------------------- open errors


def test_open_missing_device_says_how_to_load_a_driver(sysfs_root: Path) -> None:
    """ENOENT on open becomes NotFoundError naming the path, with a modprobe hint."""
    with pytest.raises(NotFoundError) as err:
        _open(FakeOps({}), "/dev/watchdog0", sysfs_root)
    assert "/dev/watchdog0" in err.value.message
    assert err.value.hint is not None and "modprobe i6300esb" in err.value.hint


def test_busy_device_names_systemd_and_runtime_watchdog(tmp_path: Path, clock: FakeClock) -> None:
    """EBUSY names the holder found through /proc/*/fd and points at RuntimeWatchdogSec for PID 1."""
    proc = tmp_path / "proc"
    (proc / "1" / "fd").mkdir(parents=True)
    (proc / "1" / "comm").write_text("systemd\n")
    os.symlink("/dev/null", proc / "1" / "fd" / "7")
    (proc / "42" / "fd").mkdir(parents=True)
    os.symlink("/etc/hostname", proc / "42" / "fd" / "3")
    dev = FakeDevice(tmp_path / "sys" / "watchdog0", clock)
    ops = FakeOps({"/dev/null": dev})
    ops.open("/dev/null")
    with pytest.raises(WatchdogBusyError) as err:
        WatchdogDevice.open("/dev/null", ops, sysfs_root=str(tmp_path / "sys"), proc_root=str(proc))
    assert err.value.message == "/dev/null is busy: held by systemd (PID 1)"
    assert err.value.hint is not None and "RuntimeWatchdogSec" in err.value.hint
    assert err.value.exit_code == 5


def test_find_holders_sees_this_process(tmp_path: Path) -> None:
    """The real /proc scan finds our own descriptor of a character device."""
    fd = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
    try:
        assert (os.getpid(), Path(f"/proc/{os.getpid()}/comm").read_text().strip()) in find_holders(
            "/dev/null"
        )
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the API


@pytest.fixture
def esb(sysfs_root: Path, clock: FakeClock) -> tuple[FakeOps, FakeDevice]:
    dev = FakeDevice(sysfs_root / "watchdog0", clock, dev=NULL_DEV)
    return FakeOps({"/dev/null": dev}), dev


def test_support_and_timeouts(esb: tuple[FakeOps, FakeDevice], sysfs_root: Path) -> None:
    """GETSUPPORT, GET/SETTIMEOUT (value read back) and pretimeout go through the seam."""
    ops, dev = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    assert wd.sysfs_path == str(sysfs_root / "watchdog0")
    sup = wd.support()
    assert sup.identity == "i6300ESB timer" and sup.has(WatchdogFlag.KEEPALIVEPING)
    assert wd.get_timeout() == 30
    assert wd.set_timeout(7) == 7 and dev.timeout == 7
    assert wd.set_pretimeout(3) == 3 and wd.get_pretimeout() == 3
    assert wd.time_left() is None  # EOPNOTSUPP, as on i6300esb
    assert wd.bootstatus() == 0
    wd.close_armed()


def test_out_of_range_timeout_gives_the_sysfs_range(
    esb: tuple[FakeOps, FakeDevice], sysfs_root: Path
) -> None:
    """EINVAL on SETTIMEOUT names the value, the device and the min–max range from sysfs."""
    ops, _ = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    with pytest.raises(WatchdogError) as err:
        wd.set_timeout(5000)
    assert err.value.message == "/dev/null: timeout 5000 s is out of range (allowed: 1–2046 s)"


def test_pretimeout_not_below_timeout_is_explained(esb: tuple[FakeOps, FakeDevice], sysfs_root: Path) -> None:
    """EINVAL on SETPRETIMEOUT says it must stay below the current timeout."""
    ops, _ = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    with pytest.raises(WatchdogError, match=r"must be below the timeout \(30 s\)"):
        wd.set_pretimeout(30)


def test_keepalive_uses_the_ioctl_when_supported(esb: tuple[FakeOps, FakeDevice], sysfs_root: Path) -> None:
    """With KEEPALIVEPING the ping is the ioctl, not a write."""
    ops, dev = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    wd.keepalive()
    assert len(dev.pings) == 2 and dev.writes == []  # open + one ping


def test_keepalive_writes_without_keepaliveping(sysfs_root: Path, clock: FakeClock) -> None:
    """Without KEEPALIVEPING the ping is a write that never contains the magic 'V'."""
    dev = FakeDevice(sysfs_root / "watchdog0", clock, options=int(WatchdogFlag.MAGICCLOSE))
    wd = _open(FakeOps({"w": dev}), "w", sysfs_root)
    wd.keepalive()
    wd.keepalive()
    assert dev.writes == [b"\0", b"\0"] and not dev.expect_close


def test_keepalive_falls_back_to_write_on_eopnotsupp(
    esb: tuple[FakeOps, FakeDevice], sysfs_root: Path
) -> None:
    """A forced ioctl ping that the driver refuses with EOPNOTSUPP falls back to writes."""
    ops, dev = esb
    dev.fail_keepalive = errno.EOPNOTSUPP
    wd = _open(ops, "/dev/null", sysfs_root, ping_mode=PingMode.IOCTL)
    wd.keepalive()
    assert dev.writes == [b"\0"]


def test_magic_close_disarms(esb: tuple[FakeOps, FakeDevice], sysfs_root: Path) -> None:
    """magic_close writes 'V', closes, and the timer stops (sysfs state inactive)."""
    ops, dev = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    wd.magic_close()
    assert wd.closed and not dev.active and dev.writes == [b"V"]
    info = WatchdogInfo.from_sysfs(str(sysfs_root / "watchdog0"))
    assert info.state is WatchdogState.INACTIVE


def test_magic_close_refuses_nowayout_and_keeps_the_device(sysfs_root: Path, clock: FakeClock) -> None:
    """With sysfs nowayout=1 a disarm is refused before writing, and the device stays open."""
    dev = FakeDevice(sysfs_root / "watchdog0", clock, nowayout=True, dev=NULL_DEV)
    wd = _open(FakeOps({"/dev/null": dev}), "/dev/null", sysfs_root)
    with pytest.raises(WatchdogError, match="nowayout is set"):
        wd.magic_close()
    assert not wd.closed and dev.writes == []
    with pytest.raises(WatchdogError, match="nowayout"):
        wd.disable()


def test_magic_close_reports_a_timer_that_keeps_running(
    esb: tuple[FakeOps, FakeDevice], sysfs_root: Path
) -> None:
    """If sysfs still says active after the magic close, that is an error, not a silent success."""
    ops, dev = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    dev.nowayout = True  # set behind sysfs's back: the driver ignores the 'V'
    with pytest.raises(WatchdogError, match="still active after the magic close"):
        wd.magic_close()
    assert wd.closed


def test_close_armed_leaves_the_timer_running(esb: tuple[FakeOps, FakeDevice], sysfs_root: Path) -> None:
    """A plain close keeps the timer running: without a new owner the machine resets."""
    ops, dev = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    wd.close_armed()
    assert dev.active and not dev.is_open
    dev.clock.advance(31)
    assert dev.expired


def test_context_manager_disarms_on_success_only(esb: tuple[FakeOps, FakeDevice], sysfs_root: Path) -> None:
    """Leaving the with-block normally disarms; leaving it by an exception leaves the timer armed."""
    ops, dev = esb
    with _open(ops, "/dev/null", sysfs_root) as wd:
        wd.keepalive()
    assert dev.state() == "inactive"
    with pytest.raises(RuntimeError), _open(ops, "/dev/null", sysfs_root):
        raise RuntimeError("crash")
    assert dev.state() == "active" and not dev.is_open


def test_enable_disable_and_closed_device(esb: tuple[FakeOps, FakeDevice], sysfs_root: Path) -> None:
    """disable stops and enable restarts the timer; any call on a closed device is an error."""
    ops, dev = esb
    wd = _open(ops, "/dev/null", sysfs_root)
    wd.disable()
    assert dev.state() == "inactive"
    wd.enable()
    assert dev.state() == "active"
    wd.close_armed()
    with pytest.raises(WatchdogError, match="already closed"):
        wd.keepalive()
