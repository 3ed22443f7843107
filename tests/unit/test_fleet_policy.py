"""Quarantine and canary decisions on a small linear history c1 → c2 → c3 → c4."""

from __future__ import annotations

from bootguard.gitops.fleet_policy import HoldKind, canaries, quarantine
from bootguard.gitops.fleet_verdict import FleetVerdict, VerdictOutcome

C1, C2, C3, C4 = ("1" * 40, "2" * 40, "3" * 40, "4" * 40)
ORDER = [C1, C2, C3, C4]


def ancestor(a: str, b: str) -> bool:
    return ORDER.index(a) <= ORDER.index(b)


def v(
    host: str,
    commit: str,
    outcome: str = "failed",
    stage: str = "boot",
    at: str = "2026-12-07T04:00:00+00:00",
) -> FleetVerdict:
    return FleetVerdict(
        host=host,
        commit=commit,
        outcome=VerdictOutcome(outcome),
        stage=stage,
        cause="panic" if outcome == "failed" else "switched",
        at=at,
        bootguard="0.1.0",
    )


def q(new: str, verdicts: list[FleetVerdict], me: str = "c") -> str | None:
    new_commits = ORDER[1 : ORDER.index(new) + 1]  # running C1
    hold = quarantine(
        me=me, running=C1, new=new, new_commits=new_commits, verdicts=verdicts, is_ancestor=ancestor
    )
    assert hold is None or hold.kind is HoldKind.QUARANTINE
    return None if hold is None else hold.message


def test_failed_commit_is_quarantined_naming_host_stage_cause() -> None:
    msg = q(C2, [v("b", C2)])
    assert (
        msg
        == f"{C2[:12]} is quarantined: host b failed {C2[:12]} at boot on 2026-12-07T04:00:00+00:00: panic"
    )


def test_failed_commit_between_running_and_new() -> None:
    msg = q(C3, [v("b", C2)])
    assert msg is not None and msg.endswith(f": panic (it lies between the running {C1[:12]} and {C3[:12]})")


def test_later_blessed_commit_lifts_it_only_for_what_it_contains() -> None:
    assert q(C3, [v("b", C2), v("b", C3, "blessed")]) is None
    assert q(C4, [v("b", C2), v("a", C3, "blessed")]) is None
    # A blessing of the failed commit itself is not a fix.
    assert q(C2, [v("b", C2), v("a", C2, "blessed")]) is not None


def test_own_verdicts_and_local_stages_do_not_quarantine() -> None:
    assert q(C2, [v("c", C2)]) is None
    assert q(C2, [v("b", C2, stage="signature"), v("b", C2, stage="force-push")]) is None


def test_newest_verdict_of_a_host_wins() -> None:
    assert q(C2, [v("b", C2), v("b", C2, "blessed")]) is None
    assert q(C2, [v("b", C2, "blessed"), v("b", C2)]) is not None


def test_failure_of_the_fix_itself_is_not_lifted_by_its_own_blessing() -> None:
    msg = q(C3, [v("b", C2), v("b", C3, "blessed"), v("d", C3)])
    assert msg is not None and f"host d failed {C3[:12]}" in msg


def wait(
    verdicts: list[FleetVerdict],
    *,
    needed: int = 1,
    hosts: tuple[str, ...] = (),
    soak: float | None = None,
    since: float | None = 0.0,
    now: float = 10.0,
) -> str | None:
    hold = canaries(
        me="c",
        new=C2,
        verdicts=verdicts,
        needed=needed,
        canary_hosts=hosts,
        soak=soak,
        out_since=since,
        now=now,
    )
    return None if hold is None else hold.message


def test_canaries_count_other_hosts_blessing_exactly_the_commit() -> None:
    assert wait([], needed=0) is None
    assert wait([v("b", C2, "blessed")]) is None
    assert (
        wait([v("c", C2, "blessed")])
        == f"{C2[:12]} waits for canaries: blessed by 0 of the 1 canaries needed (none yet)"
    )
    assert wait([v("b", C3, "blessed")]) is not None  # another commit
    assert (
        wait([v("b", C2, "blessed"), v("b", C2, "blessed", at="2026-12-07T05:00:00+00:00")], needed=2)
        is not None
    )
    assert wait([v("b", C2, "blessed"), v("a", C2, "blessed")], needed=2) is None


def test_canary_hosts_limit_who_counts() -> None:
    msg = wait([v("b", C2, "blessed")], hosts=("a",))
    assert msg is not None and "needed among a (none yet)" in msg
    assert wait([v("a", C2, "blessed")], hosts=("a",)) is None


def test_soak() -> None:
    assert wait([], soak=5.0, since=0.0, now=5.0) is None
    msg = wait([], soak=3600.0, since=0.0, now=90.0)
    assert msg is not None and "; or out 1m30s of the 1h soak without a failure" in msg
    assert wait([], needed=0, soak=60.0, since=0.0, now=10.0) is not None  # soak alone is a wait too
