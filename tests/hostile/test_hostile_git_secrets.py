"""Planted secrets against `bootguard commit`, on real git repositories (issue 15 item 5).

The catch rate over the planted corpus (tests/hostile/secret_corpus.py, 48 kinds) is measured
plain, after 1 MiB of padding, inside a tar and UTF-16 encoded, and must be 100 %; ordinary NixOS
files must pass. `CATCH_RATE_REPORT` prints the figures with `-s`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bootguard.errors import GitOpsError, RefusedError
from bootguard.gitops import git, secrets
from bootguard.gitops.commit import commit_changes
from tests.hostile.secret_corpus import BINARY_KINDS, CORPUS, ORDINARY, SOPS_YAML, in_tar, padded, utf16

pytestmark = pytest.mark.integration


def sh(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(tmp_path: Path, name: str = "repo") -> Path:
    repo = tmp_path / name
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    sh(repo, "config", "user.email", "t@example.org")
    sh(repo, "config", "user.name", "t")
    (repo / "README.md").write_text("config\n")
    (repo / ".sops.yaml").write_text(SOPS_YAML)
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "init")
    return repo


def put(repo: Path, rel: str, data: bytes) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def commit(repo: Path) -> object:
    return commit_changes(git.Git.open(repo), "main", push=False, host="h")


def committed_files(repo: Path) -> set[str]:
    return set(sh(repo, "ls-tree", "-r", "--name-only", "HEAD").split())


def _variants() -> dict[str, dict[str, tuple[str, bytes]]]:
    out: dict[str, dict[str, tuple[str, bytes]]] = {"plain": dict(CORPUS)}
    out["padded-1MiB"] = {k: (p, padded(c)) for k, (p, c) in CORPUS.items() if k not in BINARY_KINDS}
    out["tar"] = {k: (p + ".tar", in_tar(p, c)) for k, (p, c) in CORPUS.items()}
    out["utf16"] = {k: (p, utf16(c)) for k, (p, c) in CORPUS.items() if k not in BINARY_KINDS}
    return out


def test_corpus_has_at_least_30_kinds() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("variant", ["plain", "padded-1MiB", "tar", "utf16"])
def test_every_planted_secret_is_refused_through_commit(tmp_path: Path, variant: str) -> None:
    """All corpus files planted at once: the commit is refused, every kind is named, nothing is
    committed and nothing is left staged."""
    repo = make_repo(tmp_path)
    planted = _variants()[variant]
    for path, data in planted.values():
        put(repo, path, data)
    before = sh(repo, "rev-parse", "HEAD")
    with pytest.raises(RefusedError) as refused:
        commit(repo)
    message = refused.value.message
    caught = [k for k, (path, _d) in planted.items() if path in message]
    missed = sorted(set(planted) - set(caught))
    print(f"CATCH_RATE_REPORT {variant}: {len(caught)}/{len(planted)} kinds caught; missed {missed}")
    assert missed == []
    assert sh(repo, "rev-parse", "HEAD") == before
    assert sh(repo, "diff", "--cached", "--name-only") == ""


def test_each_kind_alone_is_refused(tmp_path: Path) -> None:
    """One kind at a time through the scanner (no masking by other files in the message)."""
    scanner = secrets.Scanner.from_texts(SOPS_YAML, None, None)
    missed = [k for k, (p, c) in CORPUS.items() if not scanner.scan_blob(p, c)]
    assert missed == []


def test_ordinary_nixos_configuration_is_committed(tmp_path: Path) -> None:
    """No false positives on an ordinary NixOS configuration (hashes, public keys, *File options,
    sops-encrypted files, @substitutions@)."""
    repo = make_repo(tmp_path)
    for rel, data in ORDINARY.items():
        put(repo, rel, data)
    result = commit(repo)
    assert result.commit is not None  # type: ignore[attr-defined]
    assert set(ORDINARY) <= committed_files(repo)


def test_file_changed_after_the_scan_is_not_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file rewritten with a key right after the scan: the commit holds what was scanned."""
    repo = make_repo(tmp_path)
    put(repo, "hosts/a.nix", b"{ }\n")
    real = secrets.scan_index
    key = CORPUS["openssh-private-key"][1]

    def scan_then_race(*args: object, **kwargs: object) -> object:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        put(repo, "hosts/a.nix", key)  # the race: a writer changes the file after the scan
        return found

    monkeypatch.setattr(secrets, "scan_index", scan_then_race)
    commit(repo)
    assert sh(repo, "show", "HEAD:hosts/a.nix") == "{ }\n"
    assert "OPENSSH" not in sh(repo, "log", "-p", "--all")
    assert (repo / "hosts/a.nix").read_bytes() == key  # the work tree keeps the late edit


