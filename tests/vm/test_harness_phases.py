"""The harness additions for multi-phase scenarios, power cuts, write-protected ESPs and the packaged
initramfs, without booting anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.vm import test_early_boot_vm as early
from tests.vm.harness import packaged
from tests.vm.harness.initramfs import Cpio
from tests.vm.harness.qemu import KillAfter, VmRun, VmSpec, _PowerCut, qemu_argv
from tests.vm.harness.qmp import QmpEvent
from tests.vm.harness.scenario import combine_runs


def _spec(tmp_path: Path, **kw: object) -> VmSpec:
    disks = {"boot_disk": tmp_path / "b.img", "state_disk": tmp_path / "s.img"}
    return VmSpec(workdir=tmp_path, **disks, **kw)  # type: ignore[arg-type]


def _drives(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]


def test_esp_readonly_write_protects_the_boot_disk_only(tmp_path: Path) -> None:
    """`esp_readonly` attaches the ESP disk with readonly=on and leaves the state disk writable."""
    plain = _drives(qemu_argv(_spec(tmp_path), tmp_path / "v.fd", tmp_path / "q.sock"))
    ro = _drives(qemu_argv(_spec(tmp_path, esp_readonly=True), tmp_path / "v.fd", tmp_path / "q.sock"))
    assert [d for d in ro if d not in plain] == [
        f"if=none,id=esp,format=raw,file={tmp_path / 'b.img'},readonly=on"
    ]
    assert any("id=state" in d and not d.endswith(",readonly=on") for d in ro)


def test_power_cut_waits_for_the_marker_then_the_cpu_delay(tmp_path: Path) -> None:
    """A cut is due only once the marker is on the serial line and QEMU spent the delay in CPU after it."""
    serial_path = tmp_path / "serial.raw"
    cut = _PowerCut(KillAfter("BGVM-PC-WROTE run=1 i=1 ", 0.5), serial_path, wall_factor=3.0)
    assert not cut.due(10.0)  # no serial file yet
    serial_path.write_bytes(b"BGVM-PC-WROTE run=1 i=10 rc=0\nBGVM-PC-WR")
    assert not cut.due(10.0)  # i=10 is not i=1
    with open(serial_path, "ab") as f:
        f.write(b"OTE run=1 i=1 rc=0\n")  # the marker arrives split across two polls
    assert not cut.due(11.0)  # marker seen now, at 11 CPU s
    assert not cut.due(11.4)
    assert cut.due(11.5)


def test_power_cut_without_delay_is_due_when_the_marker_arrives(tmp_path: Path) -> None:
    """A zero delay cuts at the first poll that sees the marker (a cut at the start of a write)."""
    serial_path = tmp_path / "serial.raw"
    serial_path.write_bytes(b"BGVM-PC-COMMIT run=2 i=8 k=0 \n")
    assert _PowerCut(KillAfter("BGVM-PC-COMMIT run=2 i=8 ", 0.0), serial_path, 3.0).due(5.0)


def test_combine_runs_joins_serial_and_puts_qmp_on_one_clock() -> None:
    """Phases combine into one run: serial logs joined line-wise, QMP times shifted, the last exit kept."""
    first = VmRun(None, "killed", 10.0, 4.0, "BGVM-BOOT n=1", [QmpEvent("RESET", {}, 2.0)])
    second = VmRun(0, "poweroff", 5.0, 3.0, "BGVM-BOOT n=2\n", [QmpEvent("SHUTDOWN", {}, 4.0)])
    both = combine_runs([first, second])
    assert both.serial == "BGVM-BOOT n=1\nBGVM-BOOT n=2\n"
    assert [(e.name, e.at) for e in both.events] == [("RESET", 2.0), ("SHUTDOWN", 14.0)]
    assert (both.stopped, both.returncode, both.seconds, both.cpu) == ("poweroff", 0, 15.0, 7.0)
    assert combine_runs([first]) is first


def test_power_cut_plans_name_one_marker_per_boot() -> None:
    """Each loader's s6 plan cuts boots 1..N at their own markers and ends with one clean boot."""
    for major in early.S6_LOADERS:
        phases = early.power_cut(major).phases
        markers = [p.kill_after.marker for p in phases[:-1] if p.kill_after is not None]
        assert [m.split("run=")[1].split()[0] for m in markers] == [str(n) for n in range(1, len(phases))]
        assert phases[-1].kill_after is None


@pytest.mark.integration
def test_overlay_archive_has_parents_modes_and_mtimes(tmp_path: Path) -> None:
    """The packaged overlay holds each listed file at its destination with its mode and mtime, every
    parent directory, and the wrapper as an executable; GNU cpio reads it."""
    src = tmp_path / "lib.so"
    src.write_bytes(b"\x7fELF")
    src.chmod(0o755)
    os.utime(src, (1_700_000_000, 1_700_000_000))
    files = [packaged.Listed(str(src), "/usr/lib/x86_64-linux-gnu/lib.so")]
    archive = tmp_path / "o.cpio"
    archive.write_bytes(packaged.overlay_archive(files))
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet", "-F", str(archive)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    names = [line.split()[-1] for line in listing]
    assert names == [
        "usr",
        "usr/lib",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu/lib.so",
        "usr/lib/bootguard",
        "usr/lib/bootguard/bootguard-initrd",
    ]
    assert listing[3].startswith("-rwxr-xr-x") and "2023" in listing[3]
    assert listing[5].startswith("-rwxr-xr-x")


def test_cpio_file_records_its_mtime() -> None:
    """A file entry carries the given mtime in its newc header (Python checks .pyc against it)."""
    cpio = Cpio()
    cpio.file("a.py", b"x", mtime=0x12345678)
    header = cpio.finish()[:110]
    assert header[6 + 5 * 8 : 6 + 6 * 8] == b"12345678"


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck")
def test_guest_scripts_are_shellcheck_clean(tmp_path: Path) -> None:
    """The scenario scripts of test_early_boot_vm pass shellcheck as POSIX sh (busybox ash sources them;
    `say`, `bg`, `efihex`, BOOT_N… come from the guest init)."""
    scripts = {
        "s4-fails": early.INITRD_FAILS,
        "s4-golden": early.GOLDEN_RECORDS,
        "s8-stage": early.STAGE_THEN_POWER_OFF,
        "s8-ro": early.ON_READONLY_ESP,
        "s6": early.power_cut("252").control["action-powercut.sh"],
        "packaged": early.PACKAGED,
    }
    for name, body in scripts.items():
        (tmp_path / f"{name}.sh").write_text("#!/bin/sh\n" + body)
    done = subprocess.run(
        ["shellcheck", "-s", "sh", "-e", "SC2154", *sorted(str(p) for p in tmp_path.glob("*.sh"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
