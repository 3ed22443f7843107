"""`bootguard demo`: the whole lifecycle in a sandbox directory, with bootguard's model of systemd-boot.

No VM and no root needed: an ESP tree, an efivarfs-format directory and a state directory under a
temporary folder. Between simulated boots bootguard's real commands run on that tree. `make demo`
shows the same story on real firmware and the real loader (tests/vm/demo.py).
"""

from __future__ import annotations

import os
import tempfile
import uuid

from bootguard.demo.simloader import SimulatedLoader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ENTRY = (
    "title NixOS (Generation {n})\nversion Generation {n}\nlinux /EFI/nixos/kernel-{n}.efi\n"
    "initrd /EFI/nixos/initrd-{n}.efi\noptions init=/nix/var/nix/profiles/system-{n}-link/init panic=10\n"
)


class Demo:
    def __init__(self, root: str, info: str, say: Callable[[str], None]) -> None:
        self.root, self.say = root, say
        self.esp, self.efivars, self.state = (os.path.join(root, d) for d in ("esp", "efivars", "state"))
        os.makedirs(os.path.join(self.esp, "loader", "entries"))
        self.loader = SimulatedLoader(self.esp, self.efivars, info)
        self.sysfs = os.path.join(root, "sysfs")
        self._bootstatus(0)

    def _bootstatus(self, value: int) -> None:
        """The emulated i6300esb's sysfs: bootstatus 32 (CARDRESET) after a watchdog reset."""
        wd = os.path.join(self.sysfs, "watchdog0")
        os.makedirs(wd, exist_ok=True)
        for name, text in (
            ("identity", "i6300ESB timer"),
            ("bootstatus", str(value)),
            ("timeout", "30"),
            ("state", "inactive"),
            ("nowayout", "0"),
            ("status", "0x0"),
        ):
            with open(os.path.join(wd, name), "w", encoding="ascii") as f:
                f.write(text + "\n")

    def cli(self, *args: str) -> int:
        from bootguard.cli.main import main

        self.say(f"$ bootguard {' '.join(args)}")
        return main(["--esp", self.esp, "--efivars", self.efivars, "--state-dir", self.state, *args])

    def generation(self, n: int) -> None:
        images = os.path.join(self.esp, "EFI", "nixos")
        os.makedirs(images, exist_ok=True)
        for kind in ("kernel", "initrd"):
            with open(os.path.join(images, f"{kind}-{n}.efi"), "wb") as f:
                f.write(f"{kind} of generation {n}".encode())
        path = os.path.join(self.esp, "loader", "entries", f"nixos-generation-{n}.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(ENTRY.format(n=n))
        with open(os.path.join(self.esp, "loader", "loader.conf"), "w", encoding="utf-8") as f:
            f.write(f"timeout 0\ndefault nixos-generation-{n}.conf\n")
        self.say(f"-- NixOS installs generation {n} (loader.conf default → nixos-generation-{n}.conf)")

    def boot(self, fate: str) -> None:
        """One boot; fate: panic (before the initrd), hang (watchdog reset), good (validated)."""
        sim = self.loader.boot()
        chosen = sim.selection.entry.filename if sim.selection.entry else "nothing"
        self.say(f"== boot: systemd-boot picks {chosen} — {sim.selection.detail}")
        if sim.renamed_from:
            self.say(
                f"   counter: {os.path.basename(sim.renamed_from)} → {os.path.basename(sim.renamed_to or '')}"
            )
        if fate == "panic":
            self.say(
                "   the kernel panics before the initrd: bootguard never runs, the loader already counted it"
            )
            return
        self.cli("initrd", "--boot-id", str(uuid.uuid4()), "--watchdog-sysfs", self.sysfs)
        self._bootstatus(0)
        if fate == "hang":
            self.say("   the boot hangs; the watchdog bootguard armed resets the machine")
            self._bootstatus(32)
        else:
            self.say("   health checks pass")
            self.cli("mark", "good")

    def run(self) -> int:
        self.generation(1)
        self.boot("good")
        self.cli("pin-golden")
        self.generation(2)
        self.cli("trial", "nixos-generation-2.conf")
        self.boot("panic")
        self.boot("hang")
        self.boot("good")
        self.say("-- the host is back on golden by itself")
        self.generation(3)
        self.cli("trial", "nixos-generation-3.conf")
        self.boot("good")
        self.boot("good")
        return self.cli("status")


def run(directory: str | None, info: str, say: Callable[[str], None]) -> int:
    if directory is not None:
        return Demo(directory, info, say).run()
    with tempfile.TemporaryDirectory(prefix="bootguard-demo-") as tmp:
        return Demo(tmp, info, say).run()
