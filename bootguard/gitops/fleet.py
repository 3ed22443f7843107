"""The fleet hooks of `bootguard upgrade`: the quarantine/canary gate and the verdict outbox.

- `gate` runs after the fetch and before anything changes (integrate, build): it fetches every
  host's verdict ref and refuses (RolledBack, exit 7) a remote commit that is quarantined or still
  waits for canaries, naming the commit, the host, the stage and the cause. The hold is kept in
  fleet.json for `bootguard status`; the run's `upgrade-failed` event carries the message.
- `publish_outbox` runs at the end of every run with `--publish-verdicts`: this host's verdicts
  (gitops.json `history`, contract C2) that the remote does not have yet are appended to
  `refs/bootguard/verdicts/<host>` and pushed. It never raises: a failed or rejected push is a
  warning, the verdicts stay pending, and the next run (never skipped by the unit's no-op
  pre-check while verdicts are pending) tries again.

Standard library only at import time; the gitops.json model (attrs) is imported only when
gitops.json changed since the last publish.
"""

from __future__ import annotations

import datetime
import sys
import time

from bootguard import __version__
from bootguard.errors import BootguardError, GitOpsError, RolledBack
from bootguard.gitops import fleet_policy, fleet_state, fleet_store, git
from bootguard.gitops.fleet_verdict import Verdict, VerdictError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.gitops.fleet_options import FleetOptions
    from bootguard.gitops.record import CommitVerdict
    from bootguard.gitops.values import UpgradeOptions

GITOPS_FILE = "gitops.json"


def _warn(text: str) -> None:
    sys.stderr.write(f"bootguard: warning: {text}\n")


# --- the gate ----------------------------------------------------------------------------------


def gate(g: git.Git, opts: UpgradeOptions, *, running: str, new: str, now: float | None = None) -> None:
    """Raise RolledBack if other hosts' verdicts hold `new` back; record the hold (or its end)."""
    fo = opts.fleet
    if fo is None:
        return
    try:
        fleet_store.fetch(g, opts.remote)
    except GitOpsError as exc:
        if not fo.ignore_quarantine:
            raise GitOpsError(
                f"{exc.message}; not deploying {new[:12]} without the other hosts' verdicts",
                hint="--ignore-quarantine deploys anyway (this run only)",
            ) from exc
        _warn(f"{exc.message}; deploying anyway (--ignore-quarantine)")
    got = fleet_store.read(g, opts.remote)
    for w in got.warnings:
        _warn(w)
    new_commits = git.rev_list(g, new, f"^{running}")
    wanted = set(new_commits)
    relevant = [p for p in got.verdicts if p.verdict.commit in wanted and p.verdict.host != fo.host]
    if opts.verify_signatures:
        relevant = _signed(g, relevant)
    verdicts = [p.verdict for p in relevant]
    hold = fleet_policy.quarantine(
        me=fo.host,
        running=running,
        new=new,
        new_commits=new_commits,
        verdicts=verdicts,
        is_ancestor=lambda a, b: git.is_ancestor(g, a, b),
    )
    record = fleet_state.load(opts.state_dir, g.repo)
    now = time.time() if now is None else now
    since = record.candidate[1] if record.candidate and record.candidate[0] == new else now
    if hold is None:
        hold = fleet_policy.canaries(
            me=fo.host,
            new=new,
            verdicts=verdicts,
            needed=fo.canaries,
            canary_hosts=fo.canary_hosts,
            soak=fo.soak,
            out_since=since,
            now=now,
        )
    if hold is not None and fo.ignore_quarantine:
        _warn(f"--ignore-quarantine: deploying although {hold.message}")
        hold = None
    fleet_state.save(
        opts.state_dir,
        g.repo,
        record.evolve(held=None if hold is None else _held(hold, now), candidate=(new, since)),
    )
    if hold is None:
        return
    if hold.kind is fleet_policy.HoldKind.QUARANTINE:
        hint = "a later commit blessed by another host lifts it; --ignore-quarantine deploys anyway (one run)"
    else:
        hint = "it deploys once enough canaries bless it; --ignore-quarantine deploys now (this run only)"
    raise RolledBack(
        f"{opts.remote}/{opts.branch}: {hold.message}; not deploying, nothing changed", hint=hint
    )


def _held(hold: fleet_policy.Hold, now: float) -> dict[str, object]:
    checked = datetime.datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds")
    return {**hold.to_dict(), "checked_at": checked}


