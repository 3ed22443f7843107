"""`bootguard upgrade` after the probe saw a new remote commit: fetch → check → integrate → deploy.

Order, and why:

1. A remote commit that failed here before is not retried (gitops.json) until a newer one arrives.
2. Fetch into the remote-tracking ref, then refuse rewritten history (the old tracking commit
   is not an ancestor of the new one) unless `--allow-force-push`; the tracking ref is put back
   so the next run sees the same rewrite instead of silently accepting it.
3. Verify signatures of every commit that is new to this host (`git verify-commit`), if asked.
4. Uncommitted edits are saved as a snapshot commit under refs/bootguard/backup/…-dirty and the
   tree is cleaned, so the build sees exactly what git has; they are re-applied afterwards.
5. Integrate (see `integrate`), then build → validate → switch → trial (see `deploy`).
6. A failed build, validation or switch: save the integrated commit as a backup, reset to the
   commit that was running, re-run the switch for it if the switch itself failed, remember the
   failing remote commit, raise RolledBack (exit 7) with the reason.
"""

from __future__ import annotations

import datetime

import attrs

from bootguard.errors import BootguardError, ConflictError, GitOpsError, RolledBack, UsageError
from bootguard.gitops import backups, git
from bootguard.gitops.deploy import Stage, StageResult, run_stage
from bootguard.gitops.integrate import integrate
from bootguard.gitops.probe import Probe
from bootguard.gitops.record import CommitVerdict, FailedCommit, GitopsRecord, RepoRecord, StagedTrial
from bootguard.gitops.values import Outcome, UpgradeOptions, UpgradeResult

FORCE_PUSH_STAGE = "force-push"


def upgrade(g: git.Git, opts: UpgradeOptions, probe: Probe) -> UpgradeResult:
    """Bring the host to the remote's commit, or explain (raise) why it stays where it is."""
    running = probe.head.commit
    assert running is not None  # probe.require_branch refuses unborn branches
    where = f"{opts.remote}/{opts.branch}"
    if git.config_get(g, f"remote.{opts.remote}.url") is None:
        # A URL would do for ls-remote, but the force-push check needs a remote-tracking ref.
        raise UsageError(
            f"--remote {opts.remote}: not a remote configured in {g.repo}",
            hint=f"git -C {g.repo} remote add NAME URL, then --remote NAME",
        )
    _refuse_known_failure(opts, g.repo, probe.remote_commit)
    if git.has_commit(g, probe.remote_commit) and git.is_ancestor(g, probe.remote_commit, running):
        return _up_to_date(running, probe.remote_commit, "local commits not pushed yet")
    tracking = git.tracking_ref(opts.remote, opts.branch)
    old = git.rev_parse(g, tracking)
    git.fetch(g, opts.remote, opts.branch)
    new = git.rev_parse(g, tracking)
    if new is None:
        raise GitOpsError(f"{g.repo}: fetching {where} did not produce {tracking}")
    if new != probe.remote_commit:
        _refuse_known_failure(opts, g.repo, new)
    if git.is_ancestor(g, new, running):
        return _up_to_date(running, new, "local commits not pushed yet" if new != running else "")
    upstream = _check_rewrite(g, opts, tracking, old, new)
    if opts.verify_signatures:
        _verify_signatures(g, opts, running, new)
    # --- fleet (issue 16): quarantine and canaries; raises RolledBack before anything changes ---
    from bootguard.gitops import fleet

    fleet.gate(g, opts, running=running, new=new)
    # --- end fleet ---
    g = _with_identity(g)
    dirty = _stash_dirty(g, probe.head, opts.state_dir)
    try:
        done = integrate(
            g,
            running,
            new,
            upstream=upstream,
            strategy=opts.strategy,
            remote_name=where,
            state_dir=opts.state_dir,
        )
    except ConflictError:
        _restore_dirty(g, dirty, running)
        raise
    saved = list(done.backups) + ([dirty.ref] if dirty else [])
    stages = _deploy(g, opts, running=running, new=new, target=done.head, dirty=dirty)
    staged = any(s.stage is Stage.TRIAL for s in stages)
    _remember_deployed(opts, g.repo, done.head, new, trial=staged)
    notes = [f"conflicts in {', '.join(done.conflicts)} resolved by {done.how}"] if done.conflicts else []
    problem = _restore_dirty(g, dirty, done.head)
    details = {"stages": [s.to_dict() for s in stages]}
    result = UpgradeResult(
        outcome=Outcome.UPGRADED,
        previous=running,
        head=done.head,
        remote_commit=new,
        integration=done.how,
        backups=tuple(saved),
        notes=tuple(notes),
        details=details,
    )
    if problem:
        raise ConflictError(f"upgraded {g.repo} to {done.head[:12]}, but {problem}")
    return result


