"""The upgrade unit's ExecCondition pre-check, run as systemd would run it (the unit's own text,
`$$` unescaped, continuation lines joined) by /bin/sh against real git, next to `bootguard upgrade`.

It must say "skip" (exit 1) only when the last run succeeded and nothing changed since: not the
repository, not the remote, not the state (a trial that ended must be settled).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from bootguard.cli.main import main
from tests.integration.test_gitops import World

pytestmark = pytest.mark.integration

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def unit_command(unit: str, key: str) -> list[str]:
    """argv of `key=` in `unit` as systemd sees it: lines joined, `$$` → `$`, quotes split."""
    import shlex

    text = (UNITS / unit).read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{key}="))
    return [a.replace("$$", "$") for a in shlex.split(line.split("=", 1)[1])]


def precheck(world: World, state: Path, **extra: str) -> int:
    env = {
        **os.environ,
        "BOOTGUARD_STATE_DIR": str(state),
        "BOOTGUARD_REPO": str(world.b),
        "BOOTGUARD_REMOTE": "origin",
        "BOOTGUARD_BRANCH": "dev",
        **extra,
    }
    return subprocess.run(
        unit_command("bootguard-upgrade.service", "ExecCondition"), env=env, check=False
    ).returncode


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return World(tmp_path)


def test_precheck_skips_only_when_nothing_changed(world: World) -> None:
    state = world.state_b
    assert precheck(world, state) == 0  # no stamp yet: run
    assert main(["--state-dir", str(state), "upgrade", "--repo", str(world.b)]) == 0
    assert precheck(world, state) == 1  # the run left a stamp; nothing new
    world.commit(world.a, "new", config__txt="value = 9\n")
    world.push(world.a)
    assert precheck(world, state) == 0  # the remote moved
    assert main(["--state-dir", str(state), "upgrade", "--repo", str(world.b)]) == 0
    assert precheck(world, state) == 1
    time.sleep(0.01)
    (state / "state.a.json").write_text("{}")  # a trial ended (a state update) since the last run
    assert precheck(world, state) == 0
    assert main(["--state-dir", str(state), "upgrade", "--repo", str(world.b)]) != 0  # bad slot: fails
    assert precheck(world, state) == 0  # and a failed run leaves no stamp
    (state / "state.a.json").unlink()
    assert main(["--state-dir", str(state), "upgrade", "--repo", str(world.b)]) == 0
    assert precheck(world, state) == 1
    stamp = state / "gitops-upgrade.ok"
    line = stamp.read_text()
    assert line.startswith("2 ")
    stamp.write_text(line[2:])  # as an older bootguard wrote it: it predates the failed-at-boot check
    os.utime(stamp, (time.time() + 1, time.time() + 1))  # and is newer than the state
    assert precheck(world, state) == 0  # never skips: the next run checks, and writes a new stamp
    assert main(["--state-dir", str(state), "upgrade", "--repo", str(world.b)]) == 0
    assert stamp.read_text() == line and precheck(world, state) == 1
    world.commit(world.b, "local", other__txt="local\n")
    assert precheck(world, state) == 0  # HEAD moved
    assert precheck(world, state, BOOTGUARD_REMOTE="nonexistent") == 0  # git fails: run


def role_env(role: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (UNITS / f"gitops-{role}.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def exec_start(unit: str, env: dict[str, str]) -> list[str]:
    """ExecStart= with systemd's expansion: ${VAR} in place, a bare $VAR split on whitespace."""
    out: list[str] = []
    for arg in unit_command(unit, "ExecStart"):
        if arg.startswith("$") and not arg.startswith("${"):
            out += env[arg[1:]].split()
            continue
        expanded = arg
        for key, value in env.items():
            expanded = expanded.replace("${" + key + "}", value)
        out.append(expanded)
    return out


def run_unit(unit: str, world: World, role: str) -> int:
    env = {**role_env(role), "BOOTGUARD_REPO": str(world.b)}
    argv = exec_start(unit, env)
    assert argv[0] == "/usr/bin/bootguard"
    return main(["--state-dir", str(world.state_b), *argv[1:]])


@pytest.mark.parametrize(
    ("role", "pushed", "kept"), [("server", False, "remote"), ("workstation", True, "local")]
)
def test_role_presets(world: World, role: str, pushed: bool, kept: str) -> None:
    """server: commit without push, conflicts prefer-remote; workstation: push, prefer-local. Both
    commit in the user's format; every commit stays reachable."""
    timer = "weekly" if role == "server" else "daily"
    assert f"OnCalendar={timer}" in (UNITS / f"bootguard-commit-{timer}.timer").read_text()
    remote_before = subprocess.run(
        ["git", "-C", str(world.remote), "rev-parse", "dev"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (world.b / "config.txt").write_text("value = local\n")
    assert run_unit("bootguard-commit.service", world, role) == 0
    local = world.head(world.b)
    world.made.add(local)
    message = subprocess.run(
        ["git", "-C", str(world.b), "log", "-1", "--format=%B"], capture_output=True, text=True, check=True
    ).stdout
    assert message.startswith(f"Auto-commit from {os.uname().nodename}\n\nChanges detected on ")
    remote_now = subprocess.run(
        ["git", "-C", str(world.remote), "rev-parse", "dev"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert (remote_now == local) is pushed and (remote_now == remote_before) is not pushed
    if pushed:
        return  # a workstation's conflict needs a remote change it has not seen: below
    world.commit(world.a, "remote side", config__txt="value = remote\n")
    world.push(world.a)
    assert run_unit("bootguard-upgrade.service", world, role) == 0
    assert (world.b / "config.txt").read_text() == f"value = {kept}\n"
    world.assert_nothing_lost()


def test_workstation_conflict_keeps_local(world: World) -> None:
    world.commit(world.a, "remote side", config__txt="value = remote\n")
    world.push(world.a)
    world.commit(world.b, "local side", config__txt="value = local\n")
    assert run_unit("bootguard-upgrade.service", world, "workstation") == 0
    assert (world.b / "config.txt").read_text() == "value = local\n"
    assert run_unit("bootguard-commit.service", world, "workstation") == 0  # pushes the resolution
    world.assert_nothing_lost()
    assert world.head(world.b) in world.reachable(world.remote)