def _fingerprint_of(message: str, path: str) -> str:
    after = message[message.index(path) :]
    return next(w for w in after.split() if w.startswith("sha256:")).rstrip(";")


def test_allow_list_by_path_and_by_fingerprint(tmp_path: Path) -> None:
    """The user's allow-list lets a meant-to-be-committed fixture through, and only that."""
    repo = make_repo(tmp_path)
    put(repo, "tests/fixture.pem", CORPUS["rsa-pem"][1])
    put(repo, "hosts/token.txt", CORPUS["github-classic-token"][1])
    put(repo, "hosts/other.txt", CORPUS["gitlab-token"][1])
    with pytest.raises(RefusedError) as refused:
        commit(repo)
    token = _fingerprint_of(refused.value.message, "hosts/token.txt")
    put(repo, secrets.ALLOW_FILE, f"# fixtures\ntests/*.pem\n{token}  # the CI token, revoked\n".encode())
    with pytest.raises(RefusedError) as still:
        commit(repo)
    assert "hosts/other.txt" in still.value.message
    assert "hosts/token.txt" not in still.value.message and "tests/fixture.pem" not in still.value.message
    (repo / "hosts/other.txt").unlink()
    commit(repo)
    assert {"tests/fixture.pem", "hosts/token.txt", secrets.ALLOW_FILE} <= committed_files(repo)


def test_failed_pre_commit_hook_leaves_nothing_staged(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    put(repo, "hosts/a.nix", b"{ }\n")
    sh(repo, "add", "README.md")  # nothing staged by the user
    with pytest.raises(GitOpsError, match="lint failed"):
        commit(repo)
    assert sh(repo, "diff", "--cached", "--name-only") == ""
    assert sh(repo, "status", "--porcelain") == "?? hosts/\n"


def test_pre_commit_hook_that_stages_a_secret_is_undone(tmp_path: Path) -> None:
    """A hook that `git add`s a key after the scan: the commit is taken back and refused."""
    repo = make_repo(tmp_path)
    put(repo, "late/key", CORPUS["openssh-private-key"][1])
    sh(repo, "config", "status.showUntrackedFiles", "no")
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\ngit add -f late/key\n")
    hook.chmod(0o755)
    (repo / ".gitignore").write_text("late/\n")
    before = sh(repo, "rev-parse", "HEAD")
    with pytest.raises(RefusedError, match="pre-commit hook staged secrets"):
        commit(repo)
    assert sh(repo, "rev-parse", "HEAD") == before


def test_nested_repository_does_not_block_commit(tmp_path: Path) -> None:
    """An untracked nested repository (even one without commits) is left out with a warning."""
    repo = make_repo(tmp_path)
    nested = repo / "vendor/tool"
    nested.mkdir(parents=True)
    sh(nested, "init", "-q")
    (nested / "x").write_text("x\n")
    put(repo, "hosts/a.nix", b"{ }\n")
    result = commit(repo)
    assert committed_files(repo) >= {"hosts/a.nix"}
    assert not any(p.startswith("vendor/") for p in committed_files(repo))
    assert any("vendor/tool" in w for w in result.warnings)  # type: ignore[attr-defined]


def test_commit_keeps_staging_of_unrelated_user_index_consistent(tmp_path: Path) -> None:
    """After a commit the user's index equals the new commit (git status clean)."""
    repo = make_repo(tmp_path)
    put(repo, "a.nix", b"{ }\n")
    os.chmod(repo / "a.nix", 0o644)
    commit(repo)
    assert sh(repo, "status", "--porcelain") == ""
