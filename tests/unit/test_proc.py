"""The one subprocess seam: argv only, truthful failures, timeouts that kill the whole group."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bootguard.errors import CommandError
from bootguard.seams import proc


def test_output_and_status() -> None:
    """stdout, stderr and the exit status of a real process come back as they were."""
    done = proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_failure_names_the_program_and_last_stderr_line() -> None:
    """check=True raises a CommandError whose message names the program and its last complaint."""
    with pytest.raises(CommandError, match=r"sh failed with exit status 2: boom"):
        proc.run(["sh", "-c", "echo boom >&2; exit 2"])


def test_missing_program_is_127() -> None:
    """A program that does not exist is reported as 'command not found' (127), not a traceback."""
    assert proc.run(["/nonexistent/prog"], check=False).returncode == 127
    with pytest.raises(CommandError, match="command not found"):
        proc.run(["/nonexistent/prog"])


def _dead(pid: int) -> bool:
    """Gone, or a zombie (killed, waiting for a parent that may never reap it here)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_timeout_kills_grandchildren_with_new_session(tmp_path: Path) -> None:
    """With new_session, a timeout kills the command's grandchildren too, within the timeout."""
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    with pytest.raises(CommandError, match=r"did not finish within 0.5 s"):
        proc.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5, new_session=True)
    assert time.monotonic() - start < 5
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    assert _dead(grandchild)


def test_input_is_passed() -> None:
    """input= is fed to stdin."""
    assert proc.run(["cat"], input="hello").stdout == "hello"


def test_runs_as_another_user_and_group() -> None:
    """user, group and extra_groups all apply to the child (root only can drop to them)."""
    argv = ["sh", "-c", "id -u; id -g; id -G"]
    done = proc.run(argv, check=False, user=65534, group=65534, extra_groups=[])
    if os.geteuid() != 0:
        assert done.returncode != 0
        return
    assert done.stdout.split() == ["65534", "65534", "65534"]
