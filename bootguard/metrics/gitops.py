"""GitOps facts per configuration repository: what is deployed, what failed, when upgrade and commit
last ran and succeeded, how far the branch is ahead of / behind its remote-tracking branch (local
refs only: no fetch), the oldest commit not pushed, backups kept.

Repositories are those in `<state-dir>/gitops.json` and those named by `upgrade`/`commit` events
(`repo`, `branch`, `remote` in the event data). The `repo` label is the repository's path: one per
configuration repository, a handful per host.
"""

from __future__ import annotations

import os
from datetime import datetime

from bootguard.errors import BootguardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.gitops.record import RepoRecord
    from bootguard.metrics.sources import Sources
    from bootguard.metrics.textfile import Out
    from bootguard.model.events import Event

_KINDS = ("upgrade", "upgrade-failed", "commit")


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _Repo:
    def __init__(self) -> None:
        self.branch, self.remote = "dev", "origin"
        self.upgrades = {"upgraded": 0, "up-to-date": 0, "failed": 0}
        self.commits = {"ok": 0, "failed": 0}
        self.last_upgrade_run: float | None = None
        self.last_upgrade_ok: float | None = None
        self.last_upgrade_success: int | None = None
        self.last_commit_ok: float | None = None
        self.last_push_ok: float | None = None

    def add(self, e: Event) -> None:
        kind, data = e.kind.value, e.data
        self.branch = str(data.get("branch") or self.branch)
        self.remote = str(data.get("remote") or self.remote)
        if kind == "commit":
            ok = data.get("outcome") == "ok"
            self.commits["ok" if ok else "failed"] += 1
            if ok:
                self.last_commit_ok = e.time
                if data.get("pushed"):
                    self.last_push_ok = e.time
            return
        self.last_upgrade_run = e.time
        if kind == "upgrade-failed":
            self.upgrades["failed"] += 1
            self.last_upgrade_success = 0
            return
        outcome = "up-to-date" if data.get("outcome") == "up-to-date" else "upgraded"
        self.upgrades[outcome] += 1
        self.last_upgrade_ok = e.time
        self.last_upgrade_success = 1


def collect(src: Sources, out: Out) -> None:
    from bootguard.seams.statestore import StateStore

    record = _record(src.state_dir)
    repos: dict[str, _Repo] = {path: _Repo() for path in record}
    for e in StateStore(src.state_dir).read_events().events:
        repo = e.data.get("repo")
        if e.kind.value in _KINDS and isinstance(repo, str):
            repos.setdefault(repo, _Repo()).add(e)
    _declare(out)
    for path, facts in sorted(repos.items()):
        _repo(out, path, facts, record.get(path))


def _record(state_dir: str) -> dict[str, RepoRecord]:
    if not os.path.exists(os.path.join(state_dir, "gitops.json")):
        return {}
    from bootguard.gitops.record import GitopsRecord

    return dict(GitopsRecord.load(state_dir).repos)


_FAMILIES = (
    ("bootguard_gitops_deployed_info", "gauge", "The commit last built and switched to (1)."),
    ("bootguard_gitops_deployed_timestamp_seconds", "gauge", "When the deployed commit was switched to."),
    (
        "bootguard_gitops_failed_commit_info",
        "gauge",
        "The remote commit that failed here and is not retried (1).",
    ),
    (
        "bootguard_gitops_last_verdict_info",
        "gauge",
        "This host's newest verdict on a commit (1): outcome blessed or failed, at which stage.",
    ),
    ("bootguard_gitops_upgrades_total", "counter", "Upgrade runs by outcome (upgraded, up-to-date, failed)."),
    ("bootguard_gitops_last_upgrade_timestamp_seconds", "gauge", "When `bootguard upgrade` last ran."),
    (
        "bootguard_gitops_last_upgrade_success",
        "gauge",
        "1 when the last upgrade run succeeded, 0 when it failed.",
    ),
    (
        "bootguard_gitops_last_successful_upgrade_timestamp_seconds",
        "gauge",
        "When an upgrade run last succeeded.",
    ),
    ("bootguard_gitops_commits_total", "counter", "`bootguard commit` runs by outcome (ok, failed)."),
    ("bootguard_gitops_last_commit_timestamp_seconds", "gauge", "When `bootguard commit` last succeeded."),
    ("bootguard_gitops_last_push_timestamp_seconds", "gauge", "When `bootguard commit --push` last pushed."),
    (
        "bootguard_gitops_commits_ahead",
        "gauge",
        "Commits on the branch that its remote-tracking branch lacks.",
    ),
    ("bootguard_gitops_commits_behind", "gauge", "Commits on the remote-tracking branch the branch lacks."),
    (
        "bootguard_gitops_oldest_unpushed_commit_timestamp_seconds",
        "gauge",
        "Commit time of the oldest commit not on the remote-tracking branch.",
    ),
    ("bootguard_gitops_backups", "gauge", "Backup refs kept under refs/bootguard/backup/."),
)