def _up_to_date(head: str, remote: str, note: str) -> UpgradeResult:
    return UpgradeResult(
        outcome=Outcome.UP_TO_DATE,
        previous=head,
        head=head,
        remote_commit=remote,
        notes=(note,) if note else (),
    )


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# --- refusals ----------------------------------------------------------------------------------


def _refuse_known_failure(opts: UpgradeOptions, repo: str, remote_commit: str) -> None:
    failed = GitopsRecord.load(opts.state_dir).get(repo).failed
    if failed is None or failed.commit != remote_commit:
        return
    if failed.stage == FORCE_PUSH_STAGE and opts.allow_force_push:
        return
    raise RolledBack(
        f"{opts.remote}/{opts.branch} is still at {remote_commit[:12]}, which failed ({failed.stage}) "
        f"on {failed.at}: {failed.reason}; not retrying until a newer commit arrives",
        hint="push a fix; `bootguard status` shows the failure",
    )


def _remember(opts: UpgradeOptions, repo: str, record: RepoRecord) -> None:
    full = GitopsRecord.load(opts.state_dir)
    full.with_repo(repo, record).save(opts.state_dir)


def _remember_failure(
    opts: UpgradeOptions, repo: str, commit: str, stage: str, reason: str, *, built: str | None = None
) -> None:
    """`commit` (the remote's) is refused until a newer one arrives; the verdict names what was built."""
    previous = GitopsRecord.load(opts.state_dir).get(repo)
    now = _now()
    record = attrs.evolve(previous, failed=FailedCommit(commit, stage, reason, now))
    _remember(opts, repo, record.with_verdict(CommitVerdict(built or commit, "failed", stage, reason, now)))


def _remember_deployed(
    opts: UpgradeOptions, repo: str, commit: str, remote_commit: str, *, trial: bool
) -> None:
    """A switch without a trial is this host's verdict; a staged trial waits for its boot's verdict."""
    previous = GitopsRecord.load(opts.state_dir).get(repo)
    now = _now()
    if trial:
        record = attrs.evolve(previous, failed=None, staged=StagedTrial(commit, remote_commit, now))
        if record.trial_seq is None:  # trials that end from now on are this repository's to settle
            from bootguard.gitops.bootverdict import newest_seq
            from bootguard.seams.statestore import StateStore

            ended = newest_seq(StateStore(opts.state_dir).load().state)
            record = attrs.evolve(record, trial_seq=ended)
    else:
        record = attrs.evolve(previous, failed=None, deployed=commit, deployed_at=now, staged=None)
        record = record.with_verdict(CommitVerdict(commit, "blessed", opts.mode.value, "switched", now))
    _remember(opts, repo, record)


def _check_rewrite(g: git.Git, opts: UpgradeOptions, tracking: str, old: str | None, new: str) -> str | None:
    """The old upstream commit when the remote was force-pushed and that is allowed; else None."""
    if old is None or git.is_ancestor(g, old, new):
        return None
    where = f"{opts.remote}/{opts.branch}"
    if not opts.allow_force_push:
        git.update_ref(g, tracking, old, message="bootguard: refuse rewritten history")
        reason = f"history was rewritten (force-push): {new[:12]} does not contain {old[:12]}"
        _remember_failure(opts, g.repo, new, FORCE_PUSH_STAGE, reason)
        raise RolledBack(
            f"refusing {where}: {reason}; nothing changed",
            hint="check the remote; rerun with --allow-force-push to accept the new history",
        )
    backups.save(g, old, "upstream-before-force-push", state_dir=opts.state_dir)
    return old


