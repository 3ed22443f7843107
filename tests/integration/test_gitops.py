"""`bootguard commit` / `bootguard upgrade` on real git: a bare remote and two host clones in tmp_path.

The build command is a real script in the repository that fails when `config.txt` contains
BROKEN; the switch command copies the configuration to a marker file. Every commit a test makes
is collected so the test can assert that nothing ever became unreachable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bootguard.cli.main import main
from bootguard.errors import ExitCode
from bootguard.gitops import backups, locks

pytestmark = pytest.mark.integration

BUILD_SH = """#!/bin/sh
# The configuration's own build: refuses a broken configuration, logs what it built.
if grep -q BROKEN config.txt; then echo "config.txt is BROKEN" >&2; exit 1; fi
echo "$BOOTGUARD_COMMIT" >> "$1"
"""
SWITCH_SH = """#!/bin/sh
# Activate: copy the configuration to the marker; refuse a configuration saying NOSWITCH.
if grep -q NOSWITCH config.txt; then echo "activation failed" >&2; exit 1; fi
cp config.txt "$1"
echo "$2 $BOOTGUARD_COMMIT" > "$1.how"
"""


def run_git(repo: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    done = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", a, b], check=False)
    return done.returncode == 0


class World:
    """A remote, hosts A and B, a state directory per host, and every commit made so far."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.remote = tmp / "remote.git"
        self.a, self.b = tmp / "host-a", tmp / "host-b"
        self.state_a, self.state_b = tmp / "state-a", tmp / "state-b"
        self.tools = tmp / "tools"
        self.build_log = tmp / "build.log"
        self.marker = tmp / "running-config"
        self.made: set[str] = set()
        self.tools.mkdir()
        (self.tools / "switch.sh").write_text(SWITCH_SH)
        run_git(tmp, "init", "-q", "--bare", "-b", "dev", str(self.remote))
        seed = tmp / "seed"
        run_git(tmp, "init", "-q", "-b", "dev", str(seed))
        self.configure(seed, "seed")
        (seed / "config.txt").write_text("value = 1\n")
        (seed / "build.sh").write_text(BUILD_SH)
        (seed / "other.txt").write_text("untouched\n")
        self.commit(seed, "seed")
        run_git(seed, "push", "-q", str(self.remote), "dev")
        for host, name in ((self.a, "a"), (self.b, "b")):
            run_git(tmp, "clone", "-q", "-b", "dev", str(self.remote), str(host))
            self.configure(host, name)
        self.marker.write_text((seed / "config.txt").read_text())

    @staticmethod
    def configure(repo: Path, name: str) -> None:
        run_git(repo, "config", "user.name", f"host {name}")
        run_git(repo, "config", "user.email", f"{name}@example.test")

    def commit(self, repo: Path, message: str, **files: str | None) -> str:
        """Write files (None deletes), commit everything, remember the commit."""
        for name, text in files.items():
            path = repo / name.replace("__", ".")
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
        run_git(repo, "add", "-A")
        run_git(repo, "commit", "-qm", message)
        sha = run_git(repo, "rev-parse", "HEAD")
        self.made.add(sha)
        return sha

    def push(self, repo: Path, *extra: str) -> None:
        run_git(repo, "push", "-q", *extra, "origin", "dev")

    def head(self, repo: Path) -> str:
        return run_git(repo, "rev-parse", "HEAD")

    def upgrade_args(self, *extra: str) -> list[str]:
        return [
            "--state-dir",
            str(self.state_b),
            "upgrade",
            "--repo",
            str(self.b),
            "--build-command",
            f"sh build.sh {self.build_log}",
            "--switch-command",
            f"sh {self.tools / 'switch.sh'} {self.marker} {{mode}}",
            *extra,
        ]

    def builds(self) -> list[str]:
        return self.build_log.read_text().split() if self.build_log.exists() else []

    def reachable(self, *repos: Path) -> set[str]:
        found: set[str] = set()
        for repo in repos:
            found.update(run_git(repo, "rev-list", "--all").split())
        return found

    def assert_nothing_lost(self) -> None:
        lost = self.made - self.reachable(self.b, self.remote, self.a)
        assert not lost, f"commits no longer reachable from any ref: {sorted(lost)}"

    def events(self, state: Path) -> list[dict[str, object]]:
        path = state / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def record(self, state: Path) -> dict[str, object]:
        doc = json.loads((state / "gitops.json").read_text())
        repos = doc["repos"]
        assert isinstance(repos, dict)
        rec = repos[os.path.realpath(self.b)]
        assert isinstance(rec, dict)
        return rec


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return World(tmp_path)


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("bootguard: error:")]


