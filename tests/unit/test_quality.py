"""The code base stays ruff- and mypy --strict-clean (the brief makes both part of the test suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_clean() -> None:
    """ruff finds nothing in the package, tests, benchmarks and the C extension's build script."""
    done = _run("ruff", "check", "--no-cache", "bootguard", "tests", "bench", "c_ext", "setup.py")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_mypy_strict_clean() -> None:
    """mypy --strict (configured in pyproject.toml) finds no error."""
    done = _run("mypy")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
