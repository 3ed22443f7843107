"""The GitOps loop across a boot, from the CLI on a sandbox host: real git, a real ESP/efivars/state
tree with bootguard's model of systemd-boot between boots, the trial staged by `upgrade`'s hook as
a real `bootguard trial` process (BOOTGUARD_COMMIT from upgrade's environment).

bad commit → trial fails twice → golden → the next `upgrade` records the commit failed at boot,
keeps it as a backup, resets the repository to golden's commit (saving a local commit and edits made
meanwhile) and does not deploy it again; the fix → trial → blessed → deployed.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from bootguard.demo.simloader import SimulatedLoader
from bootguard.errors import ExitCode
from bootguard.gitops import backups
from bootguard.gitops.record import GitopsRecord, RepoRecord
from tests.hosttree import HostTree, entry_text
from tests.integration.test_gitops import World, run_git

if TYPE_CHECKING:
    from bootguard.gitops.bootverdict import Settled
    from bootguard.validator.notify.base import Notification

pytestmark = pytest.mark.integration

LOADER = "systemd-boot 262.1-1"

# The fixture's "switch --mode boot": install the configuration as a new boot entry, like
# nixos-rebuild boot writes nixos-generation-N.conf; the trial hook stages the newest as a trial.
SWITCH_SH = """#!/bin/sh
set -e
n=$(ls "$ESP/loader/entries" | grep -c '^nixos-generation-')
n=$((n + 1))
printf 'title Generation %s\\nversion Generation %s\\nlinux /vmlinuz\\ninitrd /initrd.img\\noptions c=%s\\n' \
  "$n" "$n" "$BOOTGUARD_COMMIT" > "$ESP/loader/entries/nixos-generation-$n.conf"
echo "nixos-generation-$n.conf" > "$NEWEST"
"""
TRIAL_SH = """#!/bin/sh
exec "$PYTHON" -m bootguard --esp "$ESP" --efivars "$EFIVARS" --state-dir "$STATE" \
  trial "$(cat "$NEWEST")" --tries 2
"""


class Loop:
    def __init__(
        self, world: World, host: HostTree, monkeypatch: pytest.MonkeyPatch, *, golden_commit: bool = True
    ) -> None:
        self.w, self.h = world, host
        self.newest = world.tmp / "newest"
        (world.tools / "switch-boot.sh").write_text(SWITCH_SH)
        (world.tools / "trial.sh").write_text(TRIAL_SH)
        for k, v in {
            "ESP": host.esp,
            "EFIVARS": host.efivars,
            "STATE": host.state,
            "NEWEST": self.newest,
            "PYTHON": sys.executable,
            "PYTHONPATH": Path(__file__).resolve().parents[2],
        }.items():
            monkeypatch.setenv(k, str(v))
        host.add_entry("nixos-generation-1.conf", entry_text("Generation 1", version="Generation 1"))
        host.loader_conf("timeout 0\ndefault nixos-generation-1.conf\n")
        self.loader = SimulatedLoader(str(host.esp), str(host.efivars), LOADER)
        self.loader.boot()
        self.golden_commit = world.head(world.b)
        code, _, err = host.cli("pin-golden", *(("--commit", self.golden_commit) if golden_commit else ()))
        assert code == 0, err

    def upgrade(self) -> tuple[int, str, str]:
        return self.h.cli(
            "upgrade",
            "--repo",
            str(self.w.b),
            "--build-command",
            f"sh build.sh {self.w.build_log}",
            "--switch-command",
            f"sh {self.w.tools / 'switch-boot.sh'}",
            "--mode",
            "boot",
            "--trial-command",
            f"sh {self.w.tools / 'trial.sh'}",
        )

    def boot_dies_twice(self) -> None:
        self.loader.boot()  # panics before bootguard runs
        self.loader.boot()  # again: no tries left
        golden = self.loader.boot()
        assert (
            golden.selection.entry is not None and golden.selection.entry.filename == "bootguard-golden.conf"
        )
        code, _, err = self.h.cli("initrd", "--boot-id", str(uuid.uuid4()))
        assert code == 0, err

    def boot_good(self) -> None:
        self.loader.boot()
        assert self.h.cli("initrd", "--boot-id", str(uuid.uuid4()))[0] == 0
        code, _, err = self.h.cli("mark", "good")
        assert code == 0, err

    def record(self) -> RepoRecord:
        return GitopsRecord.load(self.h.state).get(os.path.realpath(self.w.b))

    def validator_settles(self) -> tuple[list[Settled], Catch]:
        """The validator's hook on the golden boot that stays up (what it settled, what it notified)."""
        from bootguard.gitops.bootverdict import after_validation
        from bootguard.validator.notify.dispatch import Dispatcher

        catch = Catch()
        done = after_validation(str(self.h.state), "bootguard-golden.conf", cast("Dispatcher", catch))
        return done, catch


