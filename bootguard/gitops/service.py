"""Entry points of `bootguard commit` and `bootguard upgrade`: lock, run, log one event per run.

Standard library only at import time. `upgrade` imports attrs and the heavy modules only after
the probe found a new remote commit, so the timer's common "nothing new" run stays close to the
cost of a bare `git fetch` + `git rev-parse` (bench/gitops_noop.py).
"""

from __future__ import annotations

from bootguard.errors import BootguardError, ConflictError
from bootguard.gitops import events, git, noop
from bootguard.gitops.locks import GitopsLock
from bootguard.gitops.values import UpgradeOptions, UpgradeOutcome, UpgradeResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.gitops.commit import CommitResult


def upgrade(opts: UpgradeOptions) -> UpgradeResult:
    """One `bootguard upgrade` run; raises RolledBack / ConflictError / GitOpsError with the reason."""
    with GitopsLock(opts.state_dir, "upgrade", repo=opts.repo):
        g = git.Git.open(opts.repo)
        data: dict[str, object] = {"repo": g.repo, "branch": opts.branch, "remote": opts.remote}
        settled: tuple[str, ...] = ()
        try:
            settled = settle_trials(opts.state_dir, g.repo)
            settled += return_from_failed_boot(opts.state_dir, g)
            result = _upgrade(g, opts)
        except BootguardError as exc:
            noop.clear(opts.state_dir)
            _tell(settled)  # what the settle did must show even though the run then stops
            _log(opts.state_dir, "upgrade-failed", exc.message, {**data, "exit_code": int(exc.exit_code)})
            _publish_verdicts(g, opts)  # fleet (issue 16)
            raise
        if settled:
            result = result.evolve(notes=(*settled, *result.notes))
        _log(opts.state_dir, "upgrade", describe(g.repo, result), {**data, **result.to_dict()})
        _stamp(opts.state_dir, g.repo, result)
        _publish_verdicts(g, opts)  # fleet (issue 16)
        return result


def _publish_verdicts(g: git.Git, opts: UpgradeOptions) -> None:
    """fleet (issue 16): push this host's new verdicts; never raises, never changes the outcome."""
    if opts.fleet is not None and opts.fleet.publish:
        from bootguard.gitops import fleet_outbox

        fleet_outbox.publish_outbox(g, opts)


def settle_trials(
    state_dir: str, repo: str | None = None, *, booted_entry: str | None = None
) -> tuple[str, ...]:
    """Turn trials that ended since the last run into their commits' verdicts (gitops/bootverdict.py).

    The caller holds the GitOps lock. Cheap when no state slot changed since the last good run
    (no import beyond the standard library). Returns one line per fact, for the run's notes.
    """
    if not noop.needs_settle(state_dir):
        return ()
    from bootguard.gitops import bootverdict

    try:
        notify = bootverdict.config_notifier(state_dir)
    except BootguardError as exc:  # a broken checks.toml must not stop the rollback itself
        import sys

        sys.stderr.write(f"bootguard: warning: no notifications: {exc.message}\n")
        notify = None
    done = bootverdict.settle(
        state_dir, repos=None if repo is None else [repo], booted_entry=booted_entry, notify=notify
    )
    return tuple(m for s in done for m in s.messages)


def return_from_failed_boot(state_dir: str, g: git.Git) -> tuple[str, ...]:
    """A HEAD still on a commit that failed at boot (a settle that could not reach the repository) is
    put back on the running commit now, or the run is refused (bootverdict.return_left_repository).

    Skipped, without importing beyond the standard library, when the last good run left this very
    HEAD and no trial ended since: that run made the same check.
    """
    if not noop.needs_settle(state_dir):
        try:
            if noop.stamped_head(state_dir, g.repo) == git.rev_parse(g, "HEAD"):
                return ()
        except BootguardError:
            pass  # the check itself says nothing for an unusable repository; the run's own git steps do
    from bootguard.gitops import bootverdict

    return bootverdict.return_left_repository(state_dir, g.repo)


