"""`bootguard check` as a real process and `bootguard validate` on a real ESP/efivars/state tree.

systemctl is the only thing faked (no systemd runs as PID 1 here): `is-enabled` answers "masked"
and `reboot` is recorded instead of run. Checks, blessing renames, events and files are real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bootguard.demo.simloader import SimulatedLoader
from bootguard.seams import proc
from bootguard.seams.grubenv import GrubEnv
from bootguard.seams.statestore import StateStore
from tests.hosttree import HostTree
from tests.simgrub import MENU, SimGrub

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _bootguard(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "bootguard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _config(tmp_path: Path, failing: bool, extra: str = "") -> Path:
    path = tmp_path / "checks.toml"
    path.write_text(
        f"""
[validator]
deadline = 30
on_failure = "reboot"
metrics_file = "{tmp_path / "metrics" / "bootguard.prom"}"
[[check]]
name = "proc"
kind = "path"
path = "/proc/self"
[[check]]
name = "service"
kind = "command"
command = ["sh", "-c", "{"echo down >&2; exit 1" if failing else "echo up"}"]
timeout = 5
[[check]]
name = "optional"
kind = "command"
command = ["false"]
required = false
{extra}
"""
    )
    (tmp_path / "metrics").mkdir(exist_ok=True)
    return path


def test_check_json_is_exactly_the_documented_shape(tmp_path: Path) -> None:
    """`check --json` prints {"result", "checks": [{name, required, result, seconds, message}]}, exit 0."""
    done = _bootguard("check", "--config", str(_config(tmp_path, failing=False)), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == {"result", "checks"} and doc["result"] == "pass"
    assert [set(c) for c in doc["checks"]] == [{"name", "required", "result", "seconds", "message"}] * 3
    assert [(c["name"], c["required"], c["result"]) for c in doc["checks"]] == [
        ("proc", True, "pass"),
        ("service", True, "pass"),
        ("optional", False, "fail"),
    ]
    assert all(isinstance(c["seconds"], float | int) for c in doc["checks"])


def test_check_exit_code_6_when_a_required_check_fails(tmp_path: Path) -> None:
    """A failing required check → exit 6 and a readable line naming it; nothing is blessed or rebooted."""
    done = _bootguard("check", "--config", str(_config(tmp_path, failing=True)))
    assert done.returncode == 6
    assert "fail    service (required" in done.stdout and "down" in done.stdout


def test_check_with_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    """A broken checks file → exit 2 with a one-line error naming the option, no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[check]]\nname = "x"\nkind = "tcp"\n')
    done = _bootguard("check", "--config", str(bad))
    assert done.returncode == 2
    assert (
        done.stderr.startswith("bootguard: error: check 'x': option 'port'")
        and "Traceback" not in done.stderr
    )