class Catch:
    """A notification dispatcher that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def deliver(self, n: Notification) -> None:
        self.sent.append(n)


@pytest.fixture
def loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Loop:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return Loop(World(tmp_path), HostTree(tmp_path / "hostb"), monkeypatch)


def test_boot_failure_fails_the_commit_resets_git_and_is_not_retried(loop: Loop) -> None:
    w, h = loop.w, loop.h
    good = loop.golden_commit
    bad = w.commit(w.a, "builds, but panics at boot", config__txt="value = PANIC\n")
    w.push(w.a)
    code, out, err = loop.upgrade()
    assert code == 0, err
    status = h.cli_json("status")
    assert isinstance(status, dict) and status["trial"]["commit"] == bad  # the hook passed the commit
    assert loop.record().staged is not None and loop.record().deployed is None

    loop.boot_dies_twice()
    # Meanwhile on B: an edit and a local commit made on top of the configuration that does not run.
    local = w.commit(w.b, "local tweak", other__txt="tweaked\n")
    (w.b / "config.txt").write_text("value = PANIC\nedited = yes\n")

    code, _, err = loop.upgrade()  # the first userland step after the failure
    assert code == ExitCode.ROLLED_BACK, err
    assert "failed at boot (failed-before-bootguard)" in err and "not retrying" in err
    assert w.head(w.b) == good
    saved = {b.name.split("-", 1)[1]: b.commit for b in backups.list_backups(w.b)}
    assert saved["failed-boot"] == bad and saved["local"] == local and "dirty" in saved
    assert (w.b / "config.txt").read_text() == "value = 1\n"  # the edit did not re-apply on golden's
    rec = loop.record()
    assert rec.failed is not None and rec.failed.commit == bad and rec.failed.stage == "boot"
    verdict = rec.history[-1]
    assert (verdict.commit, verdict.outcome, verdict.stage, verdict.cause) == (
        bad,
        "failed",
        "boot",
        "failed-before-bootguard",
    )
    events = [e for e in h.events() if e["kind"] == "upgrade-failed"]
    datas = [e["data"] for e in events if isinstance(e["data"], dict)]
    assert any(d.get("stage") == "boot" and d.get("commit") == bad for d in datas)

    # The next timer run: the remote still points at the bad commit; nothing is built or staged.
    w.build_log.write_text("")
    code, _, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and "not retrying" in err
    assert w.builds() == [] and w.head(w.b) == good and h.cli_json("status")["trial"] is None  # type: ignore[index]
    code, out, _ = h.cli("status")
    assert f"failed:   {bad[:12]} at boot: the trial boot failed (failed-before-bootguard)" in out
    assert "kept as refs/bootguard/backup/" in out and "-failed-boot; not retried" in out
    assert f"restore: git -C {w.b}" in out

    fix = w.commit(w.a, "fix the panic", config__txt="value = 2\n")
    w.push(w.a)
    code, _, err = loop.upgrade()
    assert code == 0, err
    loop.boot_good()
    code, _, err = loop.upgrade()  # settles the blessed trial
    assert code == 0, err
    rec = loop.record()
    assert rec.deployed == fix and rec.failed is None and rec.staged is None
    assert rec.history[-1].outcome == "blessed" and rec.history[-1].commit == fix
    assert w.head(w.b) == fix
    w.made.add(local)
    w.assert_nothing_lost()


def test_each_trial_end_is_handled_once(loop: Loop) -> None:
    """The TrialEnd is settled once (one verdict, one failed-boot backup); a user who puts B back on
    the bad commit by hand does not get "up to date" on a configuration that does not run: the
    repository is returned to the running commit again, without a second verdict or backup."""
    w = loop.w
    bad = w.commit(w.a, "panics", config__txt="value = PANIC\n")
    w.push(w.a)
    assert loop.upgrade()[0] == 0
    loop.boot_dies_twice()
    assert loop.upgrade()[0] == ExitCode.ROLLED_BACK
    run_git(w.b, "reset", "-q", "--hard", bad)
    loop.loader.boot()  # golden again, state slots rewritten
    assert loop.h.cli("initrd", "--boot-id", str(uuid.uuid4()))[0] == 0
    w.build_log.write_text("")
    code, _, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and "not retrying" in err, err
    repo = os.path.realpath(w.b)
    golden = loop.golden_commit
    assert f"bootguard: {repo}: HEAD is {bad[:12]}, which failed at boot (failed-before-bootguard)" in err
    assert f"bootguard: {repo} is back on the running commit {golden[:12]}\n" in err
    assert w.head(w.b) == golden and w.builds() == []
    assert [v.outcome for v in loop.record().history] == ["failed"]
    assert [b.commit for b in backups.list_backups(w.b)] == [bad]


def test_trial_commit_missing_from_repository_is_recorded_and_repo_left_alone(loop: Loop) -> None:
    """A re-cloned repository without the failed commit: recorded failed, no backup, nothing reset."""
    w = loop.w
    w.commit(w.a, "panics", config__txt="value = PANIC\n")
    w.push(w.a)
    assert loop.upgrade()[0] == 0
    loop.boot_dies_twice()
    # Someone re-clones B from a remote where the bad commit was force-replaced.
    run_git(w.a, "reset", "-q", "--hard", "HEAD~1")
    other = w.commit(w.a, "different history", other__txt="other\n")
    w.push(w.a, "--force")
    import shutil

    shutil.rmtree(w.b)
    run_git(w.tmp, "clone", "-q", "--no-local", "-b", "dev", str(w.remote), str(w.b))
    w.configure(w.b, "b")
    code, out, err = loop.upgrade()
    assert code == 0, err
    assert "is not in the repository" in out + err
    assert w.head(w.b) == other
    assert loop.record().history[-1].outcome == "failed"


def test_unknown_running_commit_leaves_the_repository_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Golden pinned without a commit: the failure is recorded, git is not touched, status says why;
    `upgrade` and `commit` refuse in one line (exit 1) instead of calling the failed commit "up to
    date" or committing on it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    loop = Loop(World(tmp_path), HostTree(tmp_path / "hostb"), monkeypatch, golden_commit=False)
    w = loop.w
    repo = os.path.realpath(w.b)
    bad = w.commit(w.a, "panics", config__txt="value = PANIC\n")
    w.push(w.a)
    assert loop.upgrade()[0] == 0
    loop.boot_dies_twice()
    w.build_log.write_text("")
    refused = (
        f"bootguard: error: {repo} is on {bad[:12]}, which failed at boot, and cannot be returned to the "
        "running generation's commit: bootguard cannot tell which commit the running generation was built "
        "from; nothing built or committed"
    )
    code, out, err = loop.upgrade()
    assert code == ExitCode.FAILURE and out == "", err
    assert err.splitlines()[1:3] == [
        f"bootguard: {repo} left as it is: bootguard cannot tell which commit the running generation was "
        "built from",
        refused,
    ]
    assert w.head(w.b) == bad and w.builds() == []  # left alone, not guessed, not built on
    assert [b.name.rsplit("-", 2)[-2:] for b in backups.list_backups(w.b)] == [["failed", "boot"]]
    out = loop.h.cli("status")[1]
    assert "cannot tell which commit the running generation was built from" in out
    code, _, err = loop.upgrade()  # every run says so again, without a second backup
    assert code == ExitCode.FAILURE and refused in err.splitlines(), err
    assert len(backups.list_backups(w.b)) == 1 and w.builds() == []
    (w.b / "other.txt").write_text("edited on b\n")
    code, _, err = loop.h.cli("commit", "--repo", str(w.b))
    assert code == ExitCode.FAILURE and refused in err.splitlines(), err
    assert w.head(w.b) == bad and run_git(w.b, "status", "--porcelain") == "M other.txt"  # not committed


def test_validator_on_golden_settles_first_and_notifies(loop: Loop) -> None:
    """The validator's hook on the golden boot does the rollback; the notification names host,
    commit and cause; the following upgrade finds nothing left to settle."""
    w = loop.w
    bad = w.commit(w.a, "panics", config__txt="value = PANIC\n")
    w.push(w.a)
    assert loop.upgrade()[0] == 0
    loop.boot_dies_twice()
    done, catch = loop.validator_settles()
    assert [(s.commit, s.outcome, s.cause) for s in done] == [(bad, "failed", "failed-before-bootguard")]
    assert w.head(w.b) == loop.golden_commit
    (note,) = catch.sent
    assert bad[:12] in note.title and "failed-before-bootguard" in note.title and note.host in note.title
    assert note.title.endswith("; repository returned"), note.title
    assert f"commit: {bad}" in note.message
    code, _, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and "failed at boot" not in err  # already settled, once
    assert len([v for v in loop.record().history if v.outcome == "failed"]) == 1


def test_commit_after_a_failed_boot_commits_on_the_running_configuration(loop: Loop) -> None:
    """`bootguard commit --push` on B after the trial failed: the repository is returned to golden's
    commit first, so the auto-commit is made on the configuration that runs (the push is then rejected:
    the remote still holds the failed commit; the commit stays local, nothing lost)."""
    w = loop.w
    bad = w.commit(w.a, "panics", config__txt="value = PANIC\n")
    w.push(w.a)
    assert loop.upgrade()[0] == 0
    loop.boot_dies_twice()
    (w.b / "other.txt").write_text("edited on b\n")
    code, _, err = loop.h.cli("commit", "--repo", str(w.b), "--push")
    assert code == ExitCode.CONFLICT, err
    assert "failed at boot" in err
    assert f"origin/dev is {bad[:12]}, which failed (boot) on this host" in err
    assert "bootguard: hint: push a fix (or a revert) of it from another host" in err
    head = w.head(w.b)
    assert run_git(w.b, "rev-parse", "HEAD~1") == loop.golden_commit
    assert (w.b / "other.txt").read_text() == "edited on b\n"
    assert run_git(w.b, "log", "-1", "--format=%s", head).startswith("Auto-commit from")
    assert w.head(w.a) == bad


def test_trial_staged_by_hand_with_an_abbreviated_commit(loop: Loop) -> None:
    """A trial staged by hand (`trial --commit <abbrev>`) for a commit in the repository is settled
    too, under the full id, so the remote's commit is refused by the next upgrade."""
    w, h = loop.w, loop.h
    assert loop.upgrade()[0] == 0  # up to date: bootguard now looks after this repository
    bad = w.commit(w.a, "panics", config__txt="value = PANIC\n")
    w.push(w.a)
    run_git(w.b, "pull", "-q", "--ff-only")
    h.add_entry("nixos-generation-2.conf", entry_text("Generation 2", version="Generation 2"))
    code, _, err = h.cli("trial", "nixos-generation-2.conf", "--tries", "2", "--commit", bad[:12])
    assert code == 0, err
    loop.boot_dies_twice()
    code, _, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and f"{bad[:12]} failed at boot" in err, err
    assert w.head(w.b) == loop.golden_commit
    rec = loop.record()
    assert rec.failed is not None and rec.failed.commit == bad and rec.history[-1].commit == bad