def _signed(g: git.Git, published: list[fleet_store.Published]) -> list[fleet_store.Published]:
    """Only verdicts whose commit `git verify-commit` accepts (allowed signers, like config commits)."""
    out = []
    for p in published:
        ok, why = git.verify_commit(g, p.sha)
        if ok:
            out.append(p)
        else:
            _warn(
                f"ignored the verdict {p.sha[:12]} of {p.verdict.host} on {p.verdict.commit[:12]}: "
                f"not signed by an allowed signer ({why})"
            )
    return out


# --- the outbox --------------------------------------------------------------------------------


def publish_outbox(g: git.Git, opts: UpgradeOptions) -> int:
    """Publish this host's pending verdicts; the number still pending. Never raises."""
    fo = opts.fleet
    if fo is None or not fo.publish:
        return 0
    pending: list[CommitVerdict] = []
    try:
        record = fleet_state.load(opts.state_dir, g.repo)
        stamp = fleet_state.source_stamp(opts.state_dir, GITOPS_FILE)
        if stamp is None or (record.pending == 0 and record.source == stamp):
            return 0  # nothing new since everything was published: no attrs, no git
        published = set(record.published)
        pending = [cv for cv in _history(opts.state_dir, g.repo) if _key(fo.host, cv) not in published]
        problem = _publish(g, opts.remote, fo, pending) if pending else None
        done = [] if problem else [_key(fo.host, cv) for cv in pending]
        fleet_state.save(
            opts.state_dir,
            g.repo,
            record.evolve(
                published=(*record.published, *done),
                pending=len(pending) if problem else 0,
                source=None if problem else stamp,
            ),
        )
        if problem is None:
            return 0
        _warn(f"{len(pending)} verdicts not published ({problem}); retried on the next run")
    except (BootguardError, OSError) as exc:
        _warn(f"verdicts not published: {getattr(exc, 'message', None) or exc}; retried on the next run")
    _keep_next_run(opts.state_dir)
    return max(1, len(pending))


def _key(host: str, cv: CommitVerdict) -> tuple[str, ...]:
    """Published under this host name (a renamed host publishes its history again, under the new name)."""
    return (host, cv.commit, cv.outcome, cv.stage, cv.at)


def _history(state_dir: str, repo: str) -> tuple[CommitVerdict, ...]:
    """This host's verdicts from gitops.json (contract C2), oldest first."""
    from bootguard.gitops.record import GitopsRecord

    return GitopsRecord.load(state_dir).get(repo).history


def _publish(g: git.Git, remote: str, fo: FleetOptions, pending: list[CommitVerdict]) -> str | None:
    """Append and push; None when the remote has every verdict, else why not."""
    mine: list[Verdict] = []
    for cv in pending:
        try:
            mine.append(
                Verdict.local(
                    host=fo.host,
                    commit=cv.commit,
                    outcome=cv.outcome,
                    stage=cv.stage,
                    cause=cv.cause,
                    at=cv.at,
                    version=__version__,
                )
            )
        except VerdictError as exc:
            _warn(f"not publishing a verdict on {cv.commit[:12]}: {exc}")
    tip = fleet_store.own_tip(g, remote, fo.host)
    local = fleet_store.local_prefix(remote) + fo.host
    there: set[tuple[str, str, str, str]] = set()
    if tip is not None:
        git.update_ref(g, local, tip, message="bootguard: verdicts on the remote")
        there = {p.verdict.key for p in fleet_store.read(g, remote, hosts=(fo.host,)).verdicts}
    fresh = [v for v in mine if v.key not in there]
    if not fresh:
        return None
    sign = (git.config_get(g, "commit.gpgsign") or "").lower() in ("true", "yes", "on", "1")
    if not (git.config_get(g, "user.email") and git.config_get(g, "user.name")):
        from bootguard.gitops.backups import identity_env

        g = g.evolve(env={**g.env, **identity_env()})  # commit-tree needs an author, like backups
    new_tip = fleet_store.append(g, tip, fresh, sign=sign)
    problem = fleet_store.push(g, remote, fo.host, new_tip)
    if problem is None:
        git.update_ref(g, local, new_tip, message="bootguard: verdicts published")
    return problem


def _keep_next_run(state_dir: str) -> None:
    """Verdicts pending: the unit's no-op pre-check must not skip the next run (it needs the stamp)."""
    from bootguard.gitops import noop

    noop.clear(state_dir)
