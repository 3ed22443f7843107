"""`bootguard commit`: commit the host's configuration changes, refusing secrets, pushing without force.

The message is the user's format::

    Auto-commit from HOST

    Changes detected on 2025-01-01T12:00:00+01:00
    Host: HOST

A rejected push (the remote moved on) is never forced: the commit stays local, and the next
`bootguard upgrade` rebases it onto the remote (nothing is lost: see `integrate`), after which the
next `bootguard commit --push` pushes it even when there is nothing new to commit.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator

import attrs

from bootguard.errors import ConflictError, GitOpsError, RefusedError
from bootguard.gitops import backups, git, secrets
from bootguard.gitops.probe import require_branch


@attrs.frozen
class CommitResult:
    """What `bootguard commit` did."""

    repo: str
    branch: str
    commit: str | None  # the new commit; None when there was nothing to commit
    files: tuple[str, ...] = ()
    pushed: bool = False
    push_detail: str = ""
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        if self.commit is None:
            text = f"nothing to commit in {self.repo} (branch {self.branch})"
        else:
            text = (
                f"committed {len(self.files)} file(s) in {self.repo} as {self.commit[:12]} on {self.branch}"
            )
        if self.push_detail:
            text += f"; {self.push_detail}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "repo": self.repo,
            "branch": self.branch,
            "commit": self.commit,
            "files": list(self.files),
            "pushed": self.pushed,
            "push": self.push_detail,
            "warnings": list(self.warnings),
        }


def commit_message(host: str, when: str) -> str:
    return f"Auto-commit from {host}\n\nChanges detected on {when}\nHost: {host}\n"


def _iso_now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def commit_changes(
    g: git.Git,
    branch: str,
    *,
    push: bool,
    remote: str | None = None,
    host: str | None = None,
    clock: Callable[[], str] = _iso_now,
) -> CommitResult:
    """Commit every change in the work tree (after the secret scan) and push if asked.

    Everything happens in a temporary index: the work tree is staged into it, its blobs are
    scanned, and exactly that index is committed (hooks run as usual). The user's own index is
    replaced by it only after the commit succeeded, so a refusal or a failing pre-commit hook
    leaves nothing staged, and a file changed after the scan is simply not part of this commit.
    """
    head = git.head(g)
    require_branch(g, head, branch, allow_unborn=True, allow_shallow=True)
    remote = remote or git.config_get(g, f"branch.{branch}.remote") or "origin"
    scanner = secrets.scanner_for(g.repo)
    warnings = list(scanner.rules.warnings)
    with staging_index(g, head) as env:
        nested = git.nested_repositories(g, env=env)
        warnings += [f"{p}: a nested git repository, left out of the commit" for p in nested]
        git.add_all(g, env=env, exclude=nested)
        findings, entries = secrets.scan_index(g, head.commit, env, scanner)
        if not entries:
            result = CommitResult(g.repo, branch, None, warnings=tuple(warnings))
            return _push(g, remote, branch, result) if push and head.commit else result
        _refuse(g, findings)
        scanned_tree = g.run("write-tree", env=env).stdout.strip()
        host = host or os.uname().nodename
        sha = git.commit(g, commit_message(host, clock()), env={**(_identity(g, host) or {}), **env})
        if git.rev_parse(g, f"{sha}^{{tree}}") != _tree_id(g, scanned_tree):
            # A pre-commit hook staged more: scan what was really committed, undo it if needed.
            findings, entries = secrets.scan_index(g, head.commit, env, scanner)
            if findings:
                _undo(g, head, sha)
                _refuse(g, findings, after_hook=True)
        _install_index(g, head, env["GIT_INDEX_FILE"], warnings)
    result = CommitResult(g.repo, branch, sha, tuple(e.path for e in entries), warnings=tuple(warnings))
    return _push(g, remote, branch, result) if push else result


def _tree_id(g: git.Git, tree: str) -> str | None:
    return g.run("rev-parse", "--verify", "-q", f"{tree}^{{tree}}", check=False).stdout.strip() or None


def _refuse(g: git.Git, findings: list[secrets.Finding], *, after_hook: bool = False) -> None:
    if not findings:
        return
    listed = "; ".join(f"{f.describe()}{' ' + f.fingerprint if f.fingerprint else ''}" for f in findings)
    more = ""
    when = "a pre-commit hook staged secrets" if after_hook else "refusing to commit secrets"
    raise RefusedError(
        f"{when} in {g.repo}: {listed}{more}; nothing committed, nothing staged",
        hint=(
            "add the file to .gitignore, or encrypt it (sops --encrypt --in-place FILE; age -e); "
            f"if it is meant to be committed, add its path or fingerprint to {secrets.ALLOW_FILE}"
        ),
    )


def _undo(g: git.Git, head: git.Head, sha: str) -> None:
    """Take back a commit we just made (only if the branch still points at it)."""
    assert head.ref is not None
    if head.commit is None:
        g.run("update-ref", "-d", head.ref, sha)
    else:
        git.update_ref(g, head.ref, head.commit, old=sha, message="bootguard: commit refused")


@contextlib.contextmanager
def staging_index(g: git.Git, head: git.Head) -> Iterator[dict[str, str]]:
    """A private index holding HEAD, for `git add` and `git commit` to work in (env to pass)."""
    path = os.path.join(head.gitdir, "bootguard-commit.index")
    _unlink(path)
    env = {"GIT_INDEX_FILE": path}
    try:
        if head.commit is None:
            g.run("read-tree", "--empty", env=env)
        else:
            g.run("read-tree", head.commit, env=env)
        yield env
    finally:
        _unlink(path)


def _install_index(g: git.Git, head: git.Head, path: str, warnings: list[str]) -> None:
    """Make the committed index the repository's index, taking git's own `index.lock`."""
    index = os.path.join(head.gitdir, "index")
    lock = index + ".lock"
    try:
        os.link(path, lock)  # fails if someone holds index.lock: git's lock protocol
    except FileExistsError:
        g.run("read-tree", "HEAD", check=False)
        warnings.append(
            f"{lock} exists (another git command?); the index was reset to the new commit instead"
        )
        return
    os.replace(lock, index)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _identity(g: git.Git, host: str) -> dict[str, str] | None:
    """The owner's configured identity when there is one; else `bootguard@HOST` (a timer has no user)."""
    if git.config_get(g, "user.email") and git.config_get(g, "user.name"):
        return None
    env = backups.identity_env()
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = f"bootguard on {host}"
    return env


def _push(g: git.Git, remote: str, branch: str, result: CommitResult) -> CommitResult:
    sha = result.commit or git.rev_parse(g, "HEAD") or "?"
    try:
        outcome = git.push(g, remote, branch)
    except GitOpsError as exc:
        raise GitOpsError(f"{exc.message}; commit {sha[:12]} stays local and is pushed next time") from exc
    if outcome.rejected:
        raise ConflictError(
            f"push of {branch} to {remote} rejected ({outcome.reason}): the remote has commits this host "
            f"lacks; {sha[:12]} stays local, never force-pushed; the next `bootguard upgrade` reconciles",
            hint="run `bootguard upgrade`, then `bootguard commit --push` again",
        )
    if not outcome.ok:
        raise GitOpsError(f"push of {branch} to {remote} failed ({outcome.reason}); {sha[:12]} stays local")
    detail = f"{remote} already has it" if outcome.reason == "[up to date]" else f"pushed to {remote}"
    return attrs.evolve(result, pushed=True, push_detail=detail)