# --- the happy path and rollback --------------------------------------------------------------


def test_commit_push_then_upgrade_switches(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Host A commits and pushes in the user's message format; host B builds and switches to it."""
    (world.a / "config.txt").write_text("value = 2\n")
    assert main(["--state-dir", str(world.state_a), "commit", "--repo", str(world.a), "--push"]) == 0
    pushed = run_git(world.remote, "rev-parse", "dev")
    world.made.add(pushed)
    subject, blank, detected, host = run_git(world.remote, "log", "-1", "--format=%B", "dev").splitlines()
    assert subject == f"Auto-commit from {os.uname().nodename}" and blank == ""
    assert detected.startswith("Changes detected on ") and host == f"Host: {os.uname().nodename}"
    assert main(world.upgrade_args()) == 0
    assert world.head(world.b) == pushed
    assert world.marker.read_text() == "value = 2\n"
    assert world.builds() == [pushed]
    assert (world.marker.parent / "running-config.how").read_text().split() == ["switch", pushed]
    assert [e["kind"] for e in world.events(world.state_a)] == ["commit"]
    assert [e["kind"] for e in world.events(world.state_b)] == ["upgrade"]
    assert world.record(world.state_b)["deployed"] == pushed


def test_noop_upgrade_builds_nothing(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """With nothing new on the remote, upgrade reports up to date, builds nothing, and logs the run."""
    assert main(world.upgrade_args()) == 0
    assert "up to date" in capsys.readouterr().out
    assert world.builds() == []
    events = world.events(world.state_b)
    assert [e["kind"] for e in events] == ["upgrade"]
    data = events[0]["data"]
    assert isinstance(data, dict) and data["outcome"] == "up-to-date"


def test_breaking_commit_rolls_back_until_a_fix(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken commit leaves B on its working commit, is recorded and not rebuilt; a fix upgrades."""
    good = world.head(world.b)
    broken = world.commit(world.a, "break it", config__txt="value = BROKEN\n")
    world.push(world.a)
    assert main(world.upgrade_args()) == ExitCode.ROLLED_BACK
    errors = error_lines(capsys)
    assert len(errors) == 1 and "failed to build" in errors[0] and "config.txt is BROKEN" in errors[0]
    assert world.head(world.b) == good and world.marker.read_text() == "value = 1\n"
    assert run_git(world.b, "status", "--porcelain") == ""
    failed = world.record(world.state_b)["failed"]
    assert isinstance(failed, dict) and failed["commit"] == broken and failed["stage"] == "build"
    assert world.builds() == []  # the build script refused before logging
    # Not retried: the build script is not run again while the remote still points at it.
    (world.b / "build.sh").chmod(0o644)
    world.build_log.write_text("")
    assert main(world.upgrade_args()) == ExitCode.ROLLED_BACK
    assert "not retrying until a newer commit arrives" in error_lines(capsys)[0]
    assert world.builds() == [] and world.head(world.b) == good
    assert any(b.name.endswith("-failed-build") for b in backups.list_backups(world.b))
    fix = world.commit(world.a, "fix it", config__txt="value = 3\n")
    world.push(world.a)
    assert main(world.upgrade_args()) == 0
    assert world.head(world.b) == fix and world.marker.read_text() == "value = 3\n"
    assert world.record(world.state_b)["failed"] is None
    kinds = [e["kind"] for e in world.events(world.state_b)]
    assert kinds.count("upgrade-failed") == 2 and kinds[-1] == "upgrade"
    world.assert_nothing_lost()


def test_validation_failure_never_switches(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A failing pre-switch validation resets B and the switch command never runs."""
    good = world.head(world.b)
    world.commit(world.a, "new", config__txt="value = 4\n")
    world.push(world.a)
    args = world.upgrade_args("--validate-command", "sh -c 'echo validator says no >&2; exit 3'")
    assert main(args) == ExitCode.ROLLED_BACK
    assert "failed to validate: sh exited with status 3: validator says no" in error_lines(capsys)[0]
    assert world.head(world.b) == good and world.marker.read_text() == "value = 1\n"


def test_switch_failure_switches_back(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A failing switch resets the repository and re-runs the switch for the running commit."""
    good = world.head(world.b)
    world.commit(world.a, "cannot activate", config__txt="value = NOSWITCH\n")
    world.push(world.a)
    world.marker.write_text("stale\n")
    assert main(world.upgrade_args()) == ExitCode.ROLLED_BACK
    assert "switched back" in error_lines(capsys)[0]
    assert world.head(world.b) == good and world.marker.read_text() == "value = 1\n"


def test_trial_hook_runs_for_boot_mode_only(world: World) -> None:
    """mode boot stages the new generation through the trial hook; mode test does not call it."""
    trial_log = world.tmp / "trial.log"
    trial = f"sh -c 'echo $BOOTGUARD_MODE {{commit}} >> {trial_log}'"
    first = world.commit(world.a, "one", config__txt="value = 5\n")
    world.push(world.a)
    assert main(world.upgrade_args("--mode", "boot", "--trial-command", trial)) == 0
    assert trial_log.read_text().split() == ["boot", first]
    world.commit(world.a, "two", config__txt="value = 6\n")
    world.push(world.a)
    assert main(world.upgrade_args("--mode", "test", "--trial-command", trial)) == 0
    assert trial_log.read_text().split() == ["boot", first]


def test_local_commits_ahead_are_up_to_date(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Unpushed local commits with nothing new upstream: up to date, nothing rewritten or built."""
    local = world.commit(world.b, "local only", other__txt="mine\n")
    assert main(world.upgrade_args()) == 0
    assert world.head(world.b) == local and world.builds() == []
    assert "local commits not pushed yet" in capsys.readouterr().out


# --- conflicts ---------------------------------------------------------------------------------


def make_conflict(world: World, kind: str) -> tuple[str, str]:
    """Remote and B both change config.txt (content) or B deletes what A changes (modify/delete)."""
    remote = world.commit(world.a, "remote change", config__txt="value = remote\n")
    world.push(world.a)
    if kind == "content":
        local = world.commit(world.b, "local change", config__txt="value = local\n")
    else:
        local = world.commit(world.b, "local delete", config__txt=None)
    return remote, local


@pytest.mark.parametrize("kind", ["content", "modify-delete"])
def test_conflict_abort_changes_nothing(world: World, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Strategy abort: exit 8, branch and tree exactly as before, local commits also backed up."""
    _remote, local = make_conflict(world, kind)
    assert main(world.upgrade_args("--strategy", "abort")) == ExitCode.CONFLICT
    errors = error_lines(capsys)
    assert len(errors) == 1 and "conflict" in errors[0] and "config.txt" in errors[0]
    assert world.head(world.b) == local and run_git(world.b, "status", "--porcelain") == ""
    assert world.builds() == []
    saved = backups.list_backups(world.b)
    assert [b.commit for b in saved] == [local] and saved[0].name.endswith("-local")
    world.assert_nothing_lost()


@pytest.mark.parametrize("kind", ["content", "modify-delete"])
def test_conflict_prefer_remote_takes_theirs(world: World, kind: str) -> None:
    """Strategy prefer-remote: the remote's configuration wins; our commits stay reachable as backups."""
    remote, _local = make_conflict(world, kind)
    assert main(world.upgrade_args("--strategy", "prefer-remote")) == 0
    assert (world.b / "config.txt").read_text() == "value = remote\n"
    assert is_ancestor(world.b, remote, "HEAD")
    assert world.marker.read_text() == "value = remote\n"
    world.made.add(world.head(world.b))
    world.assert_nothing_lost()


@pytest.mark.parametrize("kind", ["content", "modify-delete"])
def test_conflict_prefer_local_keeps_ours(world: World, kind: str) -> None:
    """Strategy prefer-local: our configuration wins, the remote's commits are merged (pushable)."""
    remote, _local = make_conflict(world, kind)
    assert main(world.upgrade_args("--strategy", "prefer-local")) == 0
    if kind == "content":
        assert (world.b / "config.txt").read_text() == "value = local\n"
    else:
        assert not (world.b / "config.txt").exists()
    assert is_ancestor(world.b, remote, "HEAD")  # the next push is a fast-forward
    world.made.add(world.head(world.b))
    world.assert_nothing_lost()


def test_diverged_without_conflict_rebases(world: World) -> None:
    """Local and remote commits on different files: rebased, both changes present, originals backed up."""
    world.commit(world.a, "remote", config__txt="value = 7\n")
    world.push(world.a)
    local = world.commit(world.b, "local", other__txt="local edit\n")
    assert main(world.upgrade_args()) == 0
    assert (world.b / "config.txt").read_text() == "value = 7\n"
    assert (world.b / "other.txt").read_text() == "local edit\n"
    assert [b.commit for b in backups.list_backups(world.b)] == [local]
    world.assert_nothing_lost()


# --- push rejection, unreachable remotes -------------------------------------------------------


def test_push_rejected_stays_local_until_upgrade(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A rejected push is never forced; upgrade rebases the commit and the next commit --push sends it."""
    world.commit(world.a, "remote moved", config__txt="value = 8\n")
    world.push(world.a)
    before = run_git(world.remote, "rev-parse", "dev")
    (world.b / "other.txt").write_text("b's change\n")
    args = ["--state-dir", str(world.state_b), "commit", "--repo", str(world.b), "--push"]
    assert main(args) == ExitCode.CONFLICT
    errors = error_lines(capsys)
    assert len(errors) == 1 and "rejected" in errors[0] and "next `bootguard upgrade` reconciles" in errors[0]
    local = world.head(world.b)
    world.made.add(local)
    assert run_git(world.remote, "rev-parse", "dev") == before
    assert run_git(world.b, "log", "-1", "--format=%s") == f"Auto-commit from {os.uname().nodename}"
    assert main(world.upgrade_args()) == 0
    assert main(args) == 0
    assert "pushed to origin" in capsys.readouterr().out
    assert run_git(world.remote, "rev-parse", "dev") == world.head(world.b)
    world.assert_nothing_lost()


@pytest.mark.parametrize("url", ["/nonexistent/remote.git", "file:///nonexistent"])
def test_unreachable_remote(world: World, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Offline remote: upgrade and push fail with one line naming the remote; the commit stays."""
    run_git(world.b, "remote", "set-url", "origin", url)
    head = world.head(world.b)
    assert main(world.upgrade_args()) == ExitCode.FAILURE
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"cannot reach remote 'origin' ({url})" in errors[0]
    assert world.head(world.b) == head
    (world.b / "other.txt").write_text("offline edit\n")
    assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.b), "--push"]) == 1
    errors = error_lines(capsys)
    assert len(errors) == 1 and "stays local" in errors[0]
    assert run_git(world.b, "status", "--porcelain") == ""  # committed locally
    assert world.events(world.state_b)[-1]["kind"] == "commit"


def test_remote_must_be_a_configured_name(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """--remote given as a URL is refused before anything is fetched (no tracking ref to guard)."""
    world.commit(world.a, "new", config__txt="value = 16\n")
    world.push(world.a)
    head = world.head(world.b)
    assert main([*world.upgrade_args(), "--remote", str(world.remote)]) == ExitCode.USAGE
    assert "not a remote configured in" in error_lines(capsys)[0]
    assert world.head(world.b) == head


# --- unusual repository states ----------------------------------------------------------------


def test_dirty_tree_is_saved_and_restored(world: World) -> None:
    """Uncommitted edits are saved as a backup commit, the build sees git's tree, the edits come back."""
    world.commit(world.a, "remote", config__txt="value = 9\n")
    world.push(world.a)
    (world.b / "other.txt").write_text("work in progress\n")
    (world.b / "notes.txt").write_text("untracked\n")
    assert main(world.upgrade_args()) == 0
    assert (world.b / "config.txt").read_text() == "value = 9\n"
    assert (world.b / "other.txt").read_text() == "work in progress\n"
    assert (world.b / "notes.txt").read_text() == "untracked\n"
    assert run_git(world.b, "diff", "--cached", "--name-only") == ""
    (dirty,) = [b for b in backups.list_backups(world.b) if b.name.endswith("-dirty")]
    assert run_git(world.b, "show", f"{dirty.ref}:notes.txt") == "untracked"
    assert run_git(world.b, "stash", "list") == ""


def test_dirty_tree_conflict_keeps_edits_in_backup(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Edits that conflict with the new commit: upgraded, exit 8, edits saved in a backup ref."""
    new = world.commit(world.a, "remote", config__txt="value = 10\n")
    world.push(world.a)
    (world.b / "config.txt").write_text("value = my edit\n")
    assert main(world.upgrade_args()) == ExitCode.CONFLICT
    error = error_lines(capsys)[0]
    assert "uncommitted changes conflict" in error and "refs/bootguard/backup/" in error
    assert world.head(world.b) == new and run_git(world.b, "status", "--porcelain") == ""
    (dirty,) = [b for b in backups.list_backups(world.b) if b.name.endswith("-dirty")]
    assert run_git(world.b, "show", f"{dirty.ref}:config.txt") == "value = my edit"


def test_detached_head_is_refused(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Detached HEAD: both commands refuse with one line; nothing changes."""
    run_git(world.b, "checkout", "-q", "--detach")
    assert main(world.upgrade_args()) == 1
    assert "HEAD is detached" in error_lines(capsys)[0]
    assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.b)]) == 1
    assert "HEAD is detached" in error_lines(capsys)[0]


def test_shallow_clone_is_refused(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A shallow clone cannot prove ancestry: upgrade refuses and says how to unshallow."""
    shallow = world.tmp / "shallow"
    run_git(world.tmp, "clone", "-q", "--depth", "1", "-b", "dev", f"file://{world.remote}", str(shallow))
    args = ["--state-dir", str(world.state_b), "upgrade", "--repo", str(shallow)]
    assert main(args) == 1
    captured = capsys.readouterr().err
    assert "shallow clone" in captured and "fetch --unshallow" in captured


def test_unborn_branch(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh `git init`: upgrade refuses clearly; commit makes the first commit."""
    fresh = world.tmp / "fresh"
    run_git(world.tmp, "init", "-q", "-b", "dev", str(fresh))
    World.configure(fresh, "fresh")
    run_git(fresh, "remote", "add", "origin", str(world.remote))
    assert main(["--state-dir", str(world.state_b), "upgrade", "--repo", str(fresh)]) == 1
    assert "has no commits yet (unborn)" in error_lines(capsys)[0]
    (fresh / "configuration.nix").write_text("{ }\n")
    assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(fresh)]) == 0
    assert run_git(fresh, "log", "--format=%s") == f"Auto-commit from {os.uname().nodename}"


def test_planted_secret_is_refused(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A private key in the tree: commit refuses naming the file, stages nothing, deletes nothing."""
    key = world.b / "hosts" / "id_ed25519"
    key.parent.mkdir()
    key.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    (world.b / "config.txt").write_text("value = 11\n")
    head = world.head(world.b)
    assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.b), "--push"]) == 1
    out = capsys.readouterr().err
    assert "hosts/id_ed25519 (OpenSSH private key line 1)" in out and ".gitignore" in out
    assert world.head(world.b) == head
    assert run_git(world.b, "diff", "--cached", "--name-only") == ""
    assert key.exists()


def test_nothing_to_commit_is_success(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A clean tree: exit 0 and a message saying there was nothing to commit."""
    assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.b)]) == 0
    assert "nothing to commit" in capsys.readouterr().out


