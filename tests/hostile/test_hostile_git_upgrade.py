"""Hostile repository states against `bootguard upgrade` on real git (issue 15 items 5, 6 and the
GitOps clear-error items): staged-vs-work-tree edits, untracked empty directories, untracked
keys, stopped cherry-pick sequences, merges in progress, nested repositories, a second state
directory on the same repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootguard.cli.main import main
from bootguard.errors import ExitCode
from bootguard.gitops import backups, locks
from tests.hostile.secret_corpus import CORPUS
from tests.integration.test_gitops import World, error_lines, run_git
from tests.integration.test_gitops import world as world  # noqa: PLC0414  (the fixture)

pytestmark = pytest.mark.integration

KEY = CORPUS["openssh-private-key"][1].decode()
TOKEN = CORPUS["github-classic-token"][1].decode()


def _remote_moves(world: World) -> str:
    sha = world.commit(world.a, "remote", config__txt="value = 9\n")
    world.push(world.a)
    return sha


def _all_refs_text(repo: Path) -> str:
    return run_git(repo, "log", "-p", "--all", "--binary")


def test_staged_version_differing_from_work_tree_is_kept_in_a_ref(world: World) -> None:
    _remote_moves(world)
    (world.b / "other.txt").write_text("staged version\n")
    run_git(world.b, "add", "other.txt")
    (world.b / "other.txt").write_text("work-tree version\n")
    assert main(world.upgrade_args()) == 0
    saved = {
        b.name.rsplit("-", 1)[-1] if b.name.endswith("-index") else "tree": b
        for b in backups.list_backups(world.b)
        if "-dirty" in b.name
    }
    assert run_git(world.b, "show", f"{saved['index'].ref}:other.txt") == "staged version"
    assert run_git(world.b, "show", f"{saved['tree'].ref}:other.txt") == "work-tree version"
    assert (world.b / "other.txt").read_text() == "work-tree version\n"


def test_untracked_empty_directories_come_back(world: World) -> None:
    _remote_moves(world)
    (world.b / "spool/incoming/new").mkdir(parents=True)
    (world.b / "empty").mkdir()
    (world.b / "notes.txt").write_text("untracked\n")
    assert main(world.upgrade_args()) == 0
    assert (world.b / "spool/incoming/new").is_dir() and (world.b / "empty").is_dir()
    assert (world.b / "notes.txt").read_text() == "untracked\n"
    saved = [e for e in world.events(world.state_b) if e.get("kind") == "backup-saved"]
    assert any("untracked empty directories" in str(e.get("message")) for e in saved)


def test_untracked_key_is_never_saved_in_a_backup_ref(world: World) -> None:
    """A dirty-tree backup obeys the secret scan: the key stays out of every ref, stays on disk,
    and the event says so. A tracked file edited to hold a token is treated alike."""
    _remote_moves(world)
    (world.b / "id_ed25519").write_text(KEY)
    os.chmod(world.b / "id_ed25519", 0o600)
    (world.b / "other.txt").write_text("untouched\n" + TOKEN)
    (world.b / "notes.txt").write_text("harmless edit\n")
    assert main(world.upgrade_args()) == 0
    refs = _all_refs_text(world.b)
    assert "OPENSSH PRIVATE KEY" not in refs and TOKEN.strip().split("=")[-1] not in refs
    assert (world.b / "id_ed25519").read_text() == KEY
    assert os.stat(world.b / "id_ed25519").st_mode & 0o777 == 0o600
    assert (world.b / "other.txt").read_text() == "untouched\n" + TOKEN
    assert (world.b / "notes.txt").read_text() == "harmless edit\n"
    (dirty,) = [b for b in backups.list_backups(world.b) if b.name.endswith("-dirty")]
    assert run_git(world.b, "show", f"{dirty.ref}:notes.txt") == "harmless edit"
    saved = [e for e in world.events(world.state_b) if e.get("kind") == "backup-saved"]
    message = " ".join(str(e.get("message")) for e in saved)
    assert "left out of the snapshot because they hold secrets: id_ed25519, other.txt" in message


def test_stopped_multi_commit_cherry_pick_is_noticed(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cherry-pick sequence stopped at a conflict, resolved with a plain `git commit`: no
    CHERRY_PICK_HEAD any more, but the sequencer still has work; upgrade refuses, naming it."""
    _remote_moves(world)
    run_git(world.b, "switch", "-q", "-c", "side")
    c1 = world.commit(world.b, "side 1", other__txt="side one\n")
    c2 = world.commit(world.b, "side 2", notes__txt="side two\n")
    run_git(world.b, "switch", "-q", "dev")
    world.commit(world.b, "local", other__txt="local change\n")
    run_git(world.b, "cherry-pick", c1, c2, check=False)  # stops at c1 (conflict)
    (world.b / "other.txt").write_text("resolved\n")
    run_git(world.b, "add", "other.txt")
    run_git(world.b, "commit", "-q", "--no-edit")
    assert (world.b / ".git/sequencer").is_dir()
    assert main(world.upgrade_args()) == 1
    err = capsys.readouterr().err
    assert "stopped multi-commit cherry-pick or revert is in progress" in err
    assert "cherry-pick --abort" in err


