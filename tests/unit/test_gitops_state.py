"""GitOps options, the gitops.json record, the lock and backup restore steps (no git needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.errors import EnvironmentProblem, StateError, UsageError
from bootguard.gitops import locks, noop, values
from bootguard.gitops.backups import Backup, restore_steps
from bootguard.gitops.record import FailedCommit, GitopsRecord, RepoRecord
from bootguard.gitops.values import Mode, Strategy, UpgradeOptions


def test_commands_are_split_never_shelled() -> None:
    """Command strings become argv; shell syntax stays literal text; placeholders fill in per argument."""
    opts = UpgradeOptions.from_strings(
        repo="/r", state_dir="/s", build_command="nix build '.#{host}' ; rm -rf /", switch_command=None
    )
    assert opts.build == ("nix", "build", ".#{host}", ";", "rm", "-rf", "/")
    assert values.expand(("x{host}y", "{mode}", "{}", "{unknown}"), {"host": "h", "mode": "boot"}) == [
        "xhy",
        "boot",
        "{}",
        "{unknown}",
    ]
    assert opts.strategy is Strategy.ABORT and opts.mode is Mode.SWITCH and opts.branch == "dev"


def test_unbalanced_quotes_name_the_option() -> None:
    """A command string shlex cannot split is a usage error naming the option."""
    with pytest.raises(UsageError, match="--validate-command"):
        UpgradeOptions.from_strings(repo="/r", state_dir="/s", validate_command="check 'unclosed")


def test_only_boot_and_switch_stage_a_trial() -> None:
    """mode test activates without a new boot default, so no trial is staged."""
    assert [m.value for m in Mode if m.stages_boot_entry] == ["switch", "boot"]


def test_record_round_trip(tmp_path: Path) -> None:
    """gitops.json survives a save/load round trip and is private (0600)."""
    rec = GitopsRecord().with_repo(
        "/r", RepoRecord(FailedCommit("a" * 40, "build", "boom", "2025-01-01"), "b" * 40)
    )
    rec.save(tmp_path)
    assert GitopsRecord.load(tmp_path) == rec
    assert (tmp_path / "gitops.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "gitops.json").read_text())["version"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"format": "other"}', "not a bootguard-gitops file"),
        (b'{"format": "bootguard-gitops", "version": 9, "repos": {}}', "version 9 is not supported"),
        (b'{"format": "bootguard-gitops", "version": 1, "repos": {"/r": {"failed": 3}}}', "'failed' must be"),
    ],
)
def test_bad_record_is_an_error_not_a_reset(tmp_path: Path, content: bytes, message: str) -> None:
    """A corrupt, foreign or newer gitops.json is refused with its path, never silently emptied."""
    path = tmp_path / "gitops.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(StateError, match=message):
        GitopsRecord.load(tmp_path)
    assert path.read_bytes() == content


def test_stamped_head_names_the_last_good_runs_head_for_that_repository_only(tmp_path: Path) -> None:
    """What lets upgrade/commit skip the failed-at-boot HEAD check: the HEAD a good run left, per repo."""
    assert noop.stamped_head(str(tmp_path), "/r") is None
    noop.write(str(tmp_path), "/r", "a" * 40, "b" * 40)
    assert noop.stamped_head(str(tmp_path), "/r") == "a" * 40
    assert noop.stamped_head(str(tmp_path), "/other") is None
    (tmp_path / noop.STAMP).write_bytes(b"/r \xff\n")
    assert noop.stamped_head(str(tmp_path), "/r") is None
    # A stamp of a version before the failed-at-boot check ("REPO HEAD REMOTE") vouches for nothing.
    (tmp_path / noop.STAMP).write_text(f"/r {'a' * 40} {'b' * 40}\n")
    assert noop.stamped_head(str(tmp_path), "/r") is None


def test_missing_record_is_empty(tmp_path: Path) -> None:
    """No gitops.json yet: nothing failed, nothing deployed."""
    assert GitopsRecord.load(tmp_path).get("/r") == RepoRecord()


@given(st.text(min_size=1, max_size=30), st.text(max_size=60))
def test_record_parse_accepts_what_it_writes(repo: str, reason: str) -> None:
    """Any repository path and reason round-trip through the JSON form."""
    rec = GitopsRecord({repo: RepoRecord(FailedCommit("c" * 40, "validate", reason, "t"), None, None)})
    assert GitopsRecord.parse(rec.to_bytes(), "x") == rec


def test_lock_excludes_a_second_run(tmp_path: Path) -> None:
    """A second holder fails after the wait, naming the first; after release it gets the lock."""
    busy = rf"held by bootguard upgrade \(pid {os.getpid()}"
    with (
        locks.GitopsLock(tmp_path, "upgrade"),
        pytest.raises(EnvironmentProblem, match=busy),
        locks.GitopsLock(tmp_path, "commit", wait=0.05),
    ):
        pass
    with locks.GitopsLock(tmp_path, "commit", wait=0):
        assert (tmp_path / "gitops.lock").read_text().split()[:2] == [str(os.getpid()), "commit"]


def test_lock_refuses_a_symlink(tmp_path: Path) -> None:
    """A planted symlink at the lock path is refused, not followed."""
    (tmp_path / "gitops.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateError, match="symbolic link"), locks.GitopsLock(tmp_path, "upgrade"):
        pass
    assert not (tmp_path / "elsewhere").exists()


def test_restore_steps_are_plain_git() -> None:
    """Restore instructions use git branch / update-ref for commits and checkout for dirty snapshots."""
    local = Backup("20250101T000000Z-local", "a" * 40, "2025-01-01T00:00:00Z", "x")
    dirty = Backup("20250101T000000Z-dirty", "b" * 40, "2025-01-01T00:00:00Z", "x")
    steps = restore_steps("/etc/nixos", local, "dev")
    ref = "refs/bootguard/backup/20250101T000000Z-local"
    assert f"git -C /etc/nixos branch restored-20250101T000000Z-local {ref}" in steps[1]
    assert any("update-ref refs/heads/dev refs/bootguard/backup/20250101T000000Z-local" in s for s in steps)
    assert any(
        "checkout refs/bootguard/backup/20250101T000000Z-dirty -- ." in s
        for s in restore_steps("/r", dirty, "dev")
    )


def test_history_round_trip_and_cap(tmp_path: Path) -> None:
    """C2: verdicts survive save/load in order, newest last, at most MAX_HISTORY kept."""
    from bootguard.gitops.record import MAX_HISTORY, CommitVerdict, StagedTrial

    rec = RepoRecord(deployed="b" * 40, staged=StagedTrial("c" * 40, "d" * 40, "2025-01-01"), trial_seq=7)
    for i in range(MAX_HISTORY + 3):
        rec = rec.with_verdict(
            CommitVerdict(f"{i:040x}", "failed" if i % 2 else "blessed", "boot", "panic", "t")
        )
    assert len(rec.history) == MAX_HISTORY and rec.history[-1].commit == f"{MAX_HISTORY + 2:040x}"
    GitopsRecord().with_repo("/r", rec).save(tmp_path)
    back = GitopsRecord.load(tmp_path).get("/r")
    assert back == rec
    assert back.last_verdict(f"{MAX_HISTORY + 1:040x}") == rec.history[-2]


def test_record_written_before_history_still_loads(tmp_path: Path) -> None:
    """A gitops.json from before C2 (no history/staged/trial_seq keys) loads with an empty history."""
    old = {
        "format": "bootguard-gitops",
        "version": 1,
        "repos": {"/r": {"failed": None, "deployed": "b" * 40, "deployed_at": "2025-01-01"}},
    }
    (tmp_path / "gitops.json").write_text(json.dumps(old))
    os.chmod(tmp_path / "gitops.json", 0o600)
    rec = GitopsRecord.load(tmp_path).get("/r")
    assert rec == RepoRecord(None, "b" * 40, "2025-01-01") and rec.history == () and rec.trial_seq is None


def test_bad_history_is_an_error() -> None:
    """A history entry with an unknown outcome is refused, naming the file."""
    doc = {
        "format": "bootguard-gitops",
        "version": 1,
        "repos": {
            "/r": {"history": [{"commit": "a", "outcome": "maybe", "stage": "boot", "cause": "", "at": ""}]}
        },
    }
    with pytest.raises(StateError, match=r"gitops\.json.*maybe"):
        GitopsRecord.parse(json.dumps(doc).encode(), "gitops.json")