# --- issue 11: the repository moved or deleted between the upgrade that staged the trial and the settle


def _files(top: Path) -> dict[str, bytes]:
    """Every file under `top`, .git included: any write by bootguard (a ref, the index, a reflog) shows."""
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def _staged_then_failed(loop: Loop) -> str:
    """upgrade stages the remote's bad commit as a trial; that trial dies twice; golden runs."""
    w = loop.w
    bad = w.commit(w.a, "builds, but panics at boot", config__txt="value = PANIC\n")
    w.push(w.a)
    assert loop.upgrade()[0] == 0
    rec = loop.record()
    assert rec.staged is not None and rec.staged.commit == bad
    loop.boot_dies_twice()
    return bad


def _assert_failed_at_boot(loop: Loop, bad: str) -> None:
    rec = loop.record()
    assert rec.staged is None and rec.failed is not None
    assert (rec.failed.commit, rec.failed.stage) == (bad, "boot")
    assert "failed-before-bootguard" in rec.failed.reason
    assert [(v.commit, v.outcome, v.stage, v.cause) for v in rec.history] == [
        (bad, "failed", "boot", "failed-before-bootguard")
    ]


def test_repository_moved_away_before_the_validator_settles(loop: Loop) -> None:
    """The validator records the failure, says in one line that the path is not a usable repository,
    writes nothing into the moved repository; moved back, the failed commit is not retried."""
    w, h = loop.w, loop.h
    bad = _staged_then_failed(loop)
    repo = os.path.realpath(w.b)
    moved = w.tmp / "host-b-moved"
    w.b.rename(moved)
    before = _files(moved)

    done, catch = loop.validator_settles()
    (s,) = done
    assert (s.commit, s.outcome, s.cause, s.backups) == (bad, "failed", "failed-before-bootguard", ())
    gone = f"{repo}: no such repository directory"
    assert s.problem == f"not a usable repository any more (moved or deleted?): {gone}"
    assert s.messages[-1] == f"{repo} left as it is: {s.problem}"
    assert all("\n" not in m for m in s.messages)
    (note,) = catch.sent
    assert bad[:12] in note.title and "failed-before-bootguard" in note.title
    assert note.title.endswith("; repository left alone"), note.title  # not "rolled back"
    assert "not a usable repository any more" in note.message
    _assert_failed_at_boot(loop, bad)
    (event,) = [e for e in h.events() if e["kind"] == "upgrade-failed"]
    assert isinstance(event["data"], dict) and event["data"]["stage"] == "boot"
    assert event["data"]["problem"] == s.problem
    assert _files(moved) == before and not w.b.exists()

    code, out, err = h.cli("status")
    assert code == 0 and err == "" and "Traceback" not in out
    assert f"failed:   {bad[:12]} at boot: the trial boot failed (failed-before-bootguard)" in out
    assert f"cannot read the repository (moved or re-cloned?): {gone}" in out
    assert "kept as no backup; not retried" in out

    # Moved back: HEAD is still the remote's (failed) commit. The next upgrade does not call that "up
    # to date": it returns the repository as the settle would have (backup, event), then refuses the
    # remote's commit by its id; nothing is built or staged, the verdict is not recorded again.
    moved.rename(w.b)
    w.build_log.write_text("")
    code, out, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and "not retrying until a newer commit arrives" in err, err
    golden = loop.golden_commit
    assert f"bootguard: {repo}: HEAD is {bad[:12]}, which failed at boot (failed-before-bootguard)" in err
    assert f"bootguard: {repo} is back on the running commit {golden[:12]} (saved: refs/bootguard/" in err
    assert w.builds() == [] and h.cli_json("status")["trial"] is None  # type: ignore[index]
    assert w.head(w.b) == golden
    assert [(b.commit, b.name.endswith("-failed-boot")) for b in backups.list_backups(w.b)] == [(bad, True)]
    _assert_failed_at_boot(loop, bad)  # recorded once, not settled again
    boot_events = [e["data"] for e in h.events() if e["kind"] == "upgrade-failed"]
    returned = [d for d in boot_events if isinstance(d, dict) and d.get("stage") == "boot"][-1]
    assert (returned["commit"], returned["problem"]) == (bad, None)
    out = h.cli("status")[1]
    assert f"failed:   {bad[:12]} at boot: the trial boot failed (failed-before-bootguard)" in out
    assert "the repository is on" not in out
    code, _, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and "not retrying until a newer commit arrives" in err, err
    assert "HEAD is" not in err and w.builds() == [] and w.head(w.b) == golden
    w.assert_nothing_lost()


