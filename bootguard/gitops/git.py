"""One small function per git command, each parsing git's porcelain output.

Every call goes through `bootguard.seams.proc.run` as `git -C REPO -c safe.directory=REPO …`
with `GIT_TERMINAL_PROMPT=0` (a timer must never hang on a credential prompt), `LC_ALL=C` (we
parse some messages) and a timeout. When bootguard runs as root on a repository owned by another
user, git runs as that user: git executes repository-controlled code (hooks, `core.fsmonitor`,
filters), which must never run as root, and objects written as root would break the owner's
later git runs. `safe.directory` on the command line is "protected configuration" (git ≥ 2.35.2,
CVE-2022-24765), so it covers the cases where we cannot switch user.

Standard library only: the no-op path of `bootguard upgrade` imports this module.
"""

from __future__ import annotations

import os

from bootguard.errors import GitOpsError, NotFoundError
from bootguard.model._frozen import Frozen
from bootguard.seams import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bootguard.seams.proc import Completed

DEFAULT_TIMEOUT = 300.0
# Environment variables that would point git at another repository, index or config.
_STRIP_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)


class Git(Frozen):
    """How to run git on one repository: path, the user to run as, environment, timeout."""

    __slots__ = ("env", "groups", "repo", "timeout", "user")

    repo: str
    user: int | None
    groups: tuple[int, ...]  # primary gid first, then supplementary groups (only with user)
    env: dict[str, str]
    timeout: float

    def __init__(
        self,
        repo: str,
        user: int | None,
        env: Mapping[str, str],
        timeout: float,
        groups: tuple[int, ...] = (),
    ) -> None:
        self._init(repo=repo, user=user, env=dict(env), timeout=float(timeout), groups=tuple(groups))

    def __hash__(self) -> int:
        return hash((self.repo, self.user, self.timeout))

    @classmethod
    def open(cls, repo: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> Git:
        """A handle for `repo`; runs git as the directory's owner when we are root and they are not."""
        path = os.path.realpath(os.fspath(repo))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFoundError(f"{path}: no such repository directory") from None
        if not os.path.isdir(path):
            raise NotFoundError(f"{path}: not a directory")
        env = {k: v for k, v in os.environ.items() if k not in _STRIP_ENV}
        # No prompts, no editors: a timer run has nobody to answer them.
        env.update(GIT_TERMINAL_PROMPT="0", GIT_EDITOR="true", GIT_MERGE_AUTOEDIT="no", LC_ALL="C")
        env.pop("LANGUAGE", None)
        user: int | None = None
        groups: tuple[int, ...] = ()
        if os.geteuid() == 0 and st.st_uid != 0:
            user = st.st_uid
            env.update(_owner_env(st.st_uid))
            groups = _owner_groups(st.st_uid, st.st_gid)
        return cls(path, user, env, timeout, groups)

    def argv(self, args: Sequence[str]) -> list[str]:
        return ["git", "-C", self.repo, "-c", f"safe.directory={self.repo}", *args]

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_output: int = proc.DEFAULT_MAX_OUTPUT,
    ) -> Completed:
        """Run one git command; on failure raise GitOpsError with git's own one-line reason."""
        full_env = self.env if env is None else {**self.env, **env}
        done = proc.run(
            self.argv(args),
            check=False,
            cwd=self.repo,
            env=full_env,
            input=input,
            timeout=self.timeout if timeout is None else timeout,
            user=self.user,
            group=self.groups[0] if self.groups else None,
            extra_groups=self.groups[1:] if self.groups else None,
            max_output=max_output,
        )
        if check and not done.ok:
            raise GitOpsError(f"git {args[0]} in {self.repo} failed: {reason(done)}")
        return done


def _owner_env(uid: int) -> dict[str, str]:
    """HOME and friends of the repository owner, so git reads their config, not root's."""
    import pwd

    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return {"HOME": "/nonexistent", "USER": str(uid), "LOGNAME": str(uid), "XDG_CONFIG_HOME": ""}
    return {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name, "XDG_CONFIG_HOME": ""}


def _owner_groups(uid: int, fallback_gid: int) -> tuple[int, ...]:
    """The owner's primary and supplementary groups: uid alone would keep root's gid and groups."""
    import pwd

    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return (fallback_gid,)
    return (pw.pw_gid, *[g for g in os.getgrouplist(pw.pw_name, pw.pw_gid) if g != pw.pw_gid])


def reason(done: Completed) -> str:
    """git's own explanation: the first `fatal:`/`error:` line, else the last line of output."""
    lines = [ln.strip() for ln in (done.stderr + "\n" + done.stdout).splitlines() if ln.strip()]
    for prefix in ("fatal: ", "error: "):
        for line in lines:
            if line.startswith(prefix):
                return line[len(prefix) :]
    return lines[-1] if lines else f"exit status {done.returncode}"


