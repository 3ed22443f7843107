"""The harness's own parts: parsers, the apt source lookup, cpio, the disks, and (one test) a power cycle of a
real QEMU running OVMF alone."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bootguard.errors import NotFoundError
from tests.vm.demo import Narrator
from tests.vm.harness import disk, marks, packages, serial
from tests.vm.harness.initramfs import GUEST_INIT, Cpio
from tests.vm.harness.qemu import SerialTail, _ResetStall, strip_ansi
from tests.vm.harness.qmp import QmpEvent
from tests.vm.harness.scenario import efivar_hex
from tests.vm.harness.suite import Row, VmSuite

GUID = serial.LOADER_GUID

SERIAL_LOG = f"""\
\x1b[2J\x1b[01;01HBdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0)\r
BGVM-BOOT n=1 selected=a+2.conf countpath=\\loader\\entries\\a+1-1.conf info=systemd-boot_252 uptime=4.5
BGVM-VAR n=1 name=LoaderEntryDefault hex={efivar_hex("bootguard-*")}
BGVM-WDT n=1 identity=i6300ESB_timer bootstatus=0 state=inactive timeout=5
BGVM-ESP n=1 entries=a+1-1.conf b.conf
BGVM-PSTORE n=1 files=10
BGVM-ACTION n=1 name=panic
BGVM-PANIC n=1
[    9.1] Kernel panic - not syncing: sysrq triggered crash
BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0)
BGVM-BOOT n=2 selected=b.conf countpath=- info=systemd-boot_252 uptime=4.1
BGVM-WDT n=2 identity=i6300ESB_timer bootstatus=32 state=inactive timeout=5
BGVM-ACTION n=2 name=golden
BGVM-BG rc=0 cmd=initrd --watchdog-timeout 5
BGVM-END n=2 reason=ok
"""


def test_parse_boots_reads_every_marker() -> None:
    """Each BGVM-BOOT starts a boot; variables, watchdog, ESP, action, outcome and bootguard runs follow."""
    boots = serial.parse_boots(strip_ansi(SERIAL_LOG))
    assert [b.n for b in boots] == [1, 2]
    first, second = boots
    assert first.selected == "a+2.conf"
    assert first.entry_file == "a+1-1.conf"
    assert first.variables["LoaderEntryDefault"].text == "bootguard-*"
    assert first.variables["LoaderEntryDefault"].attrs == 7
    assert first.esp_entries == ["a+1-1.conf", "b.conf"]
    assert (first.action, first.outcome, first.bootstatus) == ("panic", "panic", 0)
    assert any("Kernel panic" in line for line in first.lines)
    assert second.countpath is None and second.entry_file == "b.conf"
    assert (second.bootstatus, second.outcome) == (32, "end:ok")
    assert (first.pstore_files, second.pstore_files) == (10, 0)
    assert second.bg_results == [(0, "initrd --watchdog-timeout 5")]
    assert serial.firmware_starts(strip_ansi(SERIAL_LOG)) == 2
    assert serial.kernel_panics(SERIAL_LOG) == 1


def test_strip_ansi_removes_escapes_and_carriage_returns() -> None:
    """OVMF's colour and cursor escapes and CRs do not reach the parsed log."""
    assert strip_ansi("\x1b[0m\x1b[35m\x1b[40mBdsDxe\x1b[?25l: x\r\n") == "BdsDxe: x\n"


def test_efivar_hex_is_attributes_then_utf16_with_nul() -> None:
    """The guest writes attribute word 7 then UTF-16LE text and a NUL, as efivarfs expects."""
    assert efivar_hex("ab") == "07000000" + "6100" + "6200" + "0000"
    var = serial.EfiVar.from_hex(efivar_hex("a\0b", attrs=6))
    assert (var.attrs, var.strings) == (6, ["a", "b"])


def test_host_debian_source_skips_third_party_and_security(tmp_path: Path) -> None:
    """The host's own Debian mirror is found in deb822 files; other vendors' one-line sources are ignored."""
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb https://vendor.example/apt cloud-sdk-bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    source = packages.host_debian_source(tmp_path, codename="bookworm")
    assert source == packages.AptSource("http://mirror.example/debian", packages.DEFAULT_KEYRING)


def test_host_debian_source_reads_one_line_format(tmp_path: Path) -> None:
    """A classic sources.list line with [signed-by=…] is understood too."""
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\n"
    )
    assert packages.host_debian_source(tmp_path, codename="bookworm") == packages.AptSource(
        "http://m.example/debian", "/k.gpg"
    )


