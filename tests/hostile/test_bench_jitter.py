"""Category "benchmark" (issue 15): bench/watchdog_jitter.py is bounded in time and reports, never crashes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench", "watchdog_jitter.py")


def _run(*args: str, limit: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, BENCH, "--backends", "python", *args],
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
        cwd=ROOT,
    )
    return done, time.monotonic() - started


def test_reader_gone_before_the_magic_close_is_reported_not_a_traceback() -> None:
    """--drain -1: the receiver closes the FIFO before SIGTERM, so the daemon's writes hit EPIPE."""
    done, _ = _run("--duration", "1", "--drain", "-1", limit=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr
    assert "keepalive jitter:" in done.stdout
    assert "failed: " in done.stdout and "Broken pipe" in done.stdout, done.stdout


def test_the_whole_run_fits_its_budget() -> None:
    done, elapsed = _run("--duration", "600", "--budget", "12", limit=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert "shortened" in done.stdout
    assert elapsed < 40, elapsed
