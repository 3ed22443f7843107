"""The keepalive daemon as a real process: real signals, the real native thread, real sd_notify.

There is no watchdog driver in this container, so the daemon feeds a FIFO in write-ping mode (any
write is a ping, as on a real device) and the test timestamps what arrives. The authoritative
real-device runs are the i6300esb scenarios of the QEMU harness (docs/watchdog.md).
"""

from __future__ import annotations

import itertools
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The daemon child: the real WatchdogDevice and Keepalive over a FIFO. A FIFO answers no ioctl, so
# only the timeout query is stubbed. HANG=1 makes the Python loop hang (busy loop) after 3 ticks.
CHILD = r"""
import os, sys
from bootguard.seams.watchdog import PingMode, WatchdogDevice
from bootguard.services.keepalive import Keepalive, KeepaliveConfig, StopSignal

class FifoDevice(WatchdogDevice):
    def get_timeout(self): return 2
    def set_timeout(self, seconds): return seconds

class Stop(StopSignal):
    ticks = 0
    def wait(self, seconds):
        self.ticks += 1
        if os.environ.get("HANG") == "1" and self.ticks > 3:
            while True:  # a hung interpreter: the loop never beats again
                pass
        return super().wait(seconds)

plain = WatchdogDevice.open(sys.argv[1], ping_mode=PingMode.WRITE)
device = FifoDevice(plain.path, plain.fd, plain._ops, sysfs_path=None, ping_mode=PingMode.WRITE)
config = KeepaliveConfig(interval=0.1, handoff=sys.argv[2] == "handoff", stall_limit=0.3)
report = Keepalive(device, config, log=lambda m: print(m, file=sys.stderr, flush=True)).run(Stop().install())
print(report.backend, report.closed, report.pings, flush=True)
"""


@pytest.fixture(params=["cffi", "python"])
def backend(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "cffi":
        probe = subprocess.run([sys.executable, "-c", "import bootguard._native_wd"], cwd=ROOT, check=False)
        if probe.returncode != 0 and os.environ.get("BOOTGUARD_REQUIRE_NATIVE") != "1":
            pytest.skip("bootguard._native_wd not built (python3 c_ext/watchdog_build.py)")
    return name


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "watchdog-stand-in"
    os.mkfifo(path)
    return path


def _env(backend: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOTGUARD_", "NOTIFY_", "WATCHDOG_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["BOOTGUARD_NO_NATIVE" if backend == "python" else "BOOTGUARD_REQUIRE_NATIVE"] = "1"
    return env | extra


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def _start(
    spawn: list[subprocess.Popen[str]], fifo: Path, mode: str, env: dict[str, str]
) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(fifo), mode],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawn.append(proc)
    return proc, os.open(fifo, os.O_RDONLY)  # blocks until the daemon opened it


def _read_for(fd: int, seconds: float) -> list[tuple[float, bytes]]:
    """(arrival time, bytes) for everything written within `seconds`, or until EOF."""
    got: list[tuple[float, bytes]] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            data = os.read(fd, 4096)
            if not data:
                break
            got.append((time.monotonic(), data))
    return got


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["disarm", "handoff"])
def test_sigterm_disarms_or_hands_off(
    backend: str, mode: str, fifo: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    """The daemon pings every 0.1 s; on SIGTERM it writes 'V' last (disarm) or never (hand-off)."""
    proc, fd = _start(spawn, fifo, mode, _env(backend))
    pings = _read_for(fd, 1.0)
    proc.send_signal(signal.SIGTERM)
    tail = b"".join(data for _, data in _read_for(fd, 10.0))
    os.close(fd)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    times = [t for t, _ in pings]
    # Behaviour, not timing (jitter is bench/watchdog_jitter.py's job): it kept pinging, well inside
    # any timeout, even on a loaded machine.
    assert len(times) >= 3
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.0
    assert set(b"".join(data for _, data in pings)) == {0}
    assert out.split()[:2] == [backend, "disarmed" if mode == "disarm" else "handed-off"]
    assert tail.endswith(b"V") if mode == "disarm" else b"V" not in tail


@pytest.mark.integration
def test_hung_interpreter_stops_the_native_pinger(fifo: Path, spawn: list[subprocess.Popen[str]]) -> None:
    """When the Python loop hangs, the C pinger stops after the stall limit, so the machine would reset."""
    probe = subprocess.run([sys.executable, "-c", "import bootguard._native_wd"], cwd=ROOT, check=False)
    if probe.returncode != 0 and os.environ.get("BOOTGUARD_REQUIRE_NATIVE") != "1":
        pytest.skip("bootguard._native_wd not built")
    proc, fd = _start(spawn, fifo, "disarm", _env("cffi", HANG="1"))
    early = _read_for(fd, 1.0)  # 3 healthy ticks, then the hang; pings go on ≤ 0.3 s more
    late = _read_for(fd, 1.0)
    proc.kill()
    os.close(fd)
    assert len(early) >= 3
    assert late == [], "the pinger kept feeding the watchdog for a hung interpreter"


@pytest.mark.integration
def test_sd_notify_ready_status_and_service_watchdog(
    backend: str, fifo: Path, tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    """Through the real sdnotify package: READY=1 with STATUS, then WATCHDOG=1 at WATCHDOG_USEC/2."""
    sock_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(5)
    try:
        env = _env(backend, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000")
        proc, fd = _start(spawn, fifo, "disarm", env)
        messages = [sock.recv(4096).decode("latin-1") for _ in range(4)]
        proc.send_signal(signal.SIGTERM)
        _read_for(fd, 10.0)
        os.close(fd)
        proc.communicate(timeout=10)
    finally:
        sock.close()
    assert messages[0].startswith("READY=1\nSTATUS=feeding ")
    assert messages[1:] == ["WATCHDOG=1"] * 3
