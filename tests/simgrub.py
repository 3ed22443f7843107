"""A model of a GRUB host for tests: grub.cfg's GRUB_DEFAULT=saved logic over a real grubenv, changed
with GRUB's real `grub-editenv`, and the booted entry's kernel command line in a /proc/cmdline file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bootguard.seams.grubenv import parse

MENU = {"gen-1": "bootguard.entry=gen-1", "gen-2": "bootguard.entry=gen-2", "gen-3": "bootguard.entry=gen-3"}


class SimGrub:
    """grub.cfg as grub-mkconfig writes it for GRUB_DEFAULT=saved: next_entry (cleared with save_env as
    it is used), else saved_entry; the booted entry's kernel command line goes to a /proc/cmdline file."""

    def __init__(self, root: Path) -> None:
        self.env = root / "grubenv"
        self.cmdline = root / "cmdline"
        subprocess.run(["grub-editenv", str(self.env), "create"], check=True)
        subprocess.run(["grub-editenv", str(self.env), "set", "saved_entry=gen-1"], check=True)

    def boot(self) -> str:
        env = parse(self.env.read_bytes(), str(self.env))
        chosen = env.get("next_entry") or env.get("saved_entry") or "gen-1"
        if env.get("next_entry"):
            subprocess.run(["grub-editenv", str(self.env), "unset", "next_entry"], check=True)
        self.cmdline.write_text(f"BOOT_IMAGE=/vmlinuz root=/dev/vda2 ro {MENU[chosen]} quiet\n")
        return chosen