def test_host_debian_source_without_a_match_says_what_is_missing(tmp_path: Path) -> None:
    """No Debian source for the host's suite is an error naming the suite."""
    (tmp_path / "sources.list").write_text("deb http://m.example/debian trixie main\n")
    with pytest.raises(NotFoundError, match="bookworm"):
        packages.host_debian_source(tmp_path, codename="bookworm")


def test_embedded_loader_info_reads_the_sdmagic_marker(tmp_path: Path) -> None:
    """The LoaderInfo string is taken from the binary's `#### LoaderInfo: … ####` marker."""
    efi = tmp_path / "x.efi"
    efi.write_bytes(b"MZ\0\0#### LoaderInfo: systemd-boot 257.13-1~deb13u1 ####\0")
    assert packages.embedded_loader_info(efi) == "systemd-boot 257.13-1~deb13u1"
    efi.write_bytes(b"MZ")
    with pytest.raises(NotFoundError):
        packages.embedded_loader_info(efi)


def test_pick_version_takes_the_suite_of_the_major() -> None:
    """The exact version is the one the major's suite carries, not the newest overall."""
    pairs = [("262.1-1", "sid"), ("257.13-1~deb13u1", "trixie"), ("254.26-1~bpo12+1", "bookworm-backports")]
    assert packages._pick_version(pairs, "257") == "257.13-1~deb13u1"
    with pytest.raises(NotFoundError, match="bookworm"):
        packages._pick_version(pairs, "252")


def test_bls_entry_renders_sort_key_and_version_before_the_kernel() -> None:
    """An entry renders title, sort-key, version, linux, initrd, options in that order."""
    entry = disk.BlsEntry("a.conf", "A", "console=ttyS0", sort_key="bootguard-0", version="2")
    assert entry.render() == (
        "title A\nsort-key bootguard-0\nversion 2\n"
        "linux /vmlinuz\ninitrd /initrd.img\noptions console=ttyS0\n"
    )


def test_command_modules_follow_cli_main_naming() -> None:
    """`list` lives in list_.py and `pin-golden` in pin_golden.py, as cli/main.py names them."""
    assert marks.command_module("list") == "bootguard.cli.commands.list_"
    assert marks.command_module("pin-golden") == "bootguard.cli.commands.pin_golden"
    assert marks.missing_commands("no-such-command") == ["no-such-command"]


def test_summary_table_aligns_columns() -> None:
    """The summary table has a header and one aligned row per scenario."""
    suite = VmSuite.__new__(VmSuite)
    suite.rows = {"t1": Row("s2-panic-twice", "252.39-1~deb12u2", "4", "passed", "64")}
    lines = suite.table().splitlines()
    assert lines[0].split() == ["scenario", "loader", "boots", "result", "seconds"]
    assert lines[1].split() == ["s2-panic-twice", "252.39-1~deb12u2", "4", "passed", "64"]
    assert lines[0].index("boots") == lines[1].index("4")


@pytest.mark.integration
def test_cpio_archive_lists_with_the_real_cpio(tmp_path: Path) -> None:
    """The newc writer produces an archive GNU cpio reads, device node included."""
    cpio = Cpio()
    cpio.directory("dev")
    cpio.chardev("dev/console", 5, 1)
    cpio.file("init", b"#!/bin/sh\n", 0o755)
    cpio.symlink("sh", "busybox")
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio.finish())
    listing = subprocess.run(["cpio", "-itv", "-F", str(archive)], capture_output=True, text=True, check=True)
    lines = listing.stdout.splitlines()
    assert [line.split()[-1] if "->" not in line else line.split()[-3] for line in lines] == [
        "dev",
        "dev/console",
        "init",
        "sh",
    ]
    assert lines[1].startswith("crw") and lines[2].startswith("-rwxr-xr-x")


