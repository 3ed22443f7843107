"""From a report to what happens next: bless, or reject and then reboot, wait, or stay up.

Pure functions over values, so every branch is testable without a boot loader. The core's verdict
(`boot.BootDecision`) can veto a reboot: a failed boot *on golden* halts instead, because there is
nothing better to fall back to and a reboot loop of our own would help nobody.
"""

from __future__ import annotations

import enum

import attrs

from bootguard.validator.spec import FailureMode, FailurePolicy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.validator.results import Report


class Verdict(enum.Enum):
    GOOD = "good"
    BAD = "bad"


class Step(enum.Enum):
    """What `bootguard validate` does once the entry is blessed or marked."""

    CONTINUE = "continue"  # good boot: READY=1, stay up
    REBOOT = "reboot"  # bad boot: reboot now
    REBOOT_LATER = "reboot-later"  # bad boot: reboot after a delay (time to log in and look)
    STAY = "stay"  # bad boot: stay up and report (policy `report`, or halted on golden)


@attrs.frozen
class Decision:
    verdict: Verdict
    reason: str

    @classmethod
    def of(cls, report: Report) -> Decision:
        if report.passed:
            return cls(Verdict.GOOD, report.summary())
        return cls(Verdict.BAD, "; ".join(f"{c.name}: {c.message}" for c in report.failed_required))


@attrs.frozen
class Plan:
    step: Step
    delay: float = 0.0


def plan(verdict: Verdict, policy: FailurePolicy, *, core_allows_reboot: bool) -> Plan:
    """The step after blessing/marking. `core_allows_reboot` is False when the core halted."""
    if verdict is Verdict.GOOD:
        return Plan(Step.CONTINUE)
    if not core_allows_reboot:
        return Plan(Step.STAY)
    match policy.mode:
        case FailureMode.REBOOT:
            return Plan(Step.REBOOT)
        case FailureMode.REBOOT_AFTER:
            return Plan(Step.REBOOT_LATER, policy.delay) if policy.delay > 0 else Plan(Step.REBOOT)
        case FailureMode.REPORT:
            return Plan(Step.STAY)
