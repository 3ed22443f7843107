"""A scenario: BLS entries whose options say what each boot does, a loader.conf, control scripts → a result.

Each generation is one entry file; its `options` line carries `bootguard.test=ACTION` (ok, reboot, panic,
hang, or a scenario script `action-ACTION.sh` on the state disk). `boot-N.sh` on the state disk overrides
the N-th boot of the scenario whatever entry booted (used for one-time setup such as writing an EFI
variable). One QEMU process runs the whole scenario; the result holds the boots as parsed from the serial
log, the QMP events, the ESP's entry file names and bootguard's state directory as read back on the host.

A scenario may instead run several `Phase`s: one QEMU process each, one after another on the same disks
and the same OVMF variable store (e.g. a setup run, then the ESP write-protected; or runs cut short by a
SIGKILL). The state disk is read back after every phase; boots are numbered across phases.

A scenario with `grub=GrubMenu(...)` boots real GRUB instead (harness/grub.py; the test's `loader` is
"grub"): menu entries made with `grub_entry()` carry `bootguard.test=ACTION bootguard.entry=ID`, and the
ESP has /grub/grub.cfg and /grub/grubenv instead of loader/.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import site
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bootguard.seams.proc import run
from tests.vm.harness import disk, qemu, serial
from tests.vm.harness.cache import CHECKOUT
from tests.vm.harness.grub import GRUB, GRUB_CFG, GRUBENV, GrubEntry, GrubMenu
from tests.vm.harness.initramfs import initramfs
from tests.vm.harness.packages import Kernel, LoaderBinary
from tests.vm.harness.qmp import QmpEvent

BASE_OPTIONS = "console=ttyS0,115200 panic=1 loglevel=4"
STATE_DIR_IN_GUEST = "/mnt/state/bootguard"  # as the chroot sees the state disk; /state/bootguard outside


def options(action: str, extra: str = "") -> str:
    """A kernel command line whose boot performs `action`."""
    return f"{BASE_OPTIONS} bootguard.test={action}" + (f" {extra}" if extra else "")


def entry(
    filename: str,
    action: str,
    *,
    title: str | None = None,
    sort_key: str | None = None,
    version: str | None = None,
    extra_options: str = "",
) -> disk.BlsEntry:
    """A BLS entry booting the harness kernel with `action`."""
    return disk.BlsEntry(
        filename=filename,
        title=title or filename.removesuffix(".conf"),
        options=options(action, extra_options),
        sort_key=sort_key,
        version=version,
    )


def grub_entry(entry_id: str, action: str, *, title: str | None = None, extra_options: str = "") -> GrubEntry:
    """A GRUB menu entry `entry_id` booting the harness kernel with `action` (+ `bootguard.entry=ID`)."""
    return GrubEntry(id=entry_id, title=title or entry_id, options=options(action, extra_options))


def efivar_hex(value: str, attrs: int = 0x7) -> str:
    """efivarfs bytes of a UTF-16LE string variable (attributes + string + NUL), as hex for `efiwrite`."""
    return (attrs.to_bytes(4, "little") + (value + "\0").encode("utf-16-le")).hex()


def set_loader_var_then_reboot(name: str, value: str) -> str:
    """A `boot-N.sh` body: write a non-volatile loader variable from the guest, then reboot."""
    return f"efiwrite {name} {efivar_hex(value)}\ndo_reboot\n"


@dataclass(frozen=True)
class Phase:
    """One QEMU process of a scenario: how the boot disk is attached and whether the host cuts it short."""

    esp_readonly: bool = False
    kill_after: qemu.KillAfter | None = None


@dataclass(frozen=True)
class Scenario:
    """Everything a scenario boots with. `name` is unique per test; the loader is chosen at run time.

    systemd-boot scenarios give `entries` and `loader_conf`; GRUB scenarios give `grub` instead (and run
    only with the loader "grub").
    """

    name: str
    entries: tuple[disk.BlsEntry, ...] = ()
    loader_conf: str = ""
    control: dict[str, str] = field(default_factory=dict)  # state-disk files: boot-N.sh, action-NAME.sh
    max_boots: int = 6  # the guest powers off on boot max_boots + 1 (a loop is visible, not endless)
    timeout: float = 240.0
    watchdog_heartbeat: int = 5
    needs_host_root: bool = True
    phases: tuple[Phase, ...] = (Phase(),)  # several: one QEMU process each, same disks (timeout each)
    initrd: Callable[[Kernel], Path] | None = None  # another initramfs than the harness's busybox one
    grub: GrubMenu | None = None  # boot real GRUB with this grub.cfg + grubenv instead of systemd-boot


@dataclass
class ScenarioResult:
    """What a scenario run produced; tests assert on it."""

    scenario: Scenario
    loader: LoaderBinary
    accel: str
    workdir: Path
    run: qemu.VmRun
    boots: list[serial.Boot]
    esp_entries: list[str]
    esp_texts: dict[str, str]  # /loader/loader.conf and /loader/entries/* (GRUB: /grub/*) at the end
    state: Path
    seconds: float
    runs: list[qemu.VmRun] = field(default_factory=list)  # one per phase (`run` combines them)
    phase_states: list[Path] = field(default_factory=list)  # the state disk after each phase (if several)

    @property
    def selected(self) -> list[str]:
        """LoaderEntrySelected of each boot, in order."""
        return [b.selected for b in self.boots]

    @property
    def entry_files(self) -> list[str]:
        """The entry file each boot ran from (after systemd-boot's rename)."""
        return [b.entry_file for b in self.boots]

    @property
    def cmdline_entries(self) -> list[str | None]:
        """`bootguard.entry=` of each boot's kernel command line (GRUB entry ids; None on systemd-boot)."""
        return [b.cmdline_entry for b in self.boots]

    def grubenv_at_end(self) -> dict[str, str]:
        """/grub/grubenv on the ESP after the run, read on the host (GRUB scenarios)."""
        return serial.parse_grubenv(self.esp_texts.get(GRUBENV, ""))

    def events_named(self, name: str) -> list[QmpEvent]:
        return [e for e in self.run.events if e.name == name]

    def state_file(self, rel: str) -> Path:
        return self.state / rel

    def bootguard_events(self) -> list[dict[str, object]]:
        """bootguard's event log (events.jsonl in its state directory on the state disk), oldest first."""
        path = self.state / "bootguard" / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def bg_results(self, command: str) -> list[int]:
        """Exit statuses of every `bootguard COMMAND …` the guest ran, in order."""
        return [rc for b in self.boots for rc, cmd in b.bg_results if cmd.split()[:1] == [command]]

    def describe(self) -> str:
        """A multi-line account for assertion messages: one line per boot."""
        lines = [
            f"{self.scenario.name} on {self.loader.loader_info} ({self.accel}): {len(self.boots)} boots, "
            f"stopped={self.run.stopped}, {self.seconds:.0f} s ({self.run.cpu:.0f} s CPU), "
            f"workdir {self.workdir}"
        ]
        for b in self.boots:
            lines.append(
                f"  boot {b.n}: selected={b.selected} countpath={b.countpath} entry={b.cmdline_entry} "
                f"action={b.action} "
                f"outcome={b.outcome or '?'} bootstatus={b.bootstatus} pstore={b.pstore_files} "
                f"bg={b.bg_results} errors={b.errors}"
                + (f" grubenv={b.grubenv}" if b.grubenv_bytes is not None else "")
            )
        lines.append(f"  ESP entries at the end: {self.esp_entries}")
        lines.append(
            f"  QMP: {[(e.name, round(e.at, 1)) for e in self.run.events if e.name != 'RTC_CHANGE']}"
        )
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario.name,
            "loader": self.loader.version,
            "loader_info": self.loader.loader_info,
            "accel": self.accel,
            "stopped": self.run.stopped,
            "seconds": round(self.seconds, 1),
            "qemu_cpu_seconds": round(self.run.cpu, 1),
            "boots": [
                {
                    "n": b.n,
                    "selected": b.selected,
                    "countpath": b.countpath,
                    "cmdline_entry": b.cmdline_entry,
                    "grubenv": b.grubenv,
                    "action": b.action,
                    "outcome": b.outcome,
                    "bootstatus": b.bootstatus,
                    "bg": b.bg_results,
                    "uptime_at_init": b.uptime,
                }
                for b in self.boots
            ],
            "esp_entries": self.esp_entries,
            "qmp": [e.to_json() for e in self.run.events if e.name != "RTC_CHANGE"],
            "phases": [
                {"stopped": r.stopped, "seconds": round(r.seconds, 1), "qemu_cpu_seconds": round(r.cpu, 1)}
                for r in self.runs
            ],
        }