def _verify_signatures(g: git.Git, opts: UpgradeOptions, running: str, new: str) -> None:
    for sha in git.rev_list(g, new, f"^{running}"):
        ok, why = git.verify_commit(g, sha)
        if not ok:
            reason = f"commit {sha[:12]} has no valid signature ({why})"
            _remember_failure(opts, g.repo, new, "signature", reason)
            raise RolledBack(
                f"refusing {opts.remote}/{opts.branch}: {reason}; nothing changed",
                hint="sign the commits, or make the signer known to git "
                "(gpg keyring or gpg.ssh.allowedSignersFile)",
            )


def _with_identity(g: git.Git) -> git.Git:
    """Rebases and merges create commits: give them an author where none is configured."""
    if git.config_get(g, "user.email") and git.config_get(g, "user.name"):
        return g
    return g.evolve(env={**g.env, **backups.identity_env()})


# --- dirty work tree ---------------------------------------------------------------------------


def _stash_dirty(g: git.Git, head: git.Head, state_dir: str) -> backups.Backup | None:
    # Index and work tree saved separately, secrets kept out of the refs (see backups.save_dirty).
    return backups.save_dirty(g, head, state_dir)


def _restore_dirty(g: git.Git, dirty: backups.Backup | None, head: str) -> str | None:
    """Re-apply saved edits on top of `head`; a one-line problem if they do not apply."""
    return backups.restore_dirty(g, dirty, head)


# --- build, validate, switch -------------------------------------------------------------------


def _deploy(
    g: git.Git, opts: UpgradeOptions, *, running: str, new: str, target: str, dirty: backups.Backup | None
) -> list[StageResult]:
    results: list[StageResult] = []
    for stage in (Stage.BUILD, Stage.VALIDATE, Stage.SWITCH):
        result = run_stage(opts, stage, target)
        if result is None:
            continue
        results.append(result)
        if not result.ok:
            _roll_back(g, opts, running=running, new=new, target=target, failed=result, dirty=dirty)
    trial = run_stage(opts, Stage.TRIAL, target)
    if trial is not None:
        results.append(trial)
        if not trial.ok:
            previous = GitopsRecord.load(opts.state_dir).get(g.repo)
            _remember(opts, g.repo, attrs.evolve(previous, failed=None, deployed=target, deployed_at=_now()))
            raise GitOpsError(
                f"switched {g.repo} to {target[:12]}, but staging it as a trial failed: {trial.reason}",
                hint="the new generation is the boot default without boot counting; "
                "run `bootguard trial` by hand",
            )
    return results


def _roll_back(
    g: git.Git,
    opts: UpgradeOptions,
    *,
    running: str,
    new: str,
    target: str,
    failed: StageResult,
    dirty: backups.Backup | None,
) -> None:
    saved = backups.save(g, target, f"failed-{failed.stage.value}", state_dir=opts.state_dir)
    git.reset_hard(g, running)  # safe: `saved` holds the integrated commit
    note = ""
    if failed.stage is Stage.SWITCH:
        again = run_stage(opts, Stage.SWITCH, running)
        note = ", switched back" if again is not None and again.ok else ", and switching back failed too"
    _remember_failure(opts, g.repo, new, failed.stage.value, failed.reason, built=target)
    problem = None
    try:
        problem = _restore_dirty(g, dirty, running)
    except BootguardError as exc:
        problem = exc.message
    raise RolledBack(
        f"{opts.remote}/{opts.branch} {new[:12]} failed to {failed.stage.value}: {failed.reason}; "
        f"{g.repo} is back on {running[:12]}{note}; not retrying until a newer commit arrives"
        + (f" ({problem})" if problem else ""),
        hint=f"the failed result is saved as {saved.ref}",
    )
