"""One QEMU process per scenario, through all of its resets, with a host-side timeout.

No `-no-reboot`: the guest's `reboot -f`, a kernel panic (`panic=1`) and an i6300esb expiry
(`-action watchdog=reset`) all reset the same process, which is what lets the watchdog's bootstatus
survive into the next boot. The final boot powers off and QEMU exits 0. Serial output goes to a file;
QMP events are recorded by `qmp.QmpClient`.

KVM: /dev/kvm may exist and still be unusable for OVMF (the guest dies with "KVM internal error …
emulation failure" and the paused process never exits), and `-accel kvm:tcg` does not fall back. So the
accelerator is chosen by really booting OVMF under a short timeout (`probe_accel`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.vm.harness.qmp import QmpClient, QmpEvent

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
QEMU = "qemu-system-x86_64"
BOOT_MARKER = "BGVM-BOOT "

# CSI sequences (colours, cursor moves, `ESC [ ? 25 l`), other two-byte escapes, and stray CRs.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|\r")

class _MachineSlots:
    """At most two VMs at once on this 2-core machine (one core per TCG vCPU) — machine-wide, not per
    process: two pytest runs (two checkouts, a test and the demo) share the same two cores. A slot is
    an flock on one of two files; the kernel drops it if the holder dies."""

    def __init__(self, count: int, lockdir: str = "/run/lock") -> None:
        self._paths = [os.path.join(lockdir if os.path.isdir(lockdir) else tempfile.gettempdir(),
                                    f"bootguard-vm-slot-{i}") for i in range(count)]
        self._local = threading.local()

    def __enter__(self) -> None:
        import fcntl

        while True:
            for path in self._paths:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._local.fd = fd
                return
            time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        os.close(self._local.fd)


VM_SLOTS = _MachineSlots(2)


def strip_ansi(text: str) -> str:
    """Serial text without the ANSI escapes OVMF writes (and without CRs)."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class KillAfter:
    """A power cut at a chosen moment: SIGKILL QEMU once it has spent `cpu_seconds` of CPU time after
    `marker` first appeared on the serial line. CPU time, not wall time, so the cut lands at the same
    point of the guest's work whatever else the two cores are doing."""

    marker: str
    cpu_seconds: float


@dataclass(frozen=True)
class VmSpec:
    """What to boot: the disks, where to put the logs, and how long to let it run."""

    workdir: Path
    boot_disk: Path
    state_disk: Path
    accel: str = "tcg"
    memory_mib: int = 512
    # The guest is starved when other work shares the 2 cores: the timeout counts QEMU's CPU seconds
    # (what a boot really costs under TCG), with wall_factor × timeout as a wall-clock backstop.
    timeout: float = 300.0
    wall_factor: float = 3.0
    max_boots: int = 12  # host-side stop for boot loops (the guest also stops itself)
    share_host_root: bool = True
    # The boot disk as a write-protected device (virtio-blk VIRTIO_BLK_F_RO): the firmware's FAT driver
    # cannot write either, unlike a read-only Linux mount of a writable disk.
    esp_readonly: bool = False
    vars_file: Path | None = None  # an OVMF variable store to keep using (None: a fresh copy)
    kill_after: KillAfter | None = None


@dataclass
class VmRun:
    """What happened: exit status, why it stopped, the (ANSI-stripped) serial log and QMP events."""

    returncode: int | None
    stopped: str  # "poweroff", "timeout", "max-boots", "killed" (VmSpec.kill_after), "stalled", "exit N"
    seconds: float
    cpu: float  # QEMU's CPU seconds: the cost of the run without the time it waited for a core
    serial: str
    events: list[QmpEvent] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)

    @property
    def power_cycles(self) -> int:
        """How often the harness restarted a QEMU that locked up after a guest reset (_ResetStall)."""
        return sum(1 for e in self.events if e.name == "HARNESS-POWER-CYCLE")

    def how_it_stopped(self) -> str:
        """Empty for a guest that powered off by itself, else why (e.g. ` (timeout)`), plus power cycles."""
        why = "" if self.stopped == "poweroff" else f" ({self.stopped})"
        return why + (f" [{self.power_cycles}× power cycle]" if self.power_cycles else "")


