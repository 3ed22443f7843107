"""The runner: concurrency, per-attempt timeouts, retries, grace, dependencies and the deadline.

Probes are fakes at the probe seam (plain functions); real processes are in the integration tests.
Time bounds are generous on purpose: the 2-core CI machine is shared and a 0.3 s sleep can take 1 s
there, so each bound only separates "concurrent / abandoned" from "serial / waited for".
"""

from __future__ import annotations

import threading
import time

import pytest

from bootguard.validator.checks import CheckProbe
from bootguard.validator.results import Result
from bootguard.validator.runner import run_checks
from bootguard.validator.spec import CheckKind, CheckSpec, PathTarget


def _spec(name: str, **kw: object) -> CheckSpec:
    return CheckSpec(name, CheckKind.PATH, PathTarget("/" + name), **kw)  # type: ignore[arg-type]


def _sleepy(seconds: float) -> object:
    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        time.sleep(seconds)
        return CheckProbe.passed("ok")

    return probe


def test_checks_run_concurrently() -> None:
    """Ten 0.5 s checks take about 0.5 s, not 5 s."""
    start = time.monotonic()
    report = run_checks([_spec(f"c{i}") for i in range(10)], deadline=20, probe=_sleepy(0.5))  # type: ignore[arg-type]
    assert time.monotonic() - start < 2.5
    assert report.passed and len(report.checks) == 10


def test_hung_probe_is_abandoned_at_its_timeout() -> None:
    """A probe stuck where no timeout reaches is given up at timeout (+ a small margin)."""
    release = threading.Event()

    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        release.wait(30)
        return CheckProbe.passed("too late")

    start = time.monotonic()
    report = run_checks([_spec("hang", timeout=0.4)], deadline=20, probe=probe)
    release.set()
    assert time.monotonic() - start < 3.0
    assert report.checks[0].result is Result.TIMEOUT
    assert "no answer within 0.4 s" in report.checks[0].message


def test_retries_with_backoff_until_pass() -> None:
    """A check failing twice then passing passes on attempt 3 after backoff 0.1 + 0.2 s."""
    calls: list[float] = []

    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        calls.append(time.monotonic())
        return CheckProbe.passed("up") if len(calls) == 3 else CheckProbe.failed("down")

    report = run_checks([_spec("flaky", retries=2, backoff=0.1)], deadline=10, probe=probe)
    c = report.checks[0]
    assert (c.result, c.attempts, c.message) == (Result.PASS, 3, "up")
    assert calls[1] - calls[0] >= 0.09 and calls[2] - calls[1] >= 0.19


def test_retries_exhausted_is_a_failure_with_the_last_message() -> None:
    """After 1 + retries failed attempts the check fails with the last reason."""
    n = [0]

    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        n[0] += 1
        return CheckProbe.failed(f"down {n[0]}")

    c = run_checks([_spec("x", retries=1, backoff=0.01)], deadline=10, probe=probe).checks[0]
    assert (c.result, c.attempts, c.message) == (Result.FAIL, 2, "down 2")


def test_grace_keeps_retrying_something_that_comes_up_late() -> None:
    """With grace 1 s and no retries, a service that comes up after 0.5 s still passes."""
    start = time.monotonic()

    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        return CheckProbe.passed("up") if time.monotonic() - start > 0.5 else CheckProbe.failed("not yet")

    c = run_checks([_spec("late", grace=1.0, backoff=0.05)], deadline=10, probe=probe).checks[0]
    assert c.result is Result.PASS and c.attempts > 1


def test_dependency_runs_after_and_is_skipped_when_it_fails() -> None:
    """`after` orders checks; a failed dependency skips its dependants instead of running them."""
    order: list[str] = []

    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        order.append(check.name)
        time.sleep(0.05)
        return CheckProbe.failed("no") if check.name == "net" else CheckProbe.passed("yes")

    checks = [_spec("web", after=("net",)), _spec("net"), _spec("disk"), _spec("db", after=("disk",))]
    report = run_checks(checks, deadline=10, probe=probe)
    by = {c.name: c for c in report.checks}
    assert by["web"].result is Result.SKIPPED and "net did not pass" in by["web"].message
    assert by["db"].result is Result.PASS
    assert order.index("db") > order.index("disk") and "web" not in order
    assert [c.name for c in report.checks] == ["web", "net", "disk", "db"]  # configuration order


def test_whole_validation_deadline_cuts_everything_short() -> None:
    """Checks still running (or retrying) at the deadline are timed out; the run ends at the deadline."""
    start = time.monotonic()
    report = run_checks(
        [_spec("slow", timeout=10), _spec("wait", after=("slow",))],
        deadline=0.5,
        probe=_sleepy(8),  # type: ignore[arg-type]
    )
    assert time.monotonic() - start < 3.0
    assert report.deadline_hit and not report.passed
    assert {c.result for c in report.checks} == {Result.TIMEOUT}
    assert "deadline" in report.checks[1].message


def test_wanted_failures_do_not_fail_the_report() -> None:
    """Only required checks decide; wanted ones are reported."""

    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        return CheckProbe.failed("meh") if check.name == "nice" else CheckProbe.passed("ok")

    report = run_checks([_spec("must"), _spec("nice", required=False)], deadline=5, probe=probe)
    assert report.passed and report.failed_wanted[0].name == "nice"
    assert report.summary() == "all 1 required checks passed, 1 wanted failed"


def test_crashing_probe_fails_at_once() -> None:
    """A probe raising an exception is a failure reported immediately, not a hang until the timeout."""

    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        raise RuntimeError("boom")

    start = time.monotonic()
    c = run_checks([_spec("bug", timeout=10)], deadline=20, probe=probe).checks[0]
    assert time.monotonic() - start < 3.0
    assert c.result is Result.FAIL and "boom" in c.message


def test_tick_is_called_from_the_caller_while_waiting() -> None:
    """tick(done, total) runs in the calling thread at least every tick_interval (feeds the watchdog)."""
    seen: list[tuple[int, int, str]] = []
    run_checks(
        [_spec("a")],
        deadline=5,
        probe=_sleepy(0.6),  # type: ignore[arg-type]
        tick=lambda d, t: seen.append((d, t, threading.current_thread().name)),
        tick_interval=0.1,
    )
    assert len(seen) >= 2
    assert seen[-1][:2] == (1, 1)
    assert {name for _, _, name in seen} == {threading.current_thread().name}


def test_no_checks_pass_immediately() -> None:
    """An empty configuration passes (like boot-complete.target alone) and says so."""
    report = run_checks([], deadline=5)
    assert report.passed and report.summary() == "no checks configured"


@pytest.mark.parametrize(("attempt", "delay"), [(1, 0.0), (2, 0.5), (3, 1.0), (4, 2.0), (20, 30.0)])
def test_backoff_doubles_and_is_capped(attempt: int, delay: float) -> None:
    """delay_before: none before the first attempt, then backoff·2^(n-2), capped at 30 s."""
    assert _spec("x", backoff=0.5).delay_before(attempt) == delay