# --- history rewriting and signatures ----------------------------------------------------------


def test_force_push_refused_unless_allowed(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Rewritten upstream history is refused (and stays refused) until --allow-force-push."""
    first = world.commit(world.a, "one", config__txt="value = 12\n")
    world.push(world.a)
    assert main(world.upgrade_args()) == 0
    run_git(world.a, "reset", "-q", "--hard", "HEAD~1")
    rewritten = world.commit(world.a, "rewritten", config__txt="value = 13\n")
    world.push(world.a, "--force")
    for _ in range(2):
        assert main(world.upgrade_args()) == ExitCode.ROLLED_BACK
        assert "force-push" in error_lines(capsys)[0]
        assert world.head(world.b) == first
    assert main(world.upgrade_args("--allow-force-push")) == 0
    assert world.head(world.b) == rewritten and world.marker.read_text() == "value = 13\n"
    assert any(b.commit == first for b in backups.list_backups(world.b))
    world.assert_nothing_lost()


def test_signature_verification(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """--verify-signatures refuses an unsigned commit and accepts an SSH-signed one."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is needed to make an SSH signing key")
    key = world.tmp / "signing"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    signers = world.tmp / "allowed_signers"
    signers.write_text(f"a@example.test {(world.tmp / 'signing.pub').read_text()}")
    run_git(world.b, "config", "gpg.format", "ssh")
    run_git(world.b, "config", "gpg.ssh.allowedSignersFile", str(signers))
    unsigned = world.commit(world.a, "unsigned", config__txt="value = 14\n")
    world.push(world.a)
    assert main(world.upgrade_args("--verify-signatures")) == ExitCode.ROLLED_BACK
    assert f"commit {unsigned[:12]} has no valid signature" in error_lines(capsys)[0]
    run_git(world.a, "config", "gpg.format", "ssh")
    run_git(world.a, "config", "user.signingkey", str(key))
    run_git(world.a, "config", "commit.gpgsign", "true")
    signed = world.commit(world.a, "signed", config__txt="value = 15\n")
    world.push(world.a)
    # The unsigned commit is still in the range new to B, so B still refuses...
    assert main(world.upgrade_args("--verify-signatures")) == ExitCode.ROLLED_BACK
    # ...until the history B would take is all signed: re-sign the unsigned one upstream.
    run_git(world.a, "reset", "-q", "--hard", "HEAD~2")
    again = world.commit(world.a, "signed again", config__txt="value = 15\n")
    world.push(world.a, "--force")
    assert main(world.upgrade_args("--verify-signatures", "--allow-force-push")) == 0
    assert world.head(world.b) == again
    assert signed in world.made


