"""`bootguard status` lists GitOps backups and the failed commit, from a real repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bootguard.gitops import backups, git
from bootguard.gitops.record import FailedCommit, GitopsRecord, RepoRecord
from tests.hosttree import HostTree


def _repo(path: Path) -> str:
    subprocess.run(["git", "init", "-q", "-b", "dev", str(path)], check=True)
    (path / "f").write_text("x\n")
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "-C", str(path), *env, "add", "f"], check=True)
    subprocess.run(["git", "-C", str(path), *env, "commit", "-qm", "local work"], check=True)
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_status_shows_backups_and_failed_commit(host: HostTree, tmp_path: Path) -> None:
    """A saved backup ref and a failed commit appear in status JSON and text, with restore steps."""
    repo = tmp_path / "repo"
    head = _repo(repo)
    saved = backups.save(git.Git.open(repo), head, "local")
    failed = FailedCommit("f" * 40, "build", "nix build failed", "2026-11-28T00:00:00Z")
    GitopsRecord({str(repo): RepoRecord(failed, head, None)}).save(host.state)
    host.add_entry("a.conf")
    status = host.cli_json("status")
    assert isinstance(status, dict)
    [g] = status["gitops"]
    assert g["failed"]["commit"] == "f" * 40
    assert [b["ref"] for b in g["backups"]] == [saved.ref]
    assert any("branch restored-" in step for step in g["backups"][0]["restore"])
    code, out, _ = host.cli("status")
    assert code == 0
    assert saved.ref in out and "not retried" in out
