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

import datetime
import os
from collections.abc import Callable

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
    """Commit every change in the work tree (after the secret scan) and push if asked."""
    head = git.head(g)
    require_branch(g, head, branch, allow_unborn=True, allow_shallow=True)
    remote = remote or git.config_get(g, f"branch.{branch}.remote") or "origin"
    changes = git.status(g)
    rules = secrets.SopsRules.from_repo(g.repo)
    if not changes:
        result = CommitResult(g.repo, branch, None, warnings=rules.warnings)
        return _push(g, remote, branch, result) if push and head.commit else result
    paths = [c.path for c in changes if not c.deleted]
    findings = secrets.scan(g.repo, paths, rules)
    if findings:
        raise RefusedError(
            f"refusing to commit secrets in {g.repo}: {'; '.join(f.describe() for f in findings)}; "
            "nothing staged",
            hint="add the file to .gitignore, or encrypt it (sops --encrypt --in-place FILE; age -e)",
        )
    host = host or os.uname().nodename
    git.add_all(g)
    sha = git.commit(g, commit_message(host, clock()), env=_identity(g, host))
    result = CommitResult(g.repo, branch, sha, tuple(c.path for c in changes), warnings=rules.warnings)
    return _push(g, remote, branch, result) if push else result


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
