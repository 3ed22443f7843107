"""The fleet gate of `bootguard upgrade`: quarantine and canaries from other hosts' verdicts.

- `gate` runs after the fetch and before anything changes (integrate, build): it fetches every
  host's verdict ref and refuses (RolledBack, exit 7) a remote commit that is quarantined or still
  waits for canaries, naming the commit, the host, the stage and the cause. The hold is kept in
  fleet.json for `bootguard status`; the run's `upgrade-failed` event carries the message.
- publishing this host's own verdicts is `fleet_outbox`.

Standard library only; imported only by a run that fetched a new remote commit.
"""

from __future__ import annotations

import datetime
import sys
import time

from bootguard.errors import BootguardError, GitOpsError, RolledBack
from bootguard.gitops import fleet_policy, fleet_state, fleet_store, git

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.gitops.fleet_options import FleetOptions
    from bootguard.gitops.fleet_verdict import FleetVerdict
    from bootguard.gitops.values import UpgradeOptions


def _warn(text: str) -> None:
    sys.stderr.write(f"bootguard: warning: {text}\n")


# --- the gate ----------------------------------------------------------------------------------


def gate(g: git.Git, opts: UpgradeOptions, *, running: str, new: str, now: float | None = None) -> None:
    """Raise RolledBack if other hosts' verdicts hold `new` back; record the hold (or its end)."""
    fo = opts.fleet
    if fo is None:
        return
    new_commits = git.rev_list(g, new, f"^{running}")
    verdicts = _others_verdicts(g, opts, fo, set(new_commits), new)
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
    _record(
        opts, g.repo, record.evolve(held=None if hold is None else _held(hold, now), candidate=(new, since))
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


def _others_verdicts(
    g: git.Git, opts: UpgradeOptions, fo: FleetOptions, wanted: set[str], new: str
) -> list[FleetVerdict]:
    """Fetch and read every host's verdicts; keep other hosts' on `wanted` commits (signed, if asked)."""
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
    relevant = [p for p in got.verdicts if p.verdict.commit in wanted and p.verdict.host != fo.host]
    if opts.verify_signatures:
        relevant = _signed(g, relevant)
    return [p.verdict for p in relevant]


def _record(opts: UpgradeOptions, repo: str, record: fleet_state.RepoFleet) -> None:
    try:
        fleet_state.save(opts.state_dir, repo, record)
    except (BootguardError, OSError) as exc:  # only status and the soak clock lose this run
        _warn(f"cannot record the fleet hold in {opts.state_dir}: {getattr(exc, 'message', None) or exc}")


def _held(hold: fleet_policy.Hold, now: float) -> dict[str, object]:
    checked = datetime.datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds")
    return {**hold.to_dict(), "checked_at": checked}


def _signed(g: git.Git, published: list[fleet_store.PublishedVerdict]) -> list[fleet_store.PublishedVerdict]:
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
