"""Put the remote's new commits under the host's branch: fast-forward, or rebase with a strategy.

What `git pull --rebase` does, in explicit steps so that nothing is lost on the way:

1. HEAD is an ancestor of the remote commit → fast-forward (nothing is rewritten).
2. Otherwise the local commits are saved as `refs/bootguard/backup/<time>-local` *before* the
   rebase (a rebase rewrites them; reflogs expire, refs do not), then
   `git rebase --onto NEW UPSTREAM` replays them. UPSTREAM is NEW, or after an allowed
   force-push the old remote-tracking commit, so commits the remote dropped are not replayed
   (git's fork-point logic, made explicit).
3. On conflict the rebase is aborted (the backup exists already) and the strategy decides:
   `abort` → ConflictError, the repository exactly as before;
   `prefer-remote` → rebase again with `-X ours` (in a rebase "ours" is the upstream), and if git
   still cannot (modify/delete, renames) reset to the remote commit;
   `prefer-local` → rebase again with `-X theirs` (our replayed commits), and if git still cannot,
   `git merge -s ours NEW`: our tree, with the remote's history merged so the next push is a
   fast-forward and nothing of theirs becomes unreachable.
"""

from __future__ import annotations

import attrs

from bootguard.errors import ConflictError
from bootguard.gitops import backups, git
from bootguard.gitops.values import Strategy


@attrs.frozen
class Integration:
    """Where the branch ended up and how."""

    head: str
    how: str  # fast-forward | rebased | prefer-remote | prefer-local
    backups: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


def integrate(
    g: git.Git,
    head: str,
    new: str,
    *,
    upstream: str | None,
    strategy: Strategy,
    remote_name: str,
    state_dir: str | None,
) -> Integration:
    """Integrate `new` into the checked-out branch at `head` (a clean work tree)."""
    if git.is_ancestor(g, head, new):
        git.merge_ff_only(g, new)
        return Integration(new, "fast-forward")
    saved = backups.save(g, head, "local", state_dir=state_dir)
    base = upstream if upstream is not None and git.is_ancestor(g, upstream, head) else new
    if git.rebase(g, new, base):
        return Integration(_head(g), "rebased", (saved.ref,))
    conflicts = tuple(git.conflicted_paths(g))
    git.rebase_abort(g)  # safe: `saved` holds every local commit
    match strategy:
        case Strategy.ABORT:
            raise ConflictError(
                f"{g.repo}: local commits conflict with {remote_name} in {', '.join(conflicts) or '?'}; "
                f"nothing changed (local commits also saved as {saved.ref})",
                hint="rebase by hand, or rerun with --strategy prefer-remote or --strategy prefer-local",
            )
        case Strategy.PREFER_REMOTE:
            return _prefer(
                g, new=new, base=base, side="ours", saved=saved.ref, conflicts=conflicts, how="prefer-remote"
            )
        case Strategy.PREFER_LOCAL:
            return _prefer(
                g, new=new, base=base, side="theirs", saved=saved.ref, conflicts=conflicts, how="prefer-local"
            )


def _prefer(
    g: git.Git,
    *,
    new: str,
    base: str,
    side: str,
    saved: str,
    conflicts: tuple[str, ...],
    how: str,
) -> Integration:
    if git.rebase(g, new, base, strategy_option=side):
        return Integration(_head(g), how, (saved,), conflicts)
    git.rebase_abort(g)  # safe: `saved` holds every local commit
    if side == "ours":
        git.reset_hard(g, new)
    else:
        git.merge_ours(g, new, f"bootguard: keep local configuration over {new[:12]} ({how})")
    return Integration(_head(g), how, (saved,), conflicts)


def _head(g: git.Git) -> str:
    sha = git.rev_parse(g, "HEAD")
    assert sha is not None  # the branch has commits: we just rebased onto one
    return sha