def test_commit_on_a_repository_left_on_the_failed_commit(loop: Loop) -> None:
    """The validator could not reach the repository (moved away); moved back, `bootguard commit`
    returns it to the running commit first (edits kept), so the auto-commit is made on the
    configuration that runs, never on the failed one."""
    w = loop.w
    bad = _staged_then_failed(loop)
    repo = os.path.realpath(w.b)
    moved = w.tmp / "host-b-moved"
    w.b.rename(moved)
    (s,) = loop.validator_settles()[0]
    assert s.problem is not None and s.problem.startswith("not a usable repository any more")
    moved.rename(w.b)
    (w.b / "other.txt").write_text("edited on b\n")

    code, out, err = loop.h.cli("commit", "--repo", str(w.b))
    assert code == 0 and "committed 1 file(s)" in out, err
    golden = loop.golden_commit
    assert f"bootguard: {repo}: HEAD is {bad[:12]}, which failed at boot (failed-before-bootguard)" in err
    assert f"bootguard: {repo} is back on the running commit {golden[:12]} (saved: " in err
    head = w.head(w.b)
    assert run_git(w.b, "rev-parse", "HEAD~1") == golden
    assert run_git(w.b, "log", "-1", "--format=%s", head).startswith("Auto-commit from")
    assert run_git(w.b, "show", "--format=", "--name-only", head) == "other.txt"
    assert (w.b / "other.txt").read_text() == "edited on b\n" and run_git(w.b, "status", "--porcelain") == ""
    kinds = sorted(b.name.split("-", 1)[1] for b in backups.list_backups(w.b))
    assert kinds == ["dirty", "failed-boot"]
    assert [b.commit for b in backups.list_backups(w.b) if b.name.endswith("-failed-boot")] == [bad]
    _assert_failed_at_boot(loop, bad)
    w.made.add(head)
    w.assert_nothing_lost()


