"""From verdict and policy to the next step."""

from __future__ import annotations

import pytest

from bootguard.validator.decision import Decision, Plan, Step, Verdict, plan
from bootguard.validator.results import CheckResult, Report, Result
from bootguard.validator.spec import FailureMode, FailurePolicy

REBOOT = FailurePolicy(FailureMode.REBOOT)
LATER = FailurePolicy(FailureMode.REBOOT_AFTER, 60)
REPORT = FailurePolicy(FailureMode.REPORT)


@pytest.mark.parametrize(
    ("verdict", "policy", "allows", "expected"),
    [
        (Verdict.GOOD, REBOOT, True, Plan(Step.CONTINUE)),
        (Verdict.GOOD, REPORT, False, Plan(Step.CONTINUE)),
        (Verdict.BAD, REBOOT, True, Plan(Step.REBOOT)),
        (Verdict.BAD, LATER, True, Plan(Step.REBOOT_LATER, 60)),
        (Verdict.BAD, FailurePolicy(FailureMode.REBOOT_AFTER, 0), True, Plan(Step.REBOOT)),
        (Verdict.BAD, REPORT, True, Plan(Step.STAY)),
        (Verdict.BAD, REBOOT, False, Plan(Step.STAY)),  # the core halted (on golden)
        (Verdict.BAD, LATER, False, Plan(Step.STAY)),
    ],
)
def test_plan(verdict: Verdict, policy: FailurePolicy, allows: bool, expected: Plan) -> None:
    """Good continues; bad follows on_failure unless the core halted, which always stays up."""
    assert plan(verdict, policy, core_allows_reboot=allows) == expected


def test_decision_names_failed_required_checks_only() -> None:
    """The reason given to the core lists each failed required check and why."""
    report = Report(
        (
            CheckResult("sshd", True, Result.FAIL, 1.0, "sshd exited 1"),
            CheckResult("web", True, Result.TIMEOUT, 5.0, "no answer within 5 s"),
            CheckResult("extra", False, Result.FAIL, 0.1, "meh"),
            CheckResult("disk", True, Result.PASS, 0.0, "ok"),
        ),
        0.0,
        6.0,
    )
    d = Decision.of(report)
    assert d.verdict is Verdict.BAD
    assert d.reason == "sshd: sshd exited 1; web: no answer within 5 s"
