"""Backups: every commit and every uncommitted change is saved under `refs/bootguard/backup/` first.

Before any reset, rebase abort or clean, the commit about to be dropped (or a snapshot commit of
the dirty work tree, untracked files included) gets a ref `refs/bootguard/backup/<UTC time>-<what>`.
Refs, not the stash list or reflogs: refs are never expired by `git gc`, are listed by
`git for-each-ref`, and survive `git stash clear`. Restoring is plain git (`restore_steps`).
Standard library only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


def save(
    g: git.Git,
    commit: str,
    what: str,
    *,
    state_dir: str | None = None,
    note: str = "",
    extra: dict[str, object] | None = None,
) -> Backup:
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
                    f"saved {commit[:12]} as {backup.ref} in {g.repo}" + (f"; {note}" if note else ""),
                    {"repo": g.repo, "ref": backup.ref, "commit": commit, "what": what, **(extra or {})},
                )
            return backup
    raise GitOpsError(f"cannot create a backup ref for {commit[:12]} under {PREFIX} in {g.repo}")


def snapshot_worktree(g: git.Git, head: git.Head, message: str) -> str:
    """A commit (parent: HEAD) holding the work tree as it is, untracked files included (no scan)."""
    return _snapshot(g, head, message, from_index=False, scan=False)[0]


def _snapshot(
    g: git.Git, head: git.Head, message: str, *, from_index: bool, scan: bool
) -> tuple[str, tuple[str, ...], str]:
    """(commit, paths withheld as secrets, tree) of the work tree or of the user's index.

    Built in a temporary index so that the user's index and the stash list stay untouched. With
    `scan`, files holding secrets are left out (their HEAD version, or nothing, is recorded): a
    backup ref is a commit like any other and must not carry a key either.
    """
    if head.commit is None:
        raise GitOpsError(f"{g.repo}: cannot snapshot a work tree on an unborn branch")
    from bootguard.gitops import secrets

    index = os.path.join(head.gitdir, "bootguard-snapshot.index")
    env = {"GIT_INDEX_FILE": index, **identity_env()}
    try:
        if from_index:
            real = os.path.join(head.gitdir, "index")
            if os.path.exists(real):
                shutil.copyfile(real, index)
            else:
                g.run("read-tree", head.commit, env=env)
        else:
            g.run("read-tree", head.commit, env=env)
            git.add_all(g, env=env, exclude=git.nested_repositories(g, env=env))
        withheld: tuple[str, ...] = ()
        if scan:
            findings, _entries = secrets.scan_index(g, head.commit, env)
            withheld = tuple(sorted({f.file for f in findings}))
            if withheld:
                specs = [f":(literal){p}" for p in withheld]
                g.run("reset", "-q", head.commit, "--", *specs, env=env)
        tree = g.run("write-tree", env=env).stdout.strip()
        sha = g.run("commit-tree", tree, "-p", head.commit, "-m", message, env=env).stdout.strip()
        return sha, withheld, tree
    finally:
        try:
            os.unlink(index)
        except FileNotFoundError:
            pass


class DirtySave(Backup):
    """The backup of a dirty work tree, and what a restore must put back besides the snapshot."""

    __slots__ = ("aside", "empty_dirs", "index_ref", "withheld")

    index_ref: str | None  # the staged version, when it differs from HEAD and the work tree
    withheld: tuple[str, ...]  # files holding secrets: not in any ref, copied to `aside`
    empty_dirs: tuple[str, ...]  # untracked empty directories (git stores none)
    aside: str | None  # directory (in the git dir, mode 0700) holding the withheld files

    def __init__(
        self,
        base: Backup,
        index_ref: str | None,
        withheld: tuple[str, ...],
        empty_dirs: tuple[str, ...],
        aside: str | None,
    ) -> None:
        self._init(
            name=base.name,
            commit=base.commit,
            created=base.created,
            subject=base.subject,
            index_ref=index_ref,
            withheld=withheld,
            empty_dirs=empty_dirs,
            aside=aside,
        )


def save_dirty(g: git.Git, head: git.Head, state_dir: str | None) -> DirtySave | None:
    """Save every uncommitted edit, then clean the tree (reset --hard, clean -fd); None when clean.

    The work tree goes to `…-dirty`, the index to `…-dirty-index` when it holds a staged version
    that differs from both HEAD and the work tree. Files with secrets are kept out of both refs
    and copied to a private directory in the git dir instead; untracked empty directories are
    listed. `restore_dirty` puts all of it back.
    """
    if not git.status(g):
        return None
    assert head.commit is not None
    wt_sha, withheld, wt_tree = _snapshot(
        g, head, "bootguard: uncommitted changes before upgrade", from_index=False, scan=True
    )
    ix_sha, ix_withheld, ix_tree = _snapshot(
        g, head, "bootguard: staged changes before upgrade", from_index=True, scan=True
    )
    head_tree = g.run("rev-parse", f"{head.commit}^{{tree}}").stdout.strip()
    withheld = tuple(sorted(set(withheld) | set(ix_withheld)))
    aside = _put_aside(g, head, withheld) if withheld else None
    empty = tuple(_untracked_empty_dirs(g))
    note_parts = []
    if withheld:
        note_parts.append(
            f"left out of the snapshot because they hold secrets: {', '.join(withheld)} (kept in {aside})"
        )
    if empty:
        note_parts.append(f"untracked empty directories: {', '.join(empty)}")
    extra: dict[str, object] = {"withheld": list(withheld), "empty_dirs": list(empty)}
    index_ref = None
    if ix_tree not in (head_tree, wt_tree):
        index_ref = save(g, ix_sha, "dirty-index", state_dir=state_dir).ref
        extra["index_ref"] = index_ref
    base = save(g, wt_sha, "dirty", state_dir=state_dir, note="; ".join(note_parts), extra=extra)
    git.reset_hard(g, head.commit)  # safe: the snapshots (and `aside`) hold every change
    git.clean(g)
    return DirtySave(base, index_ref, withheld, empty, aside)


def restore_dirty(g: git.Git, dirty: Backup | None, head: str) -> str | None:
    """Re-apply saved edits on top of `head`; a one-line problem if they do not apply."""
    if dirty is None:
        return None
    problem = None
    if git.cherry_pick_no_commit(g, dirty.commit):
        git.reset_index(g)
    else:
        git.reset_hard(g, head)  # safe: the edits are in the snapshot `dirty`
        problem = (
            f"the uncommitted changes conflict with it; they are saved as {dirty.ref} "
            f"(git -C {g.repo} checkout {dirty.ref} -- .)"
        )
    if isinstance(dirty, DirtySave):
        for rel in dirty.empty_dirs:
            os.makedirs(os.path.join(g.repo, rel), exist_ok=True)
        if dirty.aside is not None:
            _bring_back(g.repo, dirty.aside, dirty.withheld)
    return problem


def _put_aside(g: git.Git, head: git.Head, paths: tuple[str, ...]) -> str:
    """Copy `paths` (work-tree files) into a new private directory in the git dir."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    root = os.path.join(head.gitdir, "bootguard-withheld")
    os.makedirs(root, mode=0o700, exist_ok=True)
    aside = tempfile.mkdtemp(prefix=f"{stamp}-", dir=root)
    for rel in paths:
        src = os.path.join(g.repo, rel)
        if os.path.lexists(src) and not os.path.isdir(src):
            dst = os.path.join(aside, rel)
            os.makedirs(os.path.dirname(dst), mode=0o700, exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
    return aside


def _bring_back(repo: str, aside: str, paths: tuple[str, ...]) -> None:
    for rel in paths:
        src = os.path.join(aside, rel)
        if os.path.lexists(src):
            dst = os.path.join(repo, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
    shutil.rmtree(aside, ignore_errors=True)


def _untracked_empty_dirs(g: git.Git) -> list[str]:
    """Empty directories `git clean -d` would remove (relative paths, deepest included)."""
    out = g.run("-c", "core.quotePath=false", "clean", "-n", "-d").stdout
    found = []
    for line in out.splitlines():
        rel = line.removeprefix("Would remove ").rstrip("/")
        top = os.path.join(g.repo, rel)
        if not line.endswith("/") or os.path.islink(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            if not dirnames and not filenames:
                found.append(os.path.relpath(dirpath, g.repo))
    return sorted(found)


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
