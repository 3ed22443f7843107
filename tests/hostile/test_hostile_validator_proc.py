"""Hostile commands against the subprocess seam and the validator: real processes only.

Issue 15 item 7 and the validator's "clear error" items: a check that exits 0 while a background
child holds its stdout, 100 MB of output, a grandchild that escapes the process group with setsid.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from bootguard.errors import CommandError
from bootguard.seams import proc
from bootguard.validator import spec as s
from bootguard.validator.results import Result
from bootguard.validator.runner import run_checks


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_file(path: Path, seconds: float = 5.0) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never written")


def test_exit_zero_with_background_child_holding_stdout_is_done(tmp_path: Path) -> None:
    """The command's exit ends the run: a child that keeps stdout open is not waited for."""
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    done = proc.run(
        ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; echo healthy"], timeout=10, new_session=True
    )
    elapsed = time.monotonic() - start
    try:
        assert done.ok and done.stdout == "healthy\n"
        assert elapsed < 3, elapsed
    finally:
        os.kill(int(_wait_file(pidfile)), 9)


def test_check_with_background_child_passes_and_the_boot_is_accepted(tmp_path: Path) -> None:
    """The same through the validator runner: PASS, not TIMEOUT (no false rollback)."""
    pidfile = tmp_path / "pid"
    check = s.CheckSpec(
        "daemonizes",
        s.CheckKind.COMMAND,
        s.CommandTarget(("sh", "-c", f"sleep 30 & echo $! > {pidfile}; exit 0")),
        timeout=5,
    )
    try:
        report = run_checks([check], deadline=10)
        assert [r.result for r in report.checks] == [Result.PASS]
        assert not report.deadline_hit and report.passed
    finally:
        os.kill(int(_wait_file(pidfile)), 9)


def test_huge_output_is_bounded_and_marked_truncated() -> None:
    """100 MB of output keeps head and tail, says it was truncated, and costs little memory."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done = proc.run(
        ["sh", "-c", "echo FIRST; head -c 100000000 /dev/zero | tr '\\0' x; echo; echo LAST"],
        max_output=65536,
        timeout=60,
    )
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert done.truncated
    assert done.stdout.startswith("FIRST\n") and done.stdout.endswith("LAST\n")
    assert "bytes of output truncated" in done.stdout
    assert len(done.stdout) < 70000
    assert grown_kib < 50 * 1024, grown_kib


def test_setsid_grandchild_does_not_survive_the_timeout(tmp_path: Path) -> None:
    """A grandchild that leaves the session with setsid is killed at the timeout anyway."""
    pidfile = tmp_path / "pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' </dev/null >/dev/null 2>&1 & sleep 60"
    with pytest.raises(CommandError, match=r"did not finish within 1 s"):
        proc.run(["sh", "-c", script], timeout=1, new_session=True)
    escaped = int(_wait_file(pidfile))
    end = time.monotonic() + 3
    while _alive(escaped) and time.monotonic() < end:
        time.sleep(0.05)
    alive = _alive(escaped)
    if alive:
        os.kill(escaped, 9)
    assert not alive


def test_setsid_grandchild_of_a_timed_out_check_is_killed(tmp_path: Path) -> None:
    """Through the validator: the check times out and its escaped grandchild is gone."""
    pidfile = tmp_path / "pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' </dev/null >/dev/null 2>&1 & sleep 60"
    check = s.CheckSpec("escapes", s.CheckKind.COMMAND, s.CommandTarget(("sh", "-c", script)), timeout=1)
    report = run_checks([check], deadline=10)
    assert [r.result for r in report.checks] == [Result.TIMEOUT]
    escaped = int(_wait_file(pidfile))
    time.sleep(0.3)
    alive = _alive(escaped)
    if alive:
        os.kill(escaped, 9)
    assert not alive