@pytest.fixture
def systemctl(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []
    real = proc.run

    def run(argv: Any, **kw: Any) -> proc.Completed:
        args = tuple(str(a) for a in argv)
        if args[0] != "systemctl":
            return real(argv, **kw)
        calls.append(args)
        return proc.Completed(args, 0, "masked\n" if "is-enabled" in args else "", "")

    monkeypatch.setattr(proc, "run", run)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    return calls


def _counted_boot(host: HostTree) -> None:
    host.add_entry("os-1+3.conf", version="1")
    SimulatedLoader(str(host.esp), str(host.efivars), "systemd-boot 257.13-1").boot()
    assert host.entries() == ["os-1+2-1.conf"]


def test_validate_pass_blesses_the_real_entry(
    host: HostTree, tmp_path: Path, systemctl: list[tuple[str, ...]]
) -> None:
    """All required checks pass → os-1+2-1.conf is renamed os-1.conf, events and files written, exit 0."""
    _counted_boot(host)
    code, _, err = host.cli("validate", "--config", str(_config(tmp_path, failing=False)))
    assert code == 0, err
    assert host.entries() == ["os-1.conf"]
    assert ("systemctl", "reboot") not in systemctl
    last = json.loads((host.state / "last-validation.json").read_text())
    assert (last["result"], last["decision"], last["entry"]) == ("pass", "blessed", "os-1+2-1.conf")
    kinds = [json.loads(line)["kind"] for line in (host.state / "events.jsonl").read_text().splitlines()]
    assert kinds[:3] == ["validation", "check-failed", "blessed"]
    prom = (tmp_path / "metrics" / "bootguard.prom").read_text()
    assert "bootguard_last_validation_success 1" in prom and 'bootguard_check_success{check="service"' in prom
    status = host.cli_json("status")
    assert isinstance(status, dict) and status["last_validation"]["result"] == "pass"


def test_validate_failure_marks_bad_and_reboots(
    host: HostTree, tmp_path: Path, systemctl: list[tuple[str, ...]]
) -> None:
    """A failed required check → entry renamed +0-1 (bad), failure recorded with why, `systemctl reboot`."""
    _counted_boot(host)
    code, _, err = host.cli("validate", "--config", str(_config(tmp_path, failing=True)))
    assert code == 6, err
    assert host.entries() == ["os-1+0-1.conf"]
    assert systemctl[-1] == ("systemctl", "reboot")
    events = [json.loads(line) for line in (host.state / "events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["kind"] == "check-failed" and e["cause"] == "service"]
    assert failed and "down" in failed[0]["message"]
    assert any(e["kind"] == "marked-bad" for e in events)
    assert json.loads((host.state / "last-validation.json").read_text())["decision"] == "marked-bad"


def _grub_trial(host: HostTree, tmp_path: Path) -> tuple[SimGrub, list[str]]:
    grub = SimGrub(tmp_path)
    g = ["--grub-env", str(grub.env), "--cmdline", str(grub.cmdline)]
    assert grub.boot() == "gen-1"
    assert host.cli("pin-golden", "gen-1", "--match", MENU["gen-1"], *g)[0] == 0
    assert host.cli("trial", "gen-3", "--match", MENU["gen-3"], "--tries", "1", *g)[0] == 0
    assert grub.boot() == "gen-3"
    assert host.cli("initrd", "--boot-id", "b-1", *g)[0] == 0
    return grub, g


def test_validate_on_grub_pass_makes_the_trial_grubs_default(
    host: HostTree, tmp_path: Path, systemctl: list[tuple[str, ...]]
) -> None:
    """On a GRUB host a passing validation of the trial ends it and makes it GRUB's saved_entry."""
    grub, g = _grub_trial(host, tmp_path)
    code, _, err = host.cli("validate", "--config", str(_config(tmp_path, failing=False)), *g)
    assert code == 0, err
    assert GrubEnv(str(grub.env)).read() == {"saved_entry": "gen-3"}
    assert StateStore(host.state).load().state.trial is None
    assert ("systemctl", "reboot") not in systemctl


def test_validate_on_grub_failure_reboots_and_golden_counts_it(
    host: HostTree, tmp_path: Path, systemctl: list[tuple[str, ...]]
) -> None:
    """A failing trial on GRUB is recorded bad and rebooted; GRUB boots golden, whose early-boot step counts
    the try as validation-failed and drops the trial (1 try)."""
    grub, g = _grub_trial(host, tmp_path)
    code, _, err = host.cli("validate", "--config", str(_config(tmp_path, failing=True)), *g)
    assert code == 6, err
    assert systemctl[-1] == ("systemctl", "reboot")
    assert grub.boot() == "gen-1"
    assert host.cli("initrd", "--boot-id", "b-2", *g)[0] == 0
    events = [json.loads(line) for line in (host.state / "events.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["cause"]) for e in events if e["kind"] in ("counted-failure", "rolled-back")] == [
        ("counted-failure", "validation-failed"),
        ("rolled-back", "validation-failed"),
    ]
    assert GrubEnv(str(grub.env)).read() == {"saved_entry": "gen-1"}
