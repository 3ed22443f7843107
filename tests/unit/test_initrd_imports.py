"""What the early-boot step does not import: its wall-time budget is issue 5's ≤ 1.5× a bare python3.

Nor does the initramfs need to carry them: `bootguard initrd-files` lists what these runs import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each costs milliseconds at boot and none is needed there (pathlib: the state store and efivarfs work
# on path strings; importlib: the CLI loads the command with __import__; shutil, with bz2 and lzma and
# their libraries behind it: pstore records are copied by the file seam).
AVOIDED = {"pathlib", "importlib", "argparse", "urllib", "json", "re", "shutil", "fnmatch", "bz2", "lzma"}


def _writing_run(tmp_path: Path, *extra: str) -> tuple[set[str], str]:
    """A real, writing `bootguard initrd` (as the initrd wrapper starts it), with a panic record in
    pstore to archive: the top-level modules it loaded and its standard output."""
    for d in ("esp/loader/entries", "efivars", "sysfs", "pstore"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    (tmp_path / "esp/loader/entries/a+2-1.conf").write_text("title a\nlinux /k\n")
    (tmp_path / "pstore/dmesg-efi-1").write_text("Kernel panic - not syncing: sysrq triggered crash\n")
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from bootguard.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    argv = [
        sys.executable,
        "-I",
        "-S",
        "-c",
        code,
        "--esp",
        str(tmp_path / "esp"),
        "--efivars",
        str(tmp_path / "efivars"),
        "--state-dir",
        str(tmp_path / "state"),
        "initrd",
        "--boot-id",
        "b1",
        "--watchdog-sysfs",
        str(tmp_path / "sysfs"),
        "--pstore",
        str(tmp_path / "pstore"),
        *extra,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES "))
    return {name.split(".")[0] for name in line.split()[1:]}, done.stdout


def test_writing_initrd_run_avoids_costly_modules(tmp_path: Path) -> None:
    """A real, writing `bootguard initrd` that archives a pstore record imports none of AVOIDED."""
    loaded, _ = _writing_run(tmp_path)
    assert (tmp_path / "state/events.jsonl").exists()  # it did write: this is the boot-time path
    assert list((tmp_path / "pstore").iterdir()) == []  # and archived the record
    assert loaded & AVOIDED == set()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only state directory")
def test_spooling_run_avoids_costly_modules(tmp_path: Path) -> None:
    """With the state directory read-only (before the root is remounted) the decision is spooled to
    /run, and that path imports none of AVOIDED either (it once needed pathlib)."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,mode=0700,size=1m", "tmpfs", str(state)], check=True)
    try:
        loaded, out = _writing_run(tmp_path, "--spool-dir", str(tmp_path / "spool"))
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)
    assert (tmp_path / "spool/decision.json").exists(), out
    assert loaded & AVOIDED == set()