def _declare(out: Out) -> None:
    for name, kind, text in _FAMILIES:
        out.family(name, kind, text)


def _repo(out: Out, path: str, f: _Repo, rec: RepoRecord | None) -> None:
    if rec is not None:
        _record_facts(out, path, rec)
    for outcome, n in f.upgrades.items():
        out.sample("bootguard_gitops_upgrades_total", n, repo=path, outcome=outcome)
    for outcome, n in f.commits.items():
        out.sample("bootguard_gitops_commits_total", n, repo=path, outcome=outcome)
    for name, value in (
        ("bootguard_gitops_last_upgrade_timestamp_seconds", f.last_upgrade_run),
        ("bootguard_gitops_last_upgrade_success", f.last_upgrade_success),
        ("bootguard_gitops_last_successful_upgrade_timestamp_seconds", f.last_upgrade_ok),
        ("bootguard_gitops_last_commit_timestamp_seconds", f.last_commit_ok),
        ("bootguard_gitops_last_push_timestamp_seconds", f.last_push_ok),
    ):
        if value is not None:
            out.sample(name, value, repo=path)
    try:
        _git(out, path, f)
    except (BootguardError, OSError):
        pass  # the repository is gone or unreadable: its git facts are simply absent


def _record_facts(out: Out, path: str, rec: RepoRecord) -> None:
    if rec.deployed is not None:
        out.sample("bootguard_gitops_deployed_info", 1, repo=path, commit=rec.deployed)
        when = _epoch(rec.deployed_at)
        if when is not None:
            out.sample("bootguard_gitops_deployed_timestamp_seconds", when, repo=path)
    if rec.failed is not None:
        failed = rec.failed
        out.sample(
            "bootguard_gitops_failed_commit_info", 1, repo=path, commit=failed.commit, stage=failed.stage
        )
    if rec.history:  # contract C2: the newest verdict
        v = rec.history[-1]
        out.sample(
            "bootguard_gitops_last_verdict_info",
            1,
            repo=path,
            commit=v.commit,
            outcome=v.outcome,
            stage=v.stage,
        )


def _git(out: Out, path: str, f: _Repo) -> None:
    from bootguard.gitops import git
    from bootguard.gitops.backups import PREFIX

    g = git.Git.open(path)
    local, remote = f"refs/heads/{f.branch}", f"refs/remotes/{f.remote}/{f.branch}"
    out.sample("bootguard_gitops_backups", len(git.for_each_ref(g, PREFIX, ("refname",))), repo=path)
    if not g.run("rev-parse", "--verify", "--quiet", remote, check=False).ok:
        return
    counts = g.run("rev-list", "--left-right", "--count", f"{local}...{remote}").stdout.split()
    ahead, behind = int(counts[0]), int(counts[1])
    out.sample("bootguard_gitops_commits_ahead", ahead, repo=path)
    out.sample("bootguard_gitops_commits_behind", behind, repo=path)
    if ahead:
        times = g.run("log", "--format=%ct", f"{remote}..{local}").stdout.split()
        out.sample(
            "bootguard_gitops_oldest_unpushed_commit_timestamp_seconds", min(int(t) for t in times), repo=path
        )