@functools.cache
def python_extra_path() -> str:
    """PYTHONPATH for the guest's Debian python3 to find the checkout's userland dependencies (attrs …).

    The site-packages of the interpreter running the tests, when it is the same X.Y as /usr/bin/python3
    (pure-Python packages and cp3X extension modules then load in both); empty otherwise.
    """
    debian = run(["/usr/bin/python3", "-c", "import sys; print(*sys.version_info[:2])"]).stdout.split()
    if debian != [str(sys.version_info[0]), str(sys.version_info[1])]:
        return ""
    return ":".join(p for p in site.getsitepackages() if os.path.isdir(p) and not p.startswith("/usr/"))


def control_files(scn: Scenario) -> dict[str, str | bytes]:
    env = (
        f"CHECKOUT={CHECKOUT}\n"
        f"MAX_BOOTS={scn.max_boots}\n"
        f"WDT_HEARTBEAT={scn.watchdog_heartbeat}\n"
        f"STATE_DIR={STATE_DIR_IN_GUEST}\n"
        f"PYEXTRA={python_extra_path()}\n"
    )
    files: dict[str, str | bytes] = {"control/env": env}
    files.update({f"control/{name}": body for name, body in scn.control.items()})
    return files


def _esp_texts(boot_disk: Path, grub: bool) -> dict[str, str]:
    if grub:
        return {name: disk.esp_read(boot_disk, name) for name in (GRUB_CFG, GRUBENV)}
    texts = {"/loader/loader.conf": disk.esp_read(boot_disk, "/loader/loader.conf")}
    for name in disk.esp_listing(boot_disk):
        texts[f"/loader/entries/{name}"] = disk.esp_read(boot_disk, f"/loader/entries/{name}")
    return texts


