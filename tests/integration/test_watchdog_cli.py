"""`bootguard watchdog info|run` as real processes: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bootguard(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("BOOTGUARD_", "NOTIFY_"))}
    full.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "bootguard", *argv],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "class" / "watchdog"
    wd = root / "watchdog0"
    wd.mkdir(parents=True)
    attrs = {
        "identity": "i6300ESB timer",
        "state": "inactive",
        "timeout": "30",
        "min_timeout": "1",
        "max_timeout": "2046",
        "nowayout": "0",
        "bootstatus": "32",
        "options": "0x8180",
    }
    for name, value in attrs.items():
        (wd / name).write_text(value + "\n")
    return root


@pytest.mark.integration
@pytest.mark.parametrize("native", ["0", "1"])
def test_info_json_reports_backend_and_a_watchdog_reset(sysfs: Path, tmp_path: Path, native: str) -> None:
    """`watchdog info --json` names the backend in use and decodes bootstatus CARDRESET."""
    env = {"BOOTGUARD_NO_NATIVE": "1"} if native == "0" else {}
    done = _bootguard(
        "watchdog", "info", "--json", "--sysfs-root", str(sysfs), "--dev-root", str(tmp_path), **env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["backend"] in (["python"] if native == "0" else ["cffi", "python"])
    (dev,) = out["devices"]
    assert dev["device"] == f"{tmp_path}/watchdog0" and dev["identity"] == "i6300ESB timer"
    assert dev["bootstatus"] == ["CARDRESET"] and dev["watchdog_reset"] is True
    assert dev["options_decoded"] == ["SETTIMEOUT", "MAGICCLOSE", "KEEPALIVEPING"]


@pytest.mark.integration
def test_info_text_says_the_last_boot_was_a_watchdog_reset(sysfs: Path, tmp_path: Path) -> None:
    """The human form says in words that the previous boot ended in a watchdog reset."""
    done = _bootguard("watchdog", "info", "--sysfs-root", str(sysfs), "--dev-root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "bootstatus CARDRESET — the previous boot ended in a watchdog reset" in done.stdout


@pytest.mark.integration
def test_info_for_an_unknown_device_is_not_found(sysfs: Path, tmp_path: Path) -> None:
    """Asking for a device that is not there exits 3 with a driver hint, no traceback."""
    done = _bootguard(
        "watchdog",
        "info",
        "--device",
        "/dev/watchdog7",
        "--sysfs-root",
        str(sysfs),
        "--dev-root",
        str(tmp_path),
    )
    assert done.returncode == 3
    assert "bootguard: error: no watchdog device at /dev/watchdog7" in done.stderr
    assert "modprobe" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
def test_run_without_a_device_exits_not_found(tmp_path: Path) -> None:
    """`watchdog run` on a missing node exits 3 and says how to load a driver."""
    done = _bootguard("watchdog", "run", "--device", str(tmp_path / "watchdog0"))
    assert done.returncode == 3
    assert f"no watchdog device at {tmp_path}/watchdog0" in done.stderr
    assert "modprobe i6300esb" in done.stderr


@pytest.mark.integration
def test_run_refuses_a_slow_interval_before_arming(tmp_path: Path) -> None:
    """An interval above timeout/2 is a usage error (exit 2) found before the device is opened."""
    done = _bootguard(
        "watchdog", "run", "--device", str(tmp_path / "absent"), "--timeout", "4", "--interval", "3"
    )
    assert done.returncode == 2
    assert "--interval 3 s exceeds half the watchdog timeout (4 s)" in done.stderr


@pytest.mark.integration
def test_run_on_a_non_watchdog_says_so(tmp_path: Path) -> None:
    """Pointed at a character device that is no watchdog, run fails with the ioctl named (exit 1)."""
    done = _bootguard("watchdog", "run", "--device", "/dev/null", "--no-realtime", "--no-mlock")
    assert done.returncode == 1
    assert "bootguard: error: /dev/null: GETTIMEOUT is not supported by the driver" in done.stderr
