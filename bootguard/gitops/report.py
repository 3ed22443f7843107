"""The GitOps part of `bootguard status`: per repository, what runs, what failed and why, the backups.

Read-only. `running` is the commit of the generation that runs now (from the state, contract C1),
None when bootguard cannot tell; then status says so instead of guessing.
"""

from __future__ import annotations

from bootguard.errors import BootguardError
from bootguard.gitops import git
from bootguard.gitops.backups import list_backups, restore_steps
from bootguard.gitops.record import RepoRecord

HISTORY_SHOWN = 5


def repo_status(repo: str, rec: RepoRecord, running: str | None) -> dict[str, object]:
    """One repository's entry of `status --json` (`notes` are the plain text's lines)."""
    notes: list[str] = []
    head: str | None = None
    branch = "BRANCH"
    try:
        g = git.Git.open(repo)
        h = git.head(g)
        head, branch = h.commit, h.branch or branch
        found = list_backups(g)
    except BootguardError as exc:
        notes.append(f"cannot read the repository (moved or re-cloned?): {exc.message}")
        found = []
    if rec.staged is not None:
        notes.append(f"trial of {rec.staged.commit[:12]} staged on {rec.staged.at}; its boot decides")
    failed = rec.failed
    if failed is not None:
        saved = [b.ref for b in found if b.commit == failed.commit or failed.commit in b.name]
        boot_saved = [b.ref for b in found if b.name.endswith("-failed-boot")]
        where = (boot_saved if failed.stage == "boot" else saved)[-1:] or ["no backup"]
        notes.append(
            f"{failed.commit[:12]} failed at {failed.stage} on {failed.at}: {failed.reason}; "
            f"kept as {where[0]}; not retried until a newer remote commit arrives"
        )
    if running is None:
        if rec.history and rec.history[-1].stage == "boot":
            notes.append(
                "bootguard cannot tell which commit the running generation was built from; "
                "the repository is left as it is"
            )
    elif head is not None and head != running and rec.staged is None:
        notes.append(
            f"the repository is on {head[:12]}, the running generation was built from {running[:12]}"
        )
    return {
        "repo": repo,
        "head": head,
        "running": running,
        "deployed": rec.deployed,
        "failed": None
        if failed is None
        else {"commit": failed.commit, "stage": failed.stage, "reason": failed.reason, "at": failed.at},
        "staged": None if rec.staged is None else {"commit": rec.staged.commit, "at": rec.staged.at},
        "history": [
            {"commit": v.commit, "outcome": v.outcome, "stage": v.stage, "cause": v.cause, "at": v.at}
            for v in rec.history[-HISTORY_SHOWN:]
        ],
        "notes": notes,
        "backups": [{**b.to_dict(), "restore": restore_steps(repo, b, branch)} for b in found],
    }