def run_scenario(
    scn: Scenario,
    loader: LoaderBinary,
    kernel: Kernel,
    accel: str,
    workdir: Path,
    *,
    on_line: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """Build the disks for `scn` with `loader`, boot it in one QEMU process, and read everything back.

    `on_line` gets every serial line while the VM runs (for live narration).
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    started = time.monotonic()
    esp = _esp_layout(scn, loader, kernel)
    boot_disk, state_disk = workdir / "disk.img", workdir / "state.img"
    disk.build_boot_disk(boot_disk, esp)
    disk.build_state_disk(state_disk, control_files(scn))
    base = qemu.VmSpec(
        workdir=workdir,
        boot_disk=boot_disk,
        state_disk=state_disk,
        accel=accel,
        timeout=scn.timeout,
        max_boots=scn.max_boots + 2,
        share_host_root=scn.needs_host_root,
    )
    runs, phase_states = _run_phases(scn, base, on_line)
    vm = combine_runs(runs)
    if len(runs) > 1:
        (workdir / "serial.log").write_text(vm.serial)
    boots = serial.parse_boots(vm.serial)
    result = ScenarioResult(
        scenario=scn,
        loader=loader,
        accel=accel,
        workdir=workdir,
        run=vm,
        boots=boots,
        esp_entries=[] if scn.grub else disk.esp_listing(boot_disk),
        esp_texts=_esp_texts(boot_disk, grub=scn.grub is not None),
        state=disk.read_state_disk(state_disk, workdir / "state"),
        seconds=time.monotonic() - started,
        runs=runs,
        phase_states=phase_states,
    )
    (workdir / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if os.environ.get("BOOTGUARD_VM_KEEP_DISKS") != "1":
        for img in (boot_disk, state_disk, workdir / "OVMF_VARS.fd"):
            img.unlink(missing_ok=True)
    return result


def _esp_layout(scn: Scenario, loader: LoaderBinary, kernel: Kernel) -> disk.EspLayout:
    """systemd-boot's ESP (loader/), or GRUB's (grub/grub.cfg + grub/grubenv) for a `grub` scenario."""
    if (scn.grub is not None) != (loader.major == GRUB):
        raise ValueError(
            f"scenario {scn.name}: grub={'set' if scn.grub else 'unset'} but loader {loader.major}; "
            "GRUB scenarios run with loader 'grub' only, systemd-boot ones never"
        )
    initrd = (scn.initrd or initramfs)(kernel)
    if scn.grub is not None:
        return disk.EspLayout(
            loader_efi=loader.efi,
            kernel=kernel.vmlinuz,
            initrd=initrd,
            loader_conf=None,
            entries=(),
            extra_files=scn.grub.esp_files(),
        )
    return disk.EspLayout(
        loader_efi=loader.efi,
        kernel=kernel.vmlinuz,
        initrd=initrd,
        loader_conf=scn.loader_conf,
        entries=scn.entries,
    )


def _run_phases(
    scn: Scenario, base: qemu.VmSpec, on_line: Callable[[str], None] | None
) -> tuple[list[qemu.VmRun], list[Path]]:
    """Run each phase of `scn` in its own QEMU process; stop early when one neither powered off nor was
    killed on purpose (a timeout or boot loop: later phases would assert on a broken start)."""
    if len(scn.phases) == 1:  # the usual case: logs in the work directory itself, as always
        phase = scn.phases[0]
        spec = replace(base, esp_readonly=phase.esp_readonly, kill_after=phase.kill_after)
        return [qemu.run_vm(spec, on_line)], []
    vars_file = qemu.fresh_vars(base.workdir / "OVMF_VARS.fd")  # shared: loader variables persist
    runs: list[qemu.VmRun] = []
    states: list[Path] = []
    for i, phase in enumerate(scn.phases, 1):
        phase_dir = base.workdir / f"phase-{i}"
        spec = replace(
            base,
            workdir=phase_dir,
            vars_file=vars_file,
            esp_readonly=phase.esp_readonly,
            kill_after=phase.kill_after,
        )
        done = qemu.run_vm(spec, on_line)
        runs.append(done)
        states.append(disk.read_state_disk(base.state_disk, phase_dir / "state"))
        if done.stopped not in ("poweroff", "killed"):
            break
    return runs, states


def combine_runs(runs: list[qemu.VmRun]) -> qemu.VmRun:
    """One VmRun for a scenario's phases: serial logs joined, QMP times shifted onto one clock, the last
    phase's exit status and reason for stopping."""
    if len(runs) == 1:
        return runs[0]
    serial_text, offset = "", 0.0
    events: list[QmpEvent] = []
    for part in runs:
        serial_text += part.serial if part.serial.endswith("\n") or not part.serial else part.serial + "\n"
        events += [replace(e, at=e.at + offset) for e in part.events]
        offset += part.seconds
    last = runs[-1]
    return qemu.VmRun(
        returncode=last.returncode,
        stopped=last.stopped,
        seconds=sum(r.seconds for r in runs),
        cpu=sum(r.cpu for r in runs),
        serial=serial_text,
        events=events,
        argv=last.argv,
    )
