"""Whether this host may deploy a remote commit, given what other hosts published (pure logic).

- **Quarantine**: a commit new to this host (the remote commit, or any commit between the one
  running and it) that another host failed is not deployed, unless another host blessed a later
  commit (a descendant of the failed one that this host would take as well): the fix lifts it.
- **Canaries**: with `canaries` N, the remote commit is deployed only once N other hosts (of
  `canary_hosts`, if given) blessed exactly that commit, or, with `soak`, once it has been out
  that long (this host first saw it then) without a failure verdict.

Failures at `signature` or `force-push` do not quarantine: they are that host's trust policy
(its keyring, its view of the branch), which every host applies itself, not a verdict on what the
commit does. Per host, only its newest verdict on a commit counts (a host that failed a commit and later
blessed it has blessed it). Standard library only; ancestry is asked through a callable.
"""

from __future__ import annotations

import enum

from bootguard.gitops.fleet_verdict import FleetVerdict
from bootguard.model._frozen import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence


LOCAL_STAGES = frozenset(("signature", "force-push"))


class HoldKind(enum.Enum):
    QUARANTINE = "quarantine"
    CANARIES = "canaries"


class Hold(Frozen):
    """Why the remote commit is not deployed now."""

    __slots__ = ("blessed_by", "commit", "kind", "message", "verdict")

    kind: HoldKind
    commit: str  # the remote commit held back
    message: str  # one line naming the commit, the host, the stage and the cause
    verdict: FleetVerdict | None  # the failure verdict behind a quarantine
    blessed_by: tuple[str, ...]  # canaries that blessed it so far

    def __init__(
        self,
        kind: HoldKind,
        commit: str,
        message: str,
        verdict: FleetVerdict | None = None,
        blessed_by: tuple[str, ...] = (),
    ) -> None:
        self._init(kind=kind, commit=commit, message=message, verdict=verdict, blessed_by=blessed_by)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind.value, "commit": self.commit, "message": self.message}
        if self.verdict is not None:
            v = self.verdict
            out.update(host=v.host, failed_commit=v.commit, stage=v.stage, cause=v.cause, at=v.at)
        if self.kind is HoldKind.CANARIES:
            out["blessed_by"] = list(self.blessed_by)
        return out


def newest_per_host(verdicts: Iterable[FleetVerdict]) -> list[FleetVerdict]:
    """Keep each host's newest verdict per commit; `verdicts` come oldest first."""
    latest: dict[tuple[str, str], FleetVerdict] = {}
    for v in verdicts:
        latest.pop((v.host, v.commit), None)
        latest[(v.host, v.commit)] = v
    return list(latest.values())


def quarantine(
    *,
    me: str,
    running: str,
    new: str,
    new_commits: Sequence[str],
    verdicts: Iterable[FleetVerdict],
    is_ancestor: Callable[[str, str], bool],
) -> Hold | None:
    """The hold for the first commit in `new_commits` (oldest first) another host failed, unlifted."""
    order = {c: i for i, c in enumerate(new_commits)}
    others = [v for v in newest_per_host(verdicts) if v.host != me and v.commit in order]
    blessed = [v for v in others if v.blessed]
    failed = sorted(
        (v for v in others if not v.blessed and v.stage not in LOCAL_STAGES), key=lambda v: order[v.commit]
    )
    for bad in failed:
        if any(b.commit != bad.commit and is_ancestor(bad.commit, b.commit) for b in blessed):
            continue
        where = "" if bad.commit == new else f" (it lies between the running {running[:12]} and {new[:12]})"
        return Hold(
            HoldKind.QUARANTINE,
            new,
            f"{new[:12]} is quarantined: host {bad.host} failed {bad.commit[:12]} "
            f"at {bad.stage} on {bad.at}: {bad.cause}{where}",
            verdict=bad,
        )
    return None


def canaries(
    *,
    me: str,
    new: str,
    verdicts: Iterable[FleetVerdict],
    needed: int,
    canary_hosts: Sequence[str],
    soak: float | None,
    out_since: float | None,
    now: float,
) -> Hold | None:
    """The hold while too few canaries blessed `new` and it has not soaked long enough; else None."""
    if needed == 0 and soak is None:
        return None
    blessers = tuple(
        sorted(
            {
                v.host
                for v in newest_per_host(verdicts)
                if v.blessed
                and v.commit == new
                and v.host != me
                and (not canary_hosts or v.host in canary_hosts)
            }
        )
    )
    if needed and len(blessers) >= needed:
        return None
    elapsed = None if out_since is None else max(0.0, now - out_since)
    if soak is not None and elapsed is not None and elapsed >= soak:
        return None
    parts = []
    if needed:
        among = f" among {', '.join(canary_hosts)}" if canary_hosts else ""
        parts.append(
            f"blessed by {len(blessers)} of the {needed} canaries needed{among} "
            f"({', '.join(blessers) or 'none yet'})"
        )
    if soak is not None:
        parts.append(f"out {_span(elapsed or 0.0)} of the {_span(soak)} soak without a failure")
    return Hold(
        HoldKind.CANARIES, new, f"{new[:12]} waits for canaries: {'; or '.join(parts)}", blessed_by=blessers
    )


def _span(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}{_span(s % size) if s % size else ''}"
    return f"{s}s"
