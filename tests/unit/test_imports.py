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
        # as initrd/bootguard-initrd runs it (`-m` would add runpy and importlib.util's imports)
        "-c",
        "from bootguard.cli.main import entry; entry()",
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
        # ...and without enum and what it pulls in (issue 13: half a bare interpreter's start)
        assert not top & {"enum", "functools", "collections", "operator", "reprlib", "types"}


def _static_imports(path: Path) -> set[str]:
    """bootguard modules `path` imports at run time (not under TYPE_CHECKING)."""
    import ast

    tree = ast.parse(path.read_text())
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            hidden |= {id(n) for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bootguard"):
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("bootguard")}
    return out


def test_services_and_gitops_are_peers() -> None:
    """Neither the boot core nor the early-boot step imports gitops (status sits above both)."""
    for package in ("services", "earlyboot", "model", "seams"):
        for path in (ROOT / "bootguard" / package).glob("*.py"):
            assert not {m for m in _static_imports(path) if m.startswith("bootguard.gitops")}, path


def test_lower_layers_do_not_import_upper_ones() -> None:
    """model and seams never import services, earlyboot, cli, status or demo; nothing below the CLI
    imports the CLI except to print (cli.output) — and the demo, which drives the CLI."""
    upper = (
        "bootguard.services",
        "bootguard.earlyboot",
        "bootguard.cli",
        "bootguard.status",
        "bootguard.demo",
    )
    for package in ("model", "seams"):
        for path in (ROOT / "bootguard" / package).glob("*.py"):
            bad = {m for m in _static_imports(path) if m.startswith(upper)}
            assert not bad, (path, bad)
    for path in [
        *(ROOT / "bootguard" / "services").glob("*.py"),
        *(ROOT / "bootguard" / "earlyboot").glob("*.py"),
    ]:
        bad = {m for m in _static_imports(path) if m.startswith(("bootguard.status", "bootguard.demo"))}
        bad |= {
            m for m in _static_imports(path) if m.startswith("bootguard.cli") and m != "bootguard.cli.output"
        }
        assert not bad, (path, bad)