def test_upgrade_of_a_moved_repository_fails_in_one_line_and_settles_once_it_is_back(loop: Loop) -> None:
    """`upgrade --repo` on a path that is gone: exit 3, one line naming the path, the trial's end kept
    for later (nothing settled, nothing written); moved back, the next upgrade settles it in full."""
    w, h = loop.w, loop.h
    bad = _staged_then_failed(loop)
    moved = w.tmp / "host-b-moved"
    w.b.rename(moved)
    before = _files(moved)

    code, out, err = loop.upgrade()
    assert code == ExitCode.NOT_FOUND
    assert (out, err) == ("", f"bootguard: error: {os.path.realpath(w.b)}: no such repository directory\n")
    assert _files(moved) == before and not w.b.exists()
    rec = loop.record()
    assert rec.staged is not None and rec.staged.commit == bad and rec.failed is None and rec.history == ()
    out = h.cli("status")[1]
    assert f"trial of {bad[:12]} staged" in out and "cannot read the repository (moved or re-cloned?)" in out

    moved.rename(w.b)
    code, _, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and f"{bad[:12]} failed at boot (failed-before-bootguard)" in err, err
    assert w.head(w.b) == loop.golden_commit
    assert [b.commit for b in backups.list_backups(w.b)] == [bad]
    _assert_failed_at_boot(loop, bad)
    w.build_log.write_text("")
    code, _, err = loop.upgrade()
    assert code == ExitCode.ROLLED_BACK and "not retrying" in err and w.builds() == []
    w.assert_nothing_lost()


