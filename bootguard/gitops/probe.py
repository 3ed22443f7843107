"""The lean first step of `bootguard upgrade`: is there anything new on the remote at all?

Two git processes: `git rev-parse` (HEAD, branch, shallowness, git dir, in one call) and
`git ls-remote` for the one branch. `ls-remote` asks the remote the same question `git fetch`
would, without negotiating, writing refs or starting `git maintenance --auto`, so "nothing new"
(the common timer run) costs less than a bare fetch. Only when the remote moved does `upgrade`
fetch, and only then are attrs and the rest of the package imported. Standard library only.
"""

from __future__ import annotations

from bootguard.errors import GitOpsError
from bootguard.gitops import git
from bootguard.model._frozen import Frozen


class Probe(Frozen):
    """HEAD of the host's repository and the remote's commit for the branch."""

    __slots__ = ("head", "remote_commit")

    head: git.Head
    remote_commit: str

    def __init__(self, head: git.Head, remote_commit: str) -> None:
        self._init(head=head, remote_commit=remote_commit)

    @property
    def up_to_date(self) -> bool:
        return self.remote_commit == self.head.commit


def require_branch(
    g: git.Git, head: git.Head, branch: str, *, allow_unborn: bool = False, allow_shallow: bool = False
) -> None:
    """Refuse, with one line naming the repository, every state GitOps must not work on."""
    busy = head.in_progress_abort()
    if busy is not None:
        what, abort = busy
        raise GitOpsError(
            f"{g.repo}: {what} is in progress; bootguard leaves it alone",
            hint=f"finish or abort it first (e.g. {abort.replace('git ', f'git -C {g.repo} ', 1)})",
        )
    if head.ref is None:
        raise GitOpsError(
            f"{g.repo}: HEAD is detached at {(head.commit or '?')[:12]}, not on branch {branch!r}",
            hint=f"git -C {g.repo} switch {branch}",
        )
    if head.branch != branch:
        raise GitOpsError(
            f"{g.repo}: HEAD is on {head.ref}, not on branch {branch!r}",
            hint=f"git -C {g.repo} switch {branch}, or pass --branch {head.branch or head.ref}",
        )
    if head.commit is None and not allow_unborn:
        raise GitOpsError(
            f"{g.repo}: branch {branch!r} has no commits yet (unborn)",
            hint="clone the configuration repository instead of `git init`, or commit a first version",
        )
    if head.shallow and not allow_shallow:
        raise GitOpsError(
            f"{g.repo} is a shallow clone; upgrades need the full history to keep backups and detect "
            "force-pushes",
            hint=f"git -C {g.repo} fetch --unshallow",
        )


def probe(g: git.Git, remote: str, branch: str) -> Probe:
    """Check the repository's state and ask the remote for its commit (no fetch)."""
    head = git.head(g)
    require_branch(g, head, branch)
    remote_commit = git.ls_remote(g, remote, branch)
    if remote_commit is None:
        raise GitOpsError(f"remote {remote!r} ({git.remote_url(g, remote)}) has no branch {branch!r}")
    return Probe(head, remote_commit)