def qemu_argv(spec: VmSpec, vars_fd: Path, qmp_sock: Path) -> list[str]:
    esp_ro = ",readonly=on" if spec.esp_readonly else ""
    argv = [
        QEMU,
        "-accel", spec.accel,
        "-machine", "q35",
        "-m", str(spec.memory_mib),
        "-smp", "1",
        "-nodefaults",
        "-display", "none",
        "-serial", "stdio",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
        "-drive", f"if=none,id=esp,format=raw,file={spec.boot_disk}{esp_ro}",
        "-device", "virtio-blk-pci,drive=esp,bootindex=0",
        "-drive", f"if=none,id=state,format=raw,file={spec.state_disk}",
        "-device", "virtio-blk-pci,drive=state",
        "-device", "i6300esb",
        "-action", "watchdog=reset",
        "-qmp", f"unix:{qmp_sock},server=on,wait=off",
    ]  # fmt: skip
    if spec.share_host_root:
        argv += ["-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"]
    return argv


def fresh_vars(dest: Path) -> Path:
    """A fresh copy of the OVMF variable store: every scenario starts with factory EFI variables."""
    shutil.copyfile(OVMF_VARS, dest)
    return dest


def _count_boots(path: Path) -> int:
    try:
        return path.read_bytes().count(BOOT_MARKER.encode())
    except FileNotFoundError:
        return 0