@pytest.mark.integration
def test_boot_disk_round_trip_with_mtools(tmp_path: Path) -> None:
    """A built GPT disk holds the ESP at 1 MiB with the entries, readable back with mtools."""
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * 1000)
    layout = disk.EspLayout(
        loader_efi=blob,
        kernel=blob,
        initrd=blob,
        loader_conf="timeout 0\ndefault bootguard-*\n",
        entries=(disk.BlsEntry("a+2.conf", "A", "quiet"), disk.BlsEntry("b.conf", "B", "quiet")),
    )
    image = tmp_path / "disk.img"
    disk.build_boot_disk(image, layout)
    assert disk.esp_listing(image) == ["a+2.conf", "b.conf"]
    assert disk.esp_read(image, "/loader/loader.conf") == "timeout 0\ndefault bootguard-*\n"
    assert disk.esp_listing(image, "/EFI/BOOT") == ["BOOTX64.EFI"]
    table = subprocess.run(
        ["sfdisk", "--dump", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert "start=        2048" in table and disk.ESP_TYPE_GUID in table


@pytest.mark.integration
def test_state_disk_round_trip_with_e2fsprogs(tmp_path: Path) -> None:
    """Files put on the ext4 state disk come back with their content and execute bits."""
    image = tmp_path / "state.img"
    disk.build_state_disk(image, {"control/env": "A=1\n", "control/boot-1.sh": "finish\n"}, size_mib=8)
    out = disk.read_state_disk(image, tmp_path / "out")
    assert (out / "control" / "env").read_text() == "A=1\n"
    assert (out / "control" / "boot-1.sh").stat().st_mode & 0o111


def test_serial_tail_hands_over_whole_lines_only(tmp_path: Path) -> None:
    """Live narration sees each serial line once, complete and ANSI-stripped, the last one at the end."""
    log = tmp_path / "serial.raw"
    seen: list[str] = []
    tail = SerialTail(log, seen.append)
    tail.poll()
    log.write_bytes(b"\x1b[0mBGVM-BOOT n=1\r\nBGVM-AC")
    tail.poll()
    assert seen == ["BGVM-BOOT n=1"]
    with open(log, "ab") as f:
        f.write(b"TION n=1 name=ok\nlast")
    tail.poll()
    tail.poll(final=True)
    assert seen == ["BGVM-BOOT n=1", "BGVM-ACTION n=1 name=ok", "last"]


def test_demo_narrator_tells_each_boot_when_it_ends() -> None:
    """The demo narrates a boot once its ending marker arrives: entry, counter, bootguard's lines, ending."""
    told: list[str] = []
    narrator = Narrator(told.append)
    for line in strip_ansi(SERIAL_LOG).splitlines():
        narrator.feed(line)
    text = "\n".join(told)
    assert "boot 1" in text and "systemd-boot chose a+2.conf" in text
    assert "counted: renamed to a+1-1.conf — attempt 1, 1 try left" in text
    assert "the kernel panics" in text
    assert "$ bootguard initrd --watchdog-timeout 5   → exit 0" in text
    assert "watchdog bootstatus 32" in text
    assert text.count("\nboot ") == 2 and told[-1].strip() == "→ power off"


@pytest.mark.integration
def test_guest_init_is_shellcheck_clean() -> None:
    """The guest's /init passes shellcheck as POSIX sh (busybox ash runs it)."""
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is missing: install the Debian package shellcheck")
    done = subprocess.run([exe, "-s", "sh", str(GUEST_INIT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


class _FakeQmp:
    """The part of QmpClient that _ResetStall uses: events, note() and command()."""

    def __init__(self) -> None:
        self.events: list[QmpEvent] = []
        self.commands: list[str] = []

    def snapshot(self) -> list[QmpEvent]:
        return list(self.events)

    def reset(self) -> None:
        self.events.append(QmpEvent("RESET", {"guest": True}, 0.0))

    def note(self, name: str, data: dict[str, Any]) -> None:
        self.events.append(QmpEvent(name, data, 0.0))

    def command(self, name: str, **arguments: object) -> dict[str, object]:
        self.commands.append(name)
        return {"return": "RIP=fffffff0" if name == "human-monitor-command" else {}}


def _watched_guest(tmp_path: Path) -> tuple[Path, _FakeQmp, _ResetStall]:
    """A guest that has printed one line, its fake QMP, and the lock-up detector watching both."""
    serial_log, qmp = tmp_path / "serial.raw", _FakeQmp()
    serial_log.write_bytes(b"boot 1\n")
    return serial_log, qmp, _ResetStall(qmp, serial_log)  # type: ignore[arg-type]


def test_a_lock_up_after_a_reset_is_recorded_with_the_cpu_state_and_asks_for_a_power_cycle(
    tmp_path: Path,
) -> None:
    _, qmp, stall = _watched_guest(tmp_path)
    assert not stall.poll(10.0)
    qmp.reset()
    assert not stall.poll(11.0)
    assert not stall.poll(11.0 + _ResetStall.STALL_CPU - 1)  # silent, but not for long enough yet
    assert qmp.events[-1].name == "RESET"
    assert stall.poll(11.0 + _ResetStall.STALL_CPU)
    assert "system_reset" not in qmp.commands  # it would hang QMP on the locked-up QEMU
    assert [e.name for e in qmp.events] == ["RESET", "HARNESS-KICK"]
    diag = qmp.events[-1].data["diag"]
    assert isinstance(diag, dict) and diag["info registers"] == "RIP=fffffff0"


def test_a_quiet_guest_without_a_reset_or_one_that_prints_after_it_is_never_kicked(tmp_path: Path) -> None:
    serial_log, qmp, stall = _watched_guest(tmp_path)
    stall.poll(0.0)
    stall.poll(1000.0)  # a hang in the guest (the watchdog's business), no reset: not the harness's
    qmp.reset()
    stall.poll(1001.0)
    serial_log.write_bytes(b"boot 1\nboot 2\n")  # the kernel printed after the reset
    stall.poll(1002.0)
    stall.poll(5000.0)
    assert qmp.commands == []


def test_a_reset_seen_in_the_same_poll_as_the_kernels_last_line_still_starts_the_quiet_period(
    tmp_path: Path,
) -> None:
    serial_log, qmp, stall = _watched_guest(tmp_path)
    stall.poll(10.0)
    serial_log.write_bytes(b"boot 1\n[   39.5] reboot: Restarting system\r\n")
    qmp.reset()  # both between two polls, as on a real reboot
    assert not stall.poll(11.0)
    assert stall.poll(11.0 + _ResetStall.STALL_CPU)


def test_the_kernels_last_words_without_a_reset_start_the_quiet_period_too(tmp_path: Path) -> None:
    serial_log, _, stall = _watched_guest(tmp_path)
    stall.poll(10.0)
    serial_log.write_bytes(b"boot 1\n[   39.5] reboot: Restarting system\r\n")
    assert not stall.poll(11.0)  # the kernel hung on its way to the reset: QEMU never saw one
    assert not stall.poll(11.0 + _ResetStall.STALL_CPU - 1)
    assert stall.poll(11.0 + _ResetStall.STALL_CPU)


def test_a_qemu_that_locks_up_is_power_cycled_on_the_same_disks_and_the_serial_log_goes_on(
    tmp_path: Path,
) -> None:
    """run_vm on a real QEMU and OVMF (blank disks: the firmware alone), a lock-up made to fire once the
    firmware has printed: a second QEMU starts on the same files and its firmware prints after it."""
    from tests.vm.harness import qemu

    fired: list[int] = []

    class LocksUpOnce(qemu._ResetStall):
        # A stand-in passed to this run only: the scenario VMs of the same process run in other
        # threads and must keep the real detector (a class-wide monkeypatch power-cycled one of them).
        def poll(self, cpu: float) -> bool:
            starts = self.serial_path.read_bytes().count(b"BdsDxe: loading")
            if not fired and starts:
                fired.append(self.serial_path.stat().st_size)
                return True  # the first QEMU "locked up" once its firmware printed
            if fired and starts >= 2:
                self.qmp.command("quit")  # the second QEMU's firmware printed too: done
            return False

    disks = [tmp_path / "boot.img", tmp_path / "state.img"]
    for d in disks:
        d.write_bytes(b"\0" * (1 << 20))
    # Ends when the second QEMU's firmware has printed (quit, exit 0); the timeout is only a backstop
    # (counted in CPU seconds, with a wide wall-clock margin: under `make test` scenario VMs share the cores).
    spec = qemu.VmSpec(tmp_path / "run", disks[0], disks[1], share_host_root=False, timeout=60)
    run = qemu.run_vm(dataclasses.replace(spec, wall_factor=10.0), detector=LocksUpOnce)
    serial = (spec.workdir / "serial.raw").read_bytes()
    assert run.power_cycles == 1 and fired, (run.stopped, run.cpu, run.events, serial)
    assert run.stopped == "poweroff", (run.stopped, run.cpu, run.seconds)
    assert len(serial) > fired[0] and serial.count(b"BdsDxe: loading") >= 2, serial  # appended, not replaced
