"""`bootguard initrd` arms the watchdog whatever state the state directory is in (issue 15, item 3).

The watchdog is the one protection that does not depend on bootguard's own records: a boot whose
state cannot be read or written must still end in a reset if it hangs. Each case below is a state
directory a careless operator or a failing disk leaves; the step reports that the boot is not
recorded (non-zero exit, after arming) and never blocks on another writer's lock beyond its bound.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from bootguard.earlyboot import step as initrd_step
from bootguard.errors import ExitCode
from bootguard.seams import _wd_native
from bootguard.seams.statestore import StateStore
from tests.hosttree import HostTree
from tests.unit.test_watchdog_fakes import FakeClock, FakeDevice, FakeOps, clock, sysfs_root

__all__ = ["clock", "sysfs_root"]

DEVICE = "/dev/watchdog-under-test"


@pytest.fixture
def dog(sysfs_root: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeDevice:
    dev = FakeDevice(sysfs_root / "watchdog0", clock)
    monkeypatch.setattr(_wd_native, "OPS", FakeOps({DEVICE: dev}))
    return dev


def _initrd(host: HostTree, sysfs_root: Path) -> tuple[int, dict[str, object]]:
    code, out, err = host.cli(
        "--json",
        "initrd",
        "--boot-id",
        str(uuid.uuid4()),
        "--reboot-command",
        "true",
        "--watchdog-device",
        DEVICE,
        "--watchdog-timeout",
        "120",
        "--watchdog-sysfs",
        str(sysfs_root),
    )
    report = json.loads(out)
    assert isinstance(report, dict), err
    return code, report


def _booted_host(host: HostTree) -> None:
    host.add_entry("gen-1.conf")
    host.booted("gen-1.conf")


def _assert_armed_and_unrecorded(dog: FakeDevice, code: int, report: dict[str, object], why: str) -> None:
    assert dog.active and not dog.is_open, "armed and handed on"
    assert dog.timeout == 120
    assert "armed with 120 s" in str(report["watchdog"])
    assert code != 0
    assert why in str(report["error"]) and "not recorded" in str(report["error"])


def test_a_healthy_state_is_recorded_and_the_watchdog_armed(
    host: HostTree, dog: FakeDevice, sysfs_root: Path
) -> None:
    _booted_host(host)
    code, report = _initrd(host, sysfs_root)
    assert code == 0 and "error" not in report
    assert dog.active and not dog.is_open


def test_both_slots_corrupt(host: HostTree, dog: FakeDevice, sysfs_root: Path) -> None:
    _booted_host(host)
    host.state.mkdir(mode=0o700)
    for slot in ("state.a.json", "state.b.json"):
        (host.state / slot).write_bytes(b"garbage\n")
        (host.state / slot).chmod(0o600)
    code, report = _initrd(host, sysfs_root)
    _assert_armed_and_unrecorded(dog, code, report, "no valid state")
    assert code == ExitCode.STATE


def test_a_world_writable_state_directory(host: HostTree, dog: FakeDevice, sysfs_root: Path) -> None:
    _booted_host(host)
    host.state.mkdir()
    host.state.chmod(0o777)
    code, report = _initrd(host, sysfs_root)
    _assert_armed_and_unrecorded(dog, code, report, str(host.state))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_a_foreign_state_directory(host: HostTree, dog: FakeDevice, sysfs_root: Path) -> None:
    _booted_host(host)
    host.state.mkdir(mode=0o700)
    os.chown(host.state, 12345, 12345)
    code, report = _initrd(host, sysfs_root)
    _assert_armed_and_unrecorded(dog, code, report, str(host.state))


def test_a_lock_that_is_not_a_file(host: HostTree, dog: FakeDevice, sysfs_root: Path) -> None:
    _booted_host(host)
    host.state.mkdir(mode=0o700)
    (host.state / "lock").mkdir()
    code, report = _initrd(host, sysfs_root)
    _assert_armed_and_unrecorded(dog, code, report, "lock")


def test_a_full_disk(
    host: HostTree, dog: FakeDevice, sysfs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC from the state write (as a full /var gives it) is reported, the watchdog still armed."""
    import errno

    from bootguard.seams import fs

    def full(*args: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    _booted_host(host)
    monkeypatch.setattr(fs, "atomic_write", full)
    code, report = _initrd(host, sysfs_root)
    _assert_armed_and_unrecorded(dog, code, report, "No space left on device")


def test_a_lock_held_by_another_process_is_waited_for_within_a_bound(
    host: HostTree, dog: FakeDevice, sysfs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that never lets go (a hung `bootguard` in another process) costs the step its bound,
    not the boot's protection."""
    _booted_host(host)
    StateStore(str(host.state)).update(lambda s: s.with_halted(None).next_seq())  # creates dir and lock
    monkeypatch.setattr(initrd_step, "LOCK_BOUND", 0.5)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other process: hold the lock until the test is done
        fd = os.open(host.state / "lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(w, b"x")
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(r, 1) == b"x"
        started = time.monotonic()
        code, report = _initrd(host, sysfs_root)
        took = time.monotonic() - started
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)
        os.close(w)
    assert 0.5 <= took < 5
    _assert_armed_and_unrecorded(dog, code, report, "held by another process")
    # Once the holder is gone the next boot records normally.
    code, report = _initrd(host, sysfs_root)
    assert code == 0 and "error" not in report