def _tell(lines: tuple[str, ...]) -> None:
    import sys

    for line in lines:
        sys.stderr.write(f"bootguard: {line}\n")


def _stamp(state_dir: str, repo: str, result: UpgradeResult) -> None:
    try:
        noop.write(state_dir, repo, result.head, result.remote_commit)
    except OSError:
        pass  # only costs the next timer run its early exit


def _upgrade(g: git.Git, opts: UpgradeOptions) -> UpgradeResult:
    from bootguard.gitops import probe

    seen = probe.probe(g, opts.remote, opts.branch)
    if seen.up_to_date:
        assert seen.head.commit is not None
        return UpgradeResult(
            outcome=UpgradeOutcome.UP_TO_DATE,
            previous=seen.head.commit,
            head=seen.head.commit,
            remote_commit=seen.remote_commit,
        )
    from bootguard.gitops.upgrade import upgrade as full_upgrade

    return full_upgrade(g, opts, seen)


def describe(repo: str, result: UpgradeResult) -> str:
    if result.outcome is UpgradeOutcome.UP_TO_DATE:
        return f"{repo} is up to date at {result.head[:12]}"
    return f"upgraded {repo} from {result.previous[:12]} to {result.head[:12]} ({result.integration})"


def commit(repo: str, branch: str, *, push: bool, state_dir: str) -> CommitResult:
    """One `bootguard commit` run."""
    from bootguard.gitops.commit import commit_changes

    with GitopsLock(state_dir, "commit", repo=repo):
        g = git.Git.open(repo)
        data: dict[str, object] = {"repo": g.repo, "branch": branch, "push": push}
        try:
            # Never commit (and push) on top of a configuration that failed to boot: settle first.
            _tell(settle_trials(state_dir, g.repo))
            _tell(return_from_failed_boot(state_dir, g))
            result = commit_changes(g, branch, push=push)
        except BootguardError as exc:
            _log(
                state_dir,
                "commit",
                exc.message,
                {**data, "outcome": "failed", "exit_code": int(exc.exit_code)},
            )
            blocked = (
                _remote_head_failed_here(g, branch, state_dir) if isinstance(exc, ConflictError) else None
            )
            if blocked is not None:  # a rejected push that `upgrade` cannot reconcile: say why
                raise ConflictError(f"{exc.message}; {blocked}", hint=_BLOCKED_HINT) from exc
            raise
        _log(state_dir, "commit", result.summary(), {**data, "outcome": "ok", **result.to_dict()})
        return result


_BLOCKED_HINT = "push a fix (or a revert) of it from another host; `bootguard status` shows the failure"


def _remote_head_failed_here(g: git.Git, branch: str, state_dir: str) -> str | None:
    """Why a rejected push cannot be reconciled by `upgrade`: the remote's head is a commit that failed
    on this host (e.g. at boot) and is refused until a newer one arrives. None when that is not so."""
    from bootguard.gitops.record import GitopsRecord

    try:
        failed = GitopsRecord.load(state_dir).get(g.repo).failed
        if failed is None:
            return None
        remote = git.config_get(g, f"branch.{branch}.remote") or "origin"
        if git.ls_remote(g, remote, branch) != failed.commit:
            return None
    except BootguardError:
        return None
    return (
        f"{remote}/{branch} is {failed.commit[:12]}, which failed ({failed.stage}) on this host: "
        "`bootguard upgrade` will not take it, so this commit stays local until a newer commit arrives"
    )


def _log(state_dir: str, kind: str, message: str, data: dict[str, object]) -> None:
    """Log an event; a log that cannot be written must not hide the run's own outcome."""
    try:
        events.record(state_dir, kind, message, data)
    except BootguardError as exc:
        import sys

        sys.stderr.write(f"bootguard: warning: event not logged: {exc.message}\n")
    _export_metrics(state_dir)


def _export_metrics(state_dir: str) -> None:
    """Refresh the Prometheus textfile after every run (bootguard.metrics; never the run's outcome)."""
    from bootguard import metrics

    metrics.export_quietly(metrics.Sources(state_dir))
