"""A distribution-guest scenario: generations (entries + configuration), per-boot init scripts → a result.

A *generation* is what an update installs: a BLS entry whose command line says `bgvm.gen=N`, and that
generation's `/etc/bootguard/checks.toml` and extra systemd units (the init installs them for the booted
generation, as if each generation had its own /etc). Boot N of a scenario runs `/etc/bgvm/boot-N.sh` in
the initramfs when the scenario gives one (e.g. the setup boot that pins golden and stages the trial),
otherwise `bootguard initrd` and systemd. One QEMU process runs the whole scenario; the result holds the
boots parsed from the serial log (the harness's `BGVM-` markers), QMP events, the ESP's entry names
(mtools) and bootguard's state directory read back from the root disk (debugfs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.vm.distro import rootfs
from tests.vm.harness import disk, qemu, serial
from tests.vm.harness.packages import Kernel, LoaderBinary
from tests.vm.harness.qmp import QmpEvent

BASE_OPTIONS = "root=/dev/vdb console=ttyS0,115200 panic=1 loglevel=4 rw"
READ_BACK = ("/var/lib/bootguard", "/var/lib/bgvm", "/etc/bootguard")
_MARKER = re.compile(r"^BGVM-([A-Z-]+) (.*)$")


@dataclass(frozen=True)
class Generation:
    """One installed generation: its number, checks.toml (None: no declared checks), extra units and a
    drop-in for PID 1's system.conf (e.g. `[Manager]` RuntimeWatchdogSec=).

    `units` maps a path relative to /run/systemd/system to a unit file or a `.wants/` symlink.
    """

    number: int
    checks: str | None = None
    units: Mapping[str, str | rootfs.Symlink] = field(default_factory=dict)
    system_conf: str | None = None

    def files(self) -> dict[str, str | bytes | rootfs.Symlink]:
        base = f"/etc/bgvm/gen-{self.number}"
        out: dict[str, str | bytes | rootfs.Symlink] = {}
        if self.checks is not None:
            out[f"{base}/checks.toml"] = self.checks
        if self.system_conf is not None:
            out[f"{base}/system.conf"] = self.system_conf
        out.update({f"{base}/units/{rel}": content for rel, content in self.units.items()})
        return out


def generation_entry(
    filename: str, gen: int, *, sort_key: str = "nixos", extra_options: str = ""
) -> disk.BlsEntry:
    """A BLS entry booting generation `gen` (titled and sorted as NixOS writes them)."""
    options = f"{BASE_OPTIONS} bgvm.gen={gen}" + (f" {extra_options}" if extra_options else "")
    return disk.BlsEntry(
        filename=filename,
        title=f"Generation {gen}",
        options=options,
        sort_key=sort_key,
        version=f"Generation {gen}",
    )


@dataclass(frozen=True)
class DistroScenario:
    """Everything a distribution scenario boots with; the loader is chosen at run time."""

    name: str
    entries: tuple[disk.BlsEntry, ...]
    loader_conf: str
    generations: tuple[Generation, ...]
    boot_scripts: Mapping[int, str] = field(default_factory=dict)  # boot N → initramfs shell snippet
    max_boots: int = 4  # the guest powers off on boot max_boots + 1
    timeout: float = 420.0  # QEMU CPU seconds (3× as wall clock): a systemd boot costs 40–60 s under TCG
    watchdog_heartbeat: int = 30  # i6300esb module default until someone sets a timeout
    initrd_watchdog_timeout: int | None = None  # `bootguard initrd --watchdog-timeout` on default boots

    def files(self) -> dict[str, str | bytes | rootfs.Symlink]:
        env = f"MAX_BOOTS={self.max_boots}\nWDT_HEARTBEAT={self.watchdog_heartbeat}\n"
        if self.initrd_watchdog_timeout is not None:
            env += f"WDT_TIMEOUT={self.initrd_watchdog_timeout}\n"
        out: dict[str, str | bytes | rootfs.Symlink] = {"/etc/bgvm/env": env}
        for gen in self.generations:
            out.update(gen.files())
        out.update({f"/etc/bgvm/boot-{n}.sh": body for n, body in self.boot_scripts.items()})
        return out


@dataclass
class DistroResult:
    """What a distribution scenario produced; tests assert on it."""

    scenario: DistroScenario
    loader: LoaderBinary
    accel: str
    workdir: Path
    run: qemu.VmRun
    boots: list[serial.Boot]
    esp_entries: list[str]
    esp_texts: dict[str, str]
    state: Path  # what READ_BACK copied out of the root disk: state/bootguard, state/bgvm, state/bootguard…
    seconds: float

    @property
    def entry_files(self) -> list[str]:
        """The entry file each boot ran from (after systemd-boot's rename)."""
        return [b.entry_file for b in self.boots]

    @property
    def selected(self) -> list[str]:
        return [b.selected for b in self.boots]

    def events_named(self, name: str) -> list[QmpEvent]:
        return [e for e in self.run.events if e.name == name]

    def bootguard_events(self) -> list[dict[str, object]]:
        """bootguard's event log (/var/lib/bootguard/events.jsonl on the root disk), oldest first."""
        path = self.state / "bootguard" / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def last_validation(self) -> dict[str, object]:
        path = self.state / "bootguard" / "last-validation.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def sys_lines(self, kind: str = "SYS") -> list[dict[str, str]]:
        """`BGVM-<kind>` marker lines as key=value dicts, in order. `SYS…` lines come from bgvm-report.service
        (one per boot that reached boot-complete.target), `HANDOFF` from the init right before switch_root."""
        out = []
        for line in self.run.serial.splitlines():
            match = _MARKER.match(line.strip())
            if match and match.group(1) == kind:
                out.append(dict(re.findall(r"(\S+?)=(\S*)", match.group(2))))
        return out

    def packaged_step(self, boot: int) -> list[str]:
        """What bootguard's packaged early-boot step (its initramfs-tools local-bottom script) printed in
        boot `boot` (1-based): the step's `bootguard-initrd:` report lines, and the script's line when the
        step failed (`bootguard: early-boot step failed; boot continues`)."""
        lines = (line.strip() for line in self.boots[boot - 1].lines)
        return [line for line in lines if line.startswith(("bootguard-initrd:", "bootguard: early-boot"))]

    def bg_results(self, command: str) -> list[int]:
        return [rc for b in self.boots for rc, cmd in b.bg_results if cmd.split()[:1] == [command]]

    def describe(self) -> str:
        lines = [
            f"{self.scenario.name} on {self.loader.loader_info} ({self.accel}): {len(self.boots)} boots, "
            f"stopped={self.run.stopped}, {self.seconds:.0f} s ({self.run.cpu:.0f} s CPU), "
            f"workdir {self.workdir}"
        ]
        for b in self.boots:
            lines.append(
                f"  boot {b.n}: selected={b.selected} countpath={b.countpath} action={b.action} "
                f"outcome={b.outcome or '?'} bootstatus={b.bootstatus} bg={b.bg_results} errors={b.errors}"
            )
        lines.append(f"  completed boots: {self.sys_lines()}")
        lines.append(f"  ESP entries at the end: {self.esp_entries}")
        lines.append(
            f"  QMP: {[(e.name, round(e.at, 1)) for e in self.run.events if e.name != 'RTC_CHANGE']}"
        )
        lines.append(f"  events: {[(e.get('kind'), e.get('cause')) for e in self.bootguard_events()]}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario.name,
            "loader": self.loader.version,
            "accel": self.accel,
            "stopped": self.run.stopped,
            "seconds": round(self.seconds, 1),
            "qemu_cpu_seconds": round(self.run.cpu, 1),
            "boots": [
                {
                    "n": b.n,
                    "selected": b.selected,
                    "countpath": b.countpath,
                    "action": b.action,
                    "outcome": b.outcome,
                    "bootstatus": b.bootstatus,
                    "bg": b.bg_results,
                    "uptime_at_init": b.uptime,
                }
                for b in self.boots
            ],
            "completed": self.sys_lines(),
            "esp_entries": self.esp_entries,
            "qmp": [e.to_json() for e in self.run.events if e.name != "RTC_CHANGE"],
        }


def _esp_texts(boot_disk: Path) -> dict[str, str]:
    texts = {"/loader/loader.conf": disk.esp_read(boot_disk, "/loader/loader.conf")}
    for name in disk.esp_listing(boot_disk):
        texts[f"/loader/entries/{name}"] = disk.esp_read(boot_disk, f"/loader/entries/{name}")
    return texts


def run_distro_scenario(
    scn: DistroScenario, loader: LoaderBinary, kernel: Kernel, accel: str, workdir: Path
) -> DistroResult:
    """Build the ESP and the scenario's root disk, boot them in one QEMU process, read everything back."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    base = rootfs.root_image()
    started = time.monotonic()
    esp = disk.EspLayout(
        loader_efi=loader.efi,
        kernel=kernel.vmlinuz,
        initrd=rootfs.guest_initramfs(base.path),
        loader_conf=scn.loader_conf,
        entries=scn.entries,
    )
    boot_disk, root_disk = workdir / "disk.img", workdir / "root.img"
    disk.build_boot_disk(boot_disk, esp)
    rootfs.scenario_image(base.path, root_disk, scn.files())
    vm = qemu.run_vm(
        qemu.VmSpec(
            workdir=workdir,
            boot_disk=boot_disk,
            state_disk=root_disk,  # /dev/vdb in the guest: the root file system
            accel=accel,
            timeout=scn.timeout,
            max_boots=scn.max_boots + 2,
            share_host_root=False,
        )
    )
    result = DistroResult(
        scenario=scn,
        loader=loader,
        accel=accel,
        workdir=workdir,
        run=vm,
        boots=serial.parse_boots(vm.serial),
        esp_entries=disk.esp_listing(boot_disk),
        esp_texts=_esp_texts(boot_disk),
        state=rootfs.read_back(root_disk, workdir / "state", READ_BACK),
        seconds=time.monotonic() - started,
    )
    (workdir / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if os.environ.get("BOOTGUARD_VM_KEEP_DISKS") != "1":
        for img in (boot_disk, root_disk, workdir / "OVMF_VARS.fd"):
            img.unlink(missing_ok=True)
    return result