@pytest.mark.parametrize("enclosed", [False, True], ids=["plain", "inside-another-repository"])
def test_repository_replaced_by_a_plain_directory(loop: Loop, enclosed: bool) -> None:
    """A non-git directory where the repository was: the failure is recorded, the settle says the path
    is not a usable repository (not "re-cloned"), nothing is written anywhere — not even into a work
    tree that encloses the new directory and has the failed commit — and upgrade stops in one line."""
    w, h = loop.w, loop.h
    bad = _staged_then_failed(loop)
    repo = os.path.realpath(w.b)
    moved = w.tmp / "host-b-moved"
    w.b.rename(moved)
    if enclosed:  # e.g. /etc under etckeeper, or a monorepo that took the configuration's history
        run_git(w.tmp, "init", "-q")
        run_git(w.tmp, "fetch", "-q", str(w.remote), "dev")
    w.b.mkdir()
    (w.b / "configuration.nix").write_text("{ }\n")
    before, before_moved = _files(w.b), _files(moved)

    code, out, err = loop.upgrade()
    assert _files(w.b) == before and _files(moved) == before_moved
    if enclosed:
        assert run_git(w.tmp, "for-each-ref", "refs/bootguard") == ""  # no backup ref in the wrong repository
    assert code == ExitCode.NOT_FOUND and out == "" and "Traceback" not in err
    reason = (
        f"{repo}: not the top of a git work tree (that is {os.path.realpath(w.tmp)})"
        if enclosed
        else f"{repo}: not a git work tree (not a git repository (or any of the parent directories): .git)"
    )
    assert err.splitlines() == [
        f"bootguard: {repo}: {bad[:12]} failed at boot (failed-before-bootguard); "
        "not retried until a newer commit arrives",
        f"bootguard: {repo} left as it is: not a usable repository any more (moved or deleted?): {reason}",
        f"bootguard: error: {reason}",
    ]
    _assert_failed_at_boot(loop, bad)
    out = h.cli("status")[1]
    assert f"failed:   {bad[:12]} at boot: the trial boot failed (failed-before-bootguard)" in out
    assert f"cannot read the repository (moved or re-cloned?): {reason}" in out

    w.b.rename(w.tmp / "plain")
    moved.rename(w.b)
    w.build_log.write_text("")
    code, out, err = loop.upgrade()  # returned to the running commit, the remote's commit refused
    assert code == ExitCode.ROLLED_BACK and "not retrying until a newer commit arrives" in err, err
    assert f"{repo} is back on the running commit {loop.golden_commit[:12]}" in err
    assert w.builds() == [] and w.head(w.b) == loop.golden_commit
    assert [b.commit for b in backups.list_backups(w.b)] == [bad]
    _assert_failed_at_boot(loop, bad)
    w.assert_nothing_lost()
