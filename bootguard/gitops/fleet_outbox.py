"""This host's verdicts to the shared remote: the outbox of `bootguard upgrade --publish-verdicts`.

`publish_outbox` runs at the end of every run with `--publish-verdicts`, whatever its outcome:
this host's verdicts (gitops.json `history`, contract C2) that the remote does not have yet are
appended to `refs/bootguard/verdicts/<host>` (fleet_store) and pushed without force. It never
raises: a failed or rejected push is a warning, the verdicts stay pending (fleet.json), and the
next run tries again; the unit's no-op pre-check is kept from skipping it (its stamp removed).

Cheap when there is nothing to do: fleet.json is read and gitops.json `stat`ed; attrs, the
verdict parser and git are only reached when gitops.json changed since the last publish.
"""

from __future__ import annotations

import sys

from bootguard import __version__
from bootguard.errors import BootguardError
from bootguard.gitops import fleet_state, git

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.gitops.fleet_options import FleetOptions
    from bootguard.gitops.record import CommitVerdict
    from bootguard.gitops.values import UpgradeOptions

GITOPS_FILE = "gitops.json"


def _warn(text: str) -> None:
    sys.stderr.write(f"bootguard: warning: {text}\n")


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
    """Keyed by host name too: a renamed host publishes its history again, under the new name."""
    return (host, cv.commit, cv.outcome, cv.stage, cv.at)


def _history(state_dir: str, repo: str) -> tuple[CommitVerdict, ...]:
    """This host's verdicts from gitops.json (contract C2), oldest first."""
    from bootguard.gitops.record import GitopsRecord

    return GitopsRecord.load(state_dir).get(repo).history


def _publish(g: git.Git, remote: str, fo: FleetOptions, pending: list[CommitVerdict]) -> str | None:
    """Append and push; None when the remote has every verdict, else why not."""
    from bootguard.gitops import fleet_store
    from bootguard.gitops.fleet_verdict import FleetVerdict, FleetVerdictError

    mine: list[FleetVerdict] = []
    for cv in pending:
        try:
            mine.append(
                FleetVerdict.local(
                    host=fo.host,
                    commit=cv.commit,
                    outcome=cv.outcome,
                    stage=cv.stage,
                    cause=cv.cause,
                    at=cv.at,
                    version=__version__,
                )
            )
        except FleetVerdictError as exc:
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