class SerialTail:
    """Hands complete, ANSI-stripped serial lines to a callback as they arrive (live narration)."""

    def __init__(self, path: Path, on_line: Callable[[str], None]) -> None:
        self.path, self.on_line = path, on_line
        self.offset, self.partial = 0, b""

    def poll(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        if final and self.partial:
            lines, self.partial = [*lines, self.partial], b""
        for line in lines:
            self.on_line(strip_ansi(line.decode("utf-8", "replace")))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(proc: subprocess.Popen[bytes], qmp: QmpClient | None) -> None:
    if qmp is not None:
        try:
            qmp.command("quit", timeout=5)
        except (OSError, TimeoutError):
            pass  # QEMU is beyond answering: the signals below end it
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _connect_qmp(sock: Path, started: float) -> QmpClient | None:
    qmp = QmpClient(sock, started)
    try:
        qmp.connect()
    except (OSError, TimeoutError):
        return None  # QEMU died at start-up: its stderr says why
    return qmp


class _PowerCut:
    """Decides when `KillAfter` says QEMU dies. Polled every 20 ms while armed; reads only the serial
    bytes that arrived since the last poll (plus a marker's length of overlap)."""

    def __init__(self, kill: KillAfter, serial_path: Path, wall_factor: float) -> None:
        self.kill, self.serial_path, self.wall_factor = kill, serial_path, wall_factor
        self.seen: tuple[float, float] | None = None  # (CPU s, monotonic s) when the marker appeared
        self.offset = 0

    def _marker_arrived(self) -> bool:
        needle = self.kill.marker.encode()
        start = max(0, self.offset - len(needle) + 1)  # a marker split across two polls is still found
        try:
            with open(self.serial_path, "rb") as f:
                f.seek(start)
                chunk = f.read()
        except FileNotFoundError:
            return False
        self.offset = start + len(chunk)
        return needle in chunk

    def due(self, cpu: float) -> bool:
        if self.seen is None:
            if self._marker_arrived():
                self.seen = (cpu, time.monotonic())
                return self.kill.cpu_seconds <= 0
            return False
        cpu_at, wall_at = self.seen
        late = time.monotonic() - wall_at > self.kill.cpu_seconds * self.wall_factor + 5
        return cpu - cpu_at >= self.kill.cpu_seconds or late


class _ResetStall:
    """QEMU 7.2 under TCG can lock up right after a guest reset: the vCPU thread spins in OVMF's DXE code
    (RIP around 0x1f03xxxx, seen with `info registers`) with not one serial byte, and a QMP
    `system_reset` then never returns (the main loop waits for the vCPU to stop, which it never does).
    Seen in CI on distro gitops-phases (252 after its 6th boot, 262 after its 4th, 30 CPU minutes each)
    and here after the first reboot of 262 in 2 of 4 runs; a cold start from the same disks and NVRAM
    boots at once. The same lock-up is reported for TCG guests elsewhere
    (https://github.com/kubevirt/kubevirt/issues/6885). A guest reset disarms the i6300esb, so nothing
    in the guest can end it; on a real board the power would be cycled. The harness does that: after
    STALL_CPU seconds of QEMU CPU with no serial output since a reset (a QMP RESET, or the kernel's last
    words `reboot: Restarting system`), it records where the CPU is (HARNESS-KICK, with `info
    registers`) and run_vm starts QEMU again on the same disks and NVRAM (HARNESS-POWER-CYCLE). Both
    show in every scenario's description and result.json. A normal boot prints within a few CPU seconds
    of a reset (OVMF's BdsDxe lines), so this never fires on a boot that is merely slow.

    The reset and the kernel's last line usually land in the same poll: a new RESET therefore starts the
    quiet period even when the serial grew in that poll."""

    STALL_CPU = float(os.environ.get("BGVM_STALL_CPU", "60"))
    LAST_WORDS = b"reboot: Restarting system"
    DIAG = ("info cpus", "info registers")

    def __init__(self, qmp: QmpClient, serial_path: Path) -> None:
        self.qmp, self.serial_path = qmp, serial_path
        self.size = -1
        self.resets = 0
        self.quiet_from: float | None = None  # QEMU CPU seconds when a silent reset was seen

    def _ends_in_reset(self, size: int) -> bool:
        with open(self.serial_path, "rb") as f:
            f.seek(max(0, size - 200))
            return self.LAST_WORDS in f.read().rstrip().rsplit(b"\n", 1)[-1]

    def poll(self, cpu: float) -> bool:
        """True once the guest is locked up after a reset (recorded as HARNESS-KICK): cycle the power."""
        size = self.serial_path.stat().st_size if self.serial_path.exists() else 0
        resets = sum(1 for e in self.qmp.snapshot() if e.name == "RESET")
        grew, new_reset = size != self.size, resets > self.resets
        self.size, self.resets = size, resets
        if new_reset or (grew and self._ends_in_reset(size)):
            self.quiet_from = cpu
        elif grew:
            self.quiet_from = None
        elif self.quiet_from is not None and cpu - self.quiet_from >= self.STALL_CPU:
            self._record(cpu - self.quiet_from, resets)
            return True
        return False

    def _record(self, silent: float, resets: int) -> None:
        diag: dict[str, object] = {}
        for line in self.DIAG:
            try:
                hmp: dict[str, Any] = {"command-line": line}
                diag[line] = self.qmp.command("human-monitor-command", timeout=5, **hmp).get("return")
            except TimeoutError:
                diag[line] = None
        data = {"silent_cpu_seconds": round(silent, 1), "resets": resets, "diag": diag}
        self.qmp.note("HARNESS-KICK", data)


def _supervise(
    proc: subprocess.Popen[bytes],
    spec: VmSpec,
    qmp: QmpClient | None,
    tail: SerialTail | None,
    *,
    started: float,
    cpu_before: float = 0.0,
    detector: type[_ResetStall] = _ResetStall,
) -> tuple[str, float]:
    """Wait for QEMU to exit, stopping it on timeout, a boot loop or a lock-up after a reset ("stalled");
    returns (why it stopped, CPU s of this QEMU). Timeouts count from `started` and `cpu_before`, the
    wall clock and CPU of earlier QEMUs of the same run (power cycles)."""
    serial_path = spec.workdir / "serial.raw"
    cut = _PowerCut(spec.kill_after, serial_path, spec.wall_factor) if spec.kill_after else None
    stall = detector(qmp, serial_path) if qmp is not None and cut is None else None
    cpu = 0.0
    while proc.poll() is None:
        cpu = max(cpu, cpu_seconds(proc.pid))
        if tail is not None:
            tail.poll()
        if stall is not None and stall.poll(cpu):
            proc.kill()  # the locked-up QEMU answers no QMP command that needs its vCPU
            proc.wait()
            return "stalled", cpu
        if cut is not None and cut.due(cpu):
            proc.kill()  # SIGKILL: no flush, no clean shutdown of anything, as in a power cut
            proc.wait()
            return "killed", cpu
        stopped = ""
        if cpu_before + cpu > spec.timeout or time.monotonic() - started > spec.timeout * spec.wall_factor:
            stopped = "timeout"
        elif _count_boots(serial_path) > spec.max_boots:
            stopped = "max-boots"
        if stopped:
            _stop(proc, qmp)
            return stopped, cpu
        time.sleep(0.02 if cut is not None else 0.25)
    rc = proc.returncode
    return ("poweroff" if rc == 0 else f"exit {rc}"), cpu


MAX_POWER_CYCLES = 3


def run_vm(
    spec: VmSpec,
    on_line: Callable[[str], None] | None = None,
    *,
    detector: type[_ResetStall] = _ResetStall,
) -> VmRun:
    """Boot `spec` until the guest powers off, it boots more than `max_boots` times, or the timeout.

    `on_line` gets every serial line (ANSI-stripped) while the VM runs. A QEMU that locks up after a
    guest reset is started again on the same disks and NVRAM, at most MAX_POWER_CYCLES times
    (`detector`, a _ResetStall; a parameter so that a test can stand in for a lock-up without patching
    the class that other VMs of the same pytest process use); the serial log goes on in the same file.
    """
    spec.workdir.mkdir(parents=True, exist_ok=True)
    vars_fd = spec.vars_file if spec.vars_file is not None else fresh_vars(spec.workdir / "OVMF_VARS.fd")
    serial_path = spec.workdir / "serial.raw"
    # unix socket paths are limited to 108 bytes: keep it out of the (long) work directory.
    sockdir = Path(tempfile.mkdtemp(prefix="bgvm-qmp-"))
    argv = qemu_argv(spec, vars_fd, sockdir / "qmp.sock")
    tail = SerialTail(serial_path, on_line) if on_line else None
    events: list[QmpEvent] = []
    cpu_total, cycles, mode = 0.0, 0, "wb"
    with VM_SLOTS:
        started = time.monotonic()
        while True:
            with open(serial_path, mode) as serial, open(spec.workdir / "qemu.stderr", mode) as err:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=serial, stderr=err)
            qmp = _connect_qmp(sockdir / "qmp.sock", started)
            try:
                stopped, cpu = _supervise(
                    proc, spec, qmp, tail, started=started, cpu_before=cpu_total, detector=detector
                )
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if qmp is not None:
                    qmp.close()
                    events += qmp.snapshot()
            cpu_total += cpu
            if stopped != "stalled" or cycles >= MAX_POWER_CYCLES:
                break
            cycles += 1
            events.append(QmpEvent("HARNESS-POWER-CYCLE", {"cycle": cycles}, time.monotonic() - started))
            mode = "ab"
        if tail is not None:
            tail.poll(final=True)
        shutil.rmtree(sockdir, ignore_errors=True)
        seconds = time.monotonic() - started
    serial_text = strip_ansi(serial_path.read_bytes().decode("utf-8", "replace"))
    (spec.workdir / "serial.log").write_text(serial_text)
    return VmRun(
        returncode=proc.returncode,
        stopped=stopped,
        seconds=seconds,
        cpu=cpu_total,
        serial=serial_text,
        events=events,
        argv=argv,
    )


def probe_accel(workdir: Path, timeout: float = 25.0) -> str:
    """`kvm` if OVMF really boots under KVM here (reaches its boot manager), else `tcg`."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    workdir.mkdir(parents=True, exist_ok=True)
    vars_fd = fresh_vars(workdir / "probe_VARS.fd")
    argv = [
        QEMU, "-accel", "kvm", "-machine", "q35", "-m", "256", "-smp", "1", "-nodefaults",
        "-display", "none", "-serial", "stdio",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
    ]  # fmt: skip
    out_path, err_path = workdir / "probe.serial", workdir / "probe.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    verdict = "tcg"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if "KVM internal error" in err_path.read_text(errors="replace"):
                break
            # OVMF's boot manager prints "BdsDxe: …" once the firmware has come up.
            if "BdsDxe" in strip_ansi(out_path.read_text(errors="replace")):
                verdict = "kvm"
                break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    return verdict
