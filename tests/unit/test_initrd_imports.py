"""What the early-boot step does not import: its wall-time budget is issue 5's ≤ 1.5× a bare python3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each costs milliseconds at boot and none is needed there (pathlib: the state store and efivarfs work
# on path strings; importlib: the CLI loads the command with __import__).
AVOIDED = {"pathlib", "importlib", "argparse", "urllib", "json", "re", "shutil", "fnmatch"}


def test_writing_initrd_run_avoids_costly_modules(tmp_path: Path) -> None:
    """A real, writing `bootguard initrd` (as the initrd wrapper starts it) imports none of AVOIDED."""
    for d in ("esp/loader/entries", "efivars", "sysfs", "pstore"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "esp/loader/entries/a+2-1.conf").write_text("title a\nlinux /k\n")
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
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "state/events.jsonl").exists()  # it did write: this is the boot-time path
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES "))
    loaded = {name.split(".")[0] for name in line.split()[1:]}
    assert loaded & AVOIDED == set()
