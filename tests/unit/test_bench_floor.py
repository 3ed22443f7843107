"""bench/support/initrd_floor.py does the early-boot step's file work on cli_startup's host tree.

The floor row of bench/cli_startup.py is only a floor if the helper really does that work: it reads
the state slots the real step wrote, and writes and fsyncs a slot and an event line of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import cli_startup  # noqa: E402  (a script directory, not a package)


def test_floor_reads_the_real_state_and_writes_its_own_files(tmp_path: Path) -> None:
    common = cli_startup.make_tree(tmp_path)
    step = [sys.executable, "-m", "bootguard", *common, "initrd", *cli_startup.device_options(tmp_path)]
    subprocess.run([*step, "--boot-id", "b1"], check=True, capture_output=True, cwd=ROOT)
    slot = (tmp_path / "state/state.a.json").read_bytes()
    done = subprocess.run(
        cli_startup.floor_argv(sys.executable, tmp_path), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (tmp_path / "state/floor.json").read_bytes() == slot  # the slot it read, written as its own
    (line,) = (tmp_path / "state/floor.jsonl").read_text().splitlines()
    assert json.loads(line) == {"kind": "floor", "entries": 50}
    assert not list((tmp_path / "state").glob(".state.*.tmp.*"))  # renamed into place
