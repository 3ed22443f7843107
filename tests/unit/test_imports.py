"""The early-boot path imports only the standard library (and bootguard itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported(args: list[str], tmp_path: Path) -> set[str]:
    for d in ("esp/loader/entries", "efivars", "state", "sysfs", "pstore"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    (tmp_path / "esp/loader/entries/a+2-1.conf").write_text("title a\nlinux /k\n")
    argv = [
        sys.executable,
        "-s",
        "-S",
        "-X",
        "importtime",
        "-m",
        "bootguard",
        "--esp",
        str(tmp_path / "esp"),
        "--efivars",
        str(tmp_path / "efivars"),
        "--state-dir",
        str(tmp_path / "state"),
        *args,
    ]
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "imported package" not in line
    }


@pytest.mark.parametrize(
    "args",
    [
        ["initrd", "--dry-run", "--watchdog-sysfs", "SYSFS", "--pstore", "PSTORE"],
        ["list", "--json"],
        ["status", "--json"],
    ],
)
def test_early_boot_commands_import_only_stdlib(args: list[str], tmp_path: Path) -> None:
    """initrd, list and status never import attrs, pyudev, sdnotify or any other third-party module."""
    args = [
        a.replace("SYSFS", str(tmp_path / "sysfs")).replace("PSTORE", str(tmp_path / "pstore")) for a in args
    ]
    top = _imported(args, tmp_path)
    foreign = {m for m in top if m not in sys.stdlib_module_names and m != "bootguard"}
    assert foreign == set()
    assert "bootguard" in top
    assert not top & {"dataclasses", "typing", "inspect", "asyncio", "attr", "attrs"}
    if args[0] == "initrd":  # the boot-time path does without argparse (and gettext, locale, shutil)
        assert not top & {"argparse", "gettext", "shutil"}