# --- HEAD and refs ---------------------------------------------------------------------------


class Head(Frozen):
    """Where HEAD is: the branch ref (None when detached), its commit (None when unborn)."""

    __slots__ = ("commit", "gitdir", "ref", "shallow")

    gitdir: str
    ref: str | None
    commit: str | None
    shallow: bool

    def __init__(self, gitdir: str, ref: str | None, commit: str | None, shallow: bool) -> None:
        self._init(gitdir=gitdir, ref=ref, commit=commit, shallow=shallow)

    def in_progress(self) -> str | None:
        """An interrupted rebase/merge/cherry-pick left in the repository, which we must not touch."""
        found = self.in_progress_abort()
        return found[0] if found else None

    def in_progress_abort(self) -> tuple[str, str] | None:
        """What is in progress and the git command that abandons it (for the hint)."""
        for name, what, abort in _IN_PROGRESS:
            if os.path.exists(os.path.join(self.gitdir, name)):
                return what, abort
        return None

    @property
    def branch(self) -> str | None:
        prefix = "refs/heads/"
        return self.ref[len(prefix) :] if self.ref and self.ref.startswith(prefix) else None


# (file in the git directory, what it means, how to abandon it). `sequencer/` stays behind when
# a multi-commit cherry-pick or revert stopped (conflict resolved and committed by hand, or a
# commit that became empty) even after CHERRY_PICK_HEAD is gone.
_IN_PROGRESS = (
    ("rebase-merge", "a rebase", "git rebase --abort"),
    ("rebase-apply/applying", "a git am", "git am --abort"),
    ("rebase-apply", "a rebase", "git rebase --abort"),
    ("MERGE_HEAD", "a merge", "git merge --abort"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --abort"),
    ("REVERT_HEAD", "a revert", "git revert --abort"),
    ("sequencer/todo", "a stopped multi-commit cherry-pick or revert", "git cherry-pick --abort"),
    ("BISECT_LOG", "a bisect", "git bisect reset"),
)


def head(g: Git) -> Head:
    """HEAD, shallowness and the git directory in one `git rev-parse` (the no-op path counts calls)."""
    done = g.run(
        "rev-parse",
        "--is-shallow-repository",
        "--absolute-git-dir",
        "--show-toplevel",
        "HEAD",
        "--symbolic-full-name",
        "HEAD",
        check=False,
    )
    lines = done.stdout.splitlines()
    if len(lines) < 3:
        raise NotFoundError(f"{g.repo}: not a git work tree ({reason(done)})")
    shallow, gitdir, top = lines[0] == "true", lines[1], lines[2]
    if os.path.realpath(top) != g.repo:
        raise NotFoundError(f"{g.repo}: not the top of a git work tree (that is {top})")
    if done.ok and len(lines) == 5:
        ref = None if lines[4] == "HEAD" else lines[4]
        return Head(gitdir, ref, lines[3], shallow)
    # HEAD does not resolve: an unborn branch (a fresh `git init`), or a broken ref.
    sym = g.run("symbolic-ref", "-q", "HEAD", check=False)
    if not sym.ok:
        raise GitOpsError(f"{g.repo}: HEAD does not point at a commit ({reason(done)})")
    return Head(gitdir, sym.stdout.strip(), None, shallow)


def rev_parse(g: Git, rev: str) -> str | None:
    """The commit `rev` names, or None if it names none."""
    done = g.run("rev-parse", "-q", "--verify", "--end-of-options", f"{rev}^{{commit}}", check=False)
    return done.stdout.strip() if done.ok else None


def is_ancestor(g: Git, ancestor: str, descendant: str) -> bool:
    done = g.run("merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if done.returncode in (0, 1):
        return done.returncode == 0
    raise GitOpsError(f"git merge-base in {g.repo} failed: {reason(done)}")


def merge_base(g: Git, a: str, b: str) -> str | None:
    done = g.run("merge-base", a, b, check=False)
    return done.stdout.strip() if done.ok and done.stdout.strip() else None


def rev_list(g: Git, *revs: str) -> list[str]:
    """Commits of a range, oldest first."""
    return g.run("rev-list", "--reverse", *revs, "--").stdout.split()


def has_commit(g: Git, sha: str) -> bool:
    return g.run("cat-file", "-e", f"{sha}^{{commit}}", check=False).ok


def update_ref(g: Git, ref: str, new: str, *, old: str | None = None, message: str = "bootguard") -> bool:
    """Set `ref`; with `old=""` only if it does not exist yet. False if the old value did not match."""
    args = ["update-ref", "-m", message, ref, new]
    if old is not None:
        args.append(old)
    done = g.run(*args, check=False)
    if done.ok:
        return True
    if old is not None:
        return False
    raise GitOpsError(f"git update-ref {ref} in {g.repo} failed: {reason(done)}")


def for_each_ref(g: Git, prefix: str, fields: Sequence[str]) -> list[list[str]]:
    """Rows of `fields` (for-each-ref atoms without %()) for refs under `prefix`."""
    fmt = "%00".join(f"%({f})" for f in fields)
    out = g.run("for-each-ref", f"--format={fmt}", prefix).stdout
    return [line.split("\0") for line in out.splitlines() if line]


def config_get(g: Git, key: str) -> str | None:
    done = g.run("config", "--get", key, check=False)
    return done.stdout.strip() if done.ok else None


# --- work tree -------------------------------------------------------------------------------


class Change(Frozen):
    """One line of `git status --porcelain=v1`: index and work-tree status letters and the path."""

    __slots__ = ("path", "xy")

    xy: str
    path: str

    def __init__(self, xy: str, path: str) -> None:
        self._init(xy=xy, path=path)

    @property
    def deleted(self) -> bool:
        return "D" in self.xy and "A" not in self.xy

    @property
    def conflicted(self) -> bool:
        return self.xy in ("DD", "AU", "UD", "UA", "DU", "AA", "UU")


def status(g: Git) -> list[Change]:
    """Every change, untracked files listed one by one (they are what a secret scan must see)."""
    out = g.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames").stdout
    return [Change(item[:2], item[3:]) for item in out.split("\0") if item]


def add_all(g: Git, *, env: Mapping[str, str] | None = None, exclude: Sequence[str] = ()) -> None:
    """Stage everything (into the index `env` names, if any), leaving out `exclude` paths."""
    specs = [f":(exclude,literal){p}" for p in exclude]
    g.run("add", "-A", "--", ".", *specs, env=env)


def nested_repositories(g: Git, *, env: Mapping[str, str] | None = None) -> list[str]:
    """Untracked directories that are git repositories themselves ("nested/"): `git add -A` would
    record them as gitlinks, or fail outright when they have no commit yet."""
    out = g.run("ls-files", "-z", "--others", "--exclude-standard", env=env).stdout
    return [p.rstrip("/") for p in out.split("\0") if p.endswith("/")]


class StagedEntry(Frozen):
    """One path an index differs in from a tree: its new mode and blob ("" when deleted)."""

    __slots__ = ("blob", "mode", "path")

    path: str
    mode: str
    blob: str

    def __init__(self, path: str, mode: str, blob: str) -> None:
        self._init(path=path, mode=mode, blob=blob)

    @property
    def deleted(self) -> bool:
        return self.mode == "000000"

    @property
    def is_file(self) -> bool:
        """A regular file (not a symlink, not a gitlink, not a deletion)."""
        return self.mode in ("100644", "100755")


def empty_tree(g: Git) -> str:
    """The empty tree's id in this repository's hash (SHA-1 or SHA-256)."""
    return g.run("hash-object", "-t", "tree", "--stdin", input="").stdout.strip()


def staged_changes(g: Git, base: str | None, *, env: Mapping[str, str] | None = None) -> list[StagedEntry]:
    """How the index (`env`'s GIT_INDEX_FILE, if any) differs from `base` (None: unborn, nothing)."""
    tree = base if base is not None else empty_tree(g)
    out = g.run("diff-index", "--cached", "-z", "--no-renames", "--no-abbrev", "--raw", tree, env=env).stdout
    items = out.split("\0")
    entries = []
    for meta, path in zip(items[0::2], items[1::2], strict=False):
        fields = meta.lstrip(":").split()
        if len(fields) >= 4 and path:
            entries.append(StagedEntry(path, fields[1], fields[3] if fields[1] != "000000" else ""))
    return entries


def blob_sizes(g: Git, blobs: Sequence[str]) -> dict[str, int]:
    if not blobs:
        return {}
    out = g.run("cat-file", "--batch-check=%(objectname) %(objectsize)", input="\n".join(blobs) + "\n").stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def read_blob(g: Git, blob: str, size: int) -> bytes:
    """A blob's exact bytes (callers check the size first: this holds it all in memory)."""
    done = g.run("cat-file", "blob", blob, max_output=size + 1024)
    return done.stdout_bytes


def commit(g: Git, message: str, *, env: Mapping[str, str] | None = None) -> str:
    """Commit the index; the new commit's id."""
    g.run("commit", "-q", "--no-edit", "-F", "-", input=message, env=env)
    sha = rev_parse(g, "HEAD")
    assert sha is not None  # a commit was just made
    return sha


def reset_hard(g: Git, commit_: str) -> None:
    """Callers save a backup first (`backups.save`): this discards whatever HEAD and the tree held."""
    g.run("reset", "-q", "--hard", commit_)


def clean(g: Git) -> None:
    """Remove untracked files (not ignored ones); callers have saved them in a snapshot first."""
    g.run("clean", "-q", "-f", "-d")


def conflicted_paths(g: Git) -> list[str]:
    out = g.run("diff", "--name-only", "--diff-filter=U", "-z").stdout
    return [p for p in out.split("\0") if p]


# --- remotes ---------------------------------------------------------------------------------


def remote_url(g: Git, remote: str) -> str:
    """The URL of a configured remote, or the remote itself when it is a URL or path."""
    return config_get(g, f"remote.{remote}.url") or remote


def ls_remote(g: Git, remote: str, branch: str) -> str | None:
    """The remote's commit for `branch` (None if the branch does not exist there)."""
    done = g.run("ls-remote", "--end-of-options", remote, f"refs/heads/{branch}", check=False)
    if not done.ok:
        raise GitOpsError(f"cannot reach remote {remote!r} ({remote_url(g, remote)}): {reason(done)}")
    for line in done.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def tracking_ref(remote: str, branch: str) -> str:
    return f"refs/remotes/{remote}/{branch}"


def fetch(g: Git, remote: str, branch: str) -> None:
    """Fetch `branch` into the remote-tracking ref (forced: callers compare old and new themselves)."""
    refspec = f"+refs/heads/{branch}:{tracking_ref(remote, branch)}"
    done = g.run("fetch", "-q", "--no-tags", "--no-write-fetch-head", remote, refspec, check=False)
    if not done.ok:
        where = remote_url(g, remote)
        raise GitOpsError(f"cannot fetch {branch!r} from {remote!r} ({where}): {reason(done)}")


class PushResult(Frozen):
    """What `git push --porcelain` said about our one ref."""

    __slots__ = ("ok", "reason")

    ok: bool
    reason: str

    def __init__(self, ok: bool, reason: str) -> None:
        self._init(ok=ok, reason=reason)

    @property
    def rejected(self) -> bool:
        """Rejected as a non-fast-forward (the remote moved on), not by a hook of the remote."""
        return not self.ok and self.reason.startswith("[rejected]")


def push(g: Git, remote: str, branch: str) -> PushResult:
    """Push `branch` without force; a rejection is a result, an unreachable remote an error."""
    ref = f"refs/heads/{branch}"
    done = g.run("push", "--porcelain", "--end-of-options", remote, f"{ref}:{ref}", check=False)
    for line in done.stdout.splitlines():
        flag, _, rest = line.partition("\t")
        _refs, _, summary = rest.partition("\t")
        if _refs.startswith(f"{ref}:"):
            return PushResult(flag in (" ", "+", "*", "=", "-"), summary.strip())
    if not done.ok:
        raise GitOpsError(f"cannot push to {remote!r} ({remote_url(g, remote)}): {reason(done)}")
    return PushResult(True, "up to date")


# --- history rewriting -------------------------------------------------------------------------


def rebase(g: Git, onto: str, upstream: str, *, strategy_option: str | None = None) -> bool:
    """Rebase the current branch onto `onto`, replaying commits not in `upstream`. False on conflict."""
    args = ["rebase", "-q", "--no-autostash", "--onto", onto]
    if strategy_option:
        args.append(f"--strategy-option={strategy_option}")
    done = g.run(*args, upstream, check=False)
    if done.ok:
        return True
    if rebase_in_progress(g):
        return False
    raise GitOpsError(f"git rebase in {g.repo} failed: {reason(done)}")


def rebase_in_progress(g: Git) -> bool:
    return head(g).in_progress() is not None


def rebase_abort(g: Git) -> None:
    """Callers save a backup first: the abort drops whatever the rebase had done so far."""
    g.run("rebase", "--abort")


def merge_ff_only(g: Git, commit_: str) -> None:
    g.run("merge", "-q", "--ff-only", commit_)


def merge_ours(g: Git, commit_: str, message: str) -> None:
    """Record `commit_` as merged while keeping our tree (`-s ours`): remote history kept, content ours."""
    g.run("merge", "-q", "--no-edit", "-s", "ours", "-m", message, commit_)


def verify_commit(g: Git, sha: str) -> tuple[bool, str]:
    """Whether `git verify-commit` accepts the signature of `sha`, and git's explanation."""
    done = g.run("verify-commit", sha, check=False)
    return done.ok, reason(done) if not done.ok else "good signature"


def cherry_pick_no_commit(g: Git, sha: str) -> bool:
    """Apply the change of `sha` to the index and tree without committing; False on conflict."""
    return g.run("cherry-pick", "--no-commit", sha, check=False).ok


def reset_index(g: Git) -> None:
    """Unstage everything, keeping the work tree (turns a no-commit cherry-pick back into edits)."""
    g.run("reset", "-q")
