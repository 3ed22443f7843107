"""The fleet across a real trial boot: B's boot failure stops the commit on C, B's blessed fix frees it.

B is the sandbox host of test_gitops_bootloop (real git, a real ESP/efivars/state tree, bootguard's
model of systemd-boot between boots, the trial staged by `upgrade`'s hook as a real `bootguard
trial` process). C is a third clone of the same remote that only reads verdicts. Nothing but the
remote's refs/bootguard/verdicts/b carries B's verdicts to C.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootguard.cli.main import main
from bootguard.errors import ExitCode
from tests.hosttree import HostTree
from tests.integration.test_fleet import git
from tests.integration.test_gitops import World
from tests.integration.test_gitops_bootloop import Loop

pytestmark = pytest.mark.integration


class HostC:
    def __init__(self, world: World) -> None:
        self.w = world
        self.repo = world.tmp / "host-c"
        self.state = world.tmp / "state-c"
        git(world.tmp, "clone", "-q", "-b", "dev", str(world.remote), str(self.repo))
        world.configure(self.repo, "c")

    def upgrade(self, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(
            [
                "--state-dir",
                str(self.state),
                "upgrade",
                "--repo",
                str(self.repo),
                "--host",
                "c",
                "--build-command",
                f"sh build.sh {self.w.tmp / 'build-c.log'}",
                *extra,
            ]
        )
        return code, capsys.readouterr().err

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD")


def b_upgrade(loop: Loop) -> tuple[int, str, str]:
    """B's upgrade as its timer would run it, publishing its verdicts as host b."""
    return loop.h.cli(
        "upgrade",
        "--repo",
        str(loop.w.b),
        "--host",
        "b",
        "--publish-verdicts",
        "--build-command",
        f"sh build.sh {loop.w.build_log}",
        "--switch-command",
        f"sh {loop.w.tools / 'switch-boot.sh'}",
        "--mode",
        "boot",
        "--trial-command",
        f"sh {loop.w.tools / 'trial.sh'}",
    )


@pytest.fixture
def loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Loop:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return Loop(World(tmp_path), HostTree(tmp_path / "hostb"), monkeypatch)


def test_boot_failure_on_b_quarantines_on_c_until_b_blesses_the_fix(
    loop: Loop, capsys: pytest.CaptureFixture[str]
) -> None:
    w = loop.w
    c = HostC(w)
    start = c.head()
    bad = w.commit(w.a, "builds, but panics at boot", config__txt="value = PANIC\n")
    w.push(w.a)
    code, _, err = b_upgrade(loop)  # B builds, switches, stages the trial
    assert code == 0, err
    loop.boot_dies_twice()
    code, _, err = b_upgrade(loop)  # settles: failed at boot; publishes
    assert code == ExitCode.ROLLED_BACK and "failed at boot" in err, err
    assert "not published" not in err

    code, err = c.upgrade(capsys)
    assert code == ExitCode.ROLLED_BACK
    assert f"{bad[:12]} is quarantined: host b failed {bad[:12]} at boot on " in err
    assert ": failed-before-bootguard; not deploying, nothing changed" in err
    assert c.head() == start and not (w.tmp / "build-c.log").exists()

    fix = w.commit(w.a, "fix the panic", config__txt="value = 2\n")
    w.push(w.a)
    code, err = c.upgrade(capsys, "--canaries", "1")  # the bad commit lies between: still held
    assert code == ExitCode.ROLLED_BACK and f"host b failed {bad[:12]}" in err
    code, _, err = b_upgrade(loop)  # B takes the fix as a trial: not blessed yet, nothing to bless with
    assert code == 0, err
    code, err = c.upgrade(capsys, "--canaries", "1")
    assert code == ExitCode.ROLLED_BACK and f"host b failed {bad[:12]}" in err
    loop.boot_good()
    code, _, err = b_upgrade(loop)  # settles the blessed trial; publishes the blessing
    assert code == 0, err
    verdicts = git(w.remote, "log", "--format=%s", "refs/bootguard/verdicts/b").splitlines()
    assert verdicts[0].startswith(f"bootguard verdict: b blessed {fix[:12]}")
    assert verdicts[1].startswith(f"bootguard verdict: b failed {bad[:12]} at boot")

    code, err = c.upgrade(capsys, "--canaries", "1")
    assert code == 0, err
    assert c.head() == fix and (w.tmp / "build-c.log").read_text().split() == [fix]
    assert os.path.exists(c.state / "fleet.json")
