"""Backups: every commit and every uncommitted change is saved under `refs/bootguard/backup/` first.

Before any reset, rebase abort or clean, the commit about to be dropped (or a snapshot commit of
the dirty work tree, untracked files included) gets a ref `refs/bootguard/backup/<UTC time>-<what>`.
Refs, not the stash list or reflogs: refs are never expired by `git gc`, are listed by
`git for-each-ref`, and survive `git stash clear`. Restoring is plain git (`restore_steps`).
Standard library only.
"""

from __future__ import annotations

import os
import time

from bootguard.errors import GitOpsError
from bootguard.gitops import git
from bootguard.model._frozen import Frozen

PREFIX = "refs/bootguard/backup/"
BACKUP_IDENTITY = "bootguard"


class Backup(Frozen):
    """One saved backup ref."""

    __slots__ = ("commit", "created", "name", "subject")

    name: str  # the part after PREFIX, e.g. 20250101T120000Z-local
    commit: str
    created: str  # ISO 8601 from the commit's committer date
    subject: str

    def __init__(self, name: str, commit: str, created: str, subject: str) -> None:
        self._init(name=name, commit=commit, created=created, subject=subject)

    @property
    def ref(self) -> str:
        return PREFIX + self.name

    def to_dict(self) -> dict[str, str]:
        return {"ref": self.ref, "commit": self.commit, "created": self.created, "subject": self.subject}


def identity_env() -> dict[str, str]:
    """A fixed author for snapshot commits, so they work where no user.name/email is configured."""
    email = f"{BACKUP_IDENTITY}@{os.uname().nodename or 'localhost'}"
    return {
        "GIT_AUTHOR_NAME": BACKUP_IDENTITY,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": BACKUP_IDENTITY,
        "GIT_COMMITTER_EMAIL": email,
    }


def save(g: git.Git, commit: str, what: str, *, state_dir: str | None = None) -> Backup:
    """Create a new backup ref for `commit` (never overwriting one) and log a `backup-saved` event."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1, 1000):
        name = f"{stamp}-{what}" if n == 1 else f"{stamp}-{what}-{n}"
        if git.update_ref(g, PREFIX + name, commit, old="", message=f"bootguard backup: {what}"):
            backup = Backup(name, commit, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), what)
            if state_dir is not None:
                from bootguard.gitops import events

                events.record(
                    state_dir,
                    "backup-saved",
                    f"saved {commit[:12]} as {backup.ref} in {g.repo}",
                    {"repo": g.repo, "ref": backup.ref, "commit": commit, "what": what},
                )
            return backup
    raise GitOpsError(f"cannot create a backup ref for {commit[:12]} under {PREFIX} in {g.repo}")


def snapshot_worktree(g: git.Git, head: git.Head, message: str) -> str:
    """A commit (parent: HEAD) holding the work tree as it is, untracked files included.

    Built in a temporary index so that the user's index and the stash list stay untouched.
    """
    if head.commit is None:
        raise GitOpsError(f"{g.repo}: cannot snapshot a work tree on an unborn branch")
    index = os.path.join(head.gitdir, "bootguard-snapshot.index")
    env = {"GIT_INDEX_FILE": index, **identity_env()}
    try:
        g.run("read-tree", head.commit, env=env)
        g.run("add", "-A", env=env)
        tree = g.run("write-tree", env=env).stdout.strip()
        return g.run("commit-tree", tree, "-p", head.commit, "-m", message, env=env).stdout.strip()
    finally:
        try:
            os.unlink(index)
        except FileNotFoundError:
            pass


def list_backups(repo: str | os.PathLike[str] | git.Git) -> list[Backup]:
    """Every backup in `repo`, oldest first (for `bootguard status`)."""
    g = repo if isinstance(repo, git.Git) else git.Git.open(repo)
    rows = git.for_each_ref(g, PREFIX, ("refname", "objectname", "committerdate:iso-strict", "subject"))
    found = [Backup(r[0][len(PREFIX) :], r[1], r[2], r[3]) for r in rows if len(r) == 4]
    return sorted(found, key=lambda b: b.name)


def restore_steps(repo: str, backup: Backup, branch: str) -> list[str]:
    """Shell lines a person runs to inspect and restore `backup` (documented in docs/gitops.md)."""
    q = _quote
    steps = [
        f"git -C {q(repo)} log --stat {backup.ref}          # inspect",
        f"git -C {q(repo)} branch restored-{backup.name} {backup.ref}   # restore as a branch",
    ]
    if "-dirty" in backup.name:
        steps.append(f"git -C {q(repo)} checkout {backup.ref} -- .   # put the saved edits back in the tree")
    else:
        steps.append(
            f"git -C {q(repo)} update-ref refs/heads/{branch} {backup.ref} && git -C {q(repo)} reset --hard"
            "   # make it the branch again (clean tree first)"
        )
    steps.append(f"git -C {q(repo)} update-ref -d {backup.ref}   # delete the backup when done")
    return steps


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)
