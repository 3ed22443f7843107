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
    world.commit(world.b, "local", other__txt="local\n")
    assert precheck(world, state) == 0  # HEAD moved
    assert precheck(world, state, BOOTGUARD_REMOTE="nonexistent") == 0  # git fails: run