# --- locking, ownership, CLI ---------------------------------------------------------------------


def test_overlapping_runs_are_refused(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """While one run holds the lock, another fails naming the holder instead of running concurrently."""
    monkeypatch.setattr(locks, "DEFAULT_WAIT", 0.2)
    with locks.GitopsLock(world.state_b, "upgrade"):
        assert (
            main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.b)])
            == ExitCode.ENVIRONMENT
        )
    assert f"held by bootguard upgrade (pid {os.getpid()}" in error_lines(capsys)[0]
    assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.b)]) == 0


@pytest.fixture
def other_user() -> object:
    if os.geteuid() != 0:
        pytest.skip("creating a second user needs root (useradd)")
    name = f"bgt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    import pwd

    yield pwd.getpwnam(name)
    subprocess.run(["userdel", name], check=True)


def test_repo_owned_by_another_user_runs_git_as_owner(world: World, other_user: object) -> None:
    """As root on a user's repository, git (and its hooks) run as the owner; no root-owned files appear."""
    import pwd

    assert isinstance(other_user, pwd.struct_passwd)
    uid, gid = other_user.pw_uid, other_user.pw_gid
    opened: list[tuple[Path, int]] = []
    for parent in world.tmp.parents:  # let the user reach tmp_path (pytest makes it 0700)
        if parent == Path("/tmp") or parent == Path("/"):
            break
        opened.append((parent, parent.stat().st_mode))
        parent.chmod(parent.stat().st_mode | 0o011)
    try:
        world.tmp.chmod(0o755)
        hook_out = world.tmp / "hook-uid"
        hook_out.touch()
        hook_out.chmod(0o666)
        hook = world.b / ".git" / "hooks" / "pre-commit"
        hook.write_text(f"#!/bin/sh\necho $(id -u) $(id -g) > {hook_out}\n")
        hook.chmod(0o755)
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(world.b)], check=True)
        (world.b / "config.txt").write_text("value = owned\n")
        os.chown(world.b / "config.txt", uid, gid)
        assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.b)]) == 0
        assert hook_out.read_text().strip() == f"{uid} {gid}"
        root_owned = [
            p for p in (world.b / ".git").rglob("*") if (p.lstat().st_uid, p.lstat().st_gid) != (uid, gid)
        ]
        assert root_owned == []
        assert run_git(world.b, "-c", f"safe.directory={world.b}", "log", "-1", "--format=%s").startswith(
            "Auto-commit from"
        )
    finally:
        for parent, mode in opened:
            parent.chmod(mode)


def test_cli_process_reports_one_line_and_exit_code(world: World) -> None:
    """The real `python -m bootguard` process: exit 7 and one error line (plus a hint), no traceback."""
    world.commit(world.a, "break", config__txt="value = BROKEN\n")
    world.push(world.a)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "bootguard", *world.upgrade_args("--json")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == ExitCode.ROLLED_BACK
    lines = done.stderr.splitlines()
    assert [ln.split(":")[1] for ln in lines] == [" error", " hint"], done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "failed" and report["exit_code"] == 7