@pytest.mark.parametrize(
    ("start", "expect"),
    [("merge", "merge --abort"), ("rebase", "rebase --abort"), ("cherry-pick", "cherry-pick --abort")],
)
def test_hint_names_the_right_abort(
    world: World, capsys: pytest.CaptureFixture[str], start: str, expect: str
) -> None:
    _remote_moves(world)
    run_git(world.b, "switch", "-q", "-c", "side")
    side = world.commit(world.b, "side", other__txt="side\n")
    run_git(world.b, "switch", "-q", "dev")
    world.commit(world.b, "local", other__txt="local\n")
    args = {"merge": ["merge", "side"], "rebase": ["rebase", "side"], "cherry-pick": ["cherry-pick", side]}[
        start
    ]
    run_git(world.b, *args, check=False)
    assert main(world.upgrade_args()) == 1
    err = capsys.readouterr().err
    assert expect in err
    assert [w for w in ("merge --abort", "rebase --abort", "cherry-pick --abort") if w in err] == [expect]


def test_untracked_nested_repository_does_not_block_upgrade(world: World) -> None:
    new = _remote_moves(world)
    nested = world.b / "vendor/tool"
    nested.mkdir(parents=True)
    run_git(nested, "init", "-q")
    (nested / "file").write_text("nested work\n")
    assert main(world.upgrade_args()) == 0
    assert world.head(world.b) == new
    assert (nested / "file").read_text() == "nested work\n"
    assert (nested / ".git").is_dir()


def test_lock_is_per_repository(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run on the same repository from another state directory waits, then refuses clearly."""
    monkeypatch.setattr(locks, "DEFAULT_WAIT", 0.2)
    _remote_moves(world)
    with locks.GitopsLock(world.tmp / "other-state", "upgrade", repo=world.b):
        assert main(world.upgrade_args()) == ExitCode.ENVIRONMENT
        assert "is in use by another bootguard run" in error_lines(capsys)[0]
        # Another repository is not blocked by it.
        assert main(["--state-dir", str(world.state_b), "commit", "--repo", str(world.a)]) == 0
    assert main(world.upgrade_args()) == 0


_EDITS = st.fixed_dictionaries(
    {
        "staged": st.booleans(),
        "unstaged": st.booleans(),
        "untracked": st.booleans(),
        "empty_dir": st.booleans(),
        "deleted": st.booleans(),
        "key": st.booleans(),
    }
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=_EDITS)
def test_no_edit_is_ever_lost(tmp_path_factory: pytest.TempPathFactory, edits: dict[str, bool]) -> None:
    """Any mix of dirty states: after the upgrade every edit is in the tree or in a backup ref."""
    world = World(tmp_path_factory.mktemp("w"))
    _remote_moves(world)
    b = world.b
    if edits["staged"]:
        (b / "other.txt").write_text("staged\n")
        run_git(b, "add", "other.txt")
    if edits["unstaged"]:
        (b / "other.txt").write_text("unstaged\n")
    if edits["untracked"]:
        (b / "new.txt").write_text("new\n")
    if edits["empty_dir"]:
        (b / "d/e").mkdir(parents=True)
    if edits["deleted"]:
        (b / "build.sh").rename(b / "build.sh.moved")
    if edits["key"]:
        (b / "secret.key").write_text(KEY)
    before = {p: p.read_text() for p in b.rglob("*") if p.is_file() and ".git" not in p.parts}
    code = main(world.upgrade_args())
    assert code in (0, ExitCode.CONFLICT)
    refs = _all_refs_text(b)
    for path, text in before.items():
        rel = path.relative_to(b).as_posix()
        on_disk = path.read_text() if path.exists() else None
        assert on_disk == text or (text.strip() and text.strip() in refs and rel != "secret.key"), rel
    if edits["staged"]:
        assert "+staged" in refs
    if edits["empty_dir"]:
        assert (b / "d/e").is_dir()
    if edits["key"]:
        assert "OPENSSH PRIVATE KEY" not in refs and (b / "secret.key").read_text() == KEY
