"""Run checks concurrently, each with its timeout, retries, backoff, grace and dependencies, under
one deadline for the whole validation.

Every check gets a daemon thread; every attempt runs in a further daemon thread that the check
abandons at the attempt's timeout. So a check stuck where no timeout reaches (getaddrinfo, a
driver call) cannot hold the decision: the main thread decides at the deadline at the latest
(greenboot-rs issue 83 and greenboot issue 143 are hung checks that blocked rollback for hours).
Subprocesses are killed by the subprocess seam at the same timeout.
"""

from __future__ import annotations

import queue
import threading
import time

from bootguard.validator import checks as checks_mod
from bootguard.validator.results import CheckResult, Report, Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bootguard.validator.checks import CheckProbe
    from bootguard.validator.spec import CheckSpec

    ProbeFn = Callable[[CheckSpec, float], CheckProbe]
    Tick = Callable[[int, int], None]

# Extra time an attempt gets beyond its timeout before it is abandoned: lets the subprocess seam
# report its own kill instead of a bare "no answer".
_MARGIN = 0.25


class _Slot:
    """One check's mutable run state; the result is set once (first writer wins)."""

    def __init__(self, check: CheckSpec) -> None:
        self.check = check
        self.done = threading.Event()
        self.result: CheckResult | None = None
        self.started: float | None = None
        self._lock = threading.Lock()

    def finish(self, result: CheckResult, finished: queue.SimpleQueue[str] | None = None) -> None:
        with self._lock:
            if self.result is not None:
                return
            self.result = result
        self.done.set()
        if finished is not None:
            finished.put(self.check.name)


def _attempt(probe: ProbeFn, check: CheckSpec, budget: float) -> CheckProbe:
    """One attempt in its own thread, abandoned (not awaited) after `budget` + margin."""
    box: list[CheckProbe] = []

    def target() -> None:
        try:
            box.append(probe(check, budget))
        # A probe that crashes must count as a failure, not look like a hang until the timeout.
        except Exception as exc:
            message = f"internal error in the {check.kind.value} check: {exc!r}"
            box.append(checks_mod.CheckProbe.failed(message))

    worker = threading.Thread(target=target, name=f"check:{check.name}", daemon=True)
    worker.start()
    worker.join(budget + min(_MARGIN, budget / 4))
    if box:
        return box[0]
    return checks_mod.CheckProbe.timeout(f"no answer within {budget:g} s")


class _Run:
    def __init__(
        self, checks: Sequence[CheckSpec], end: float, probe: ProbeFn, clock: Callable[[], float]
    ) -> None:
        self.slots = {c.name: _Slot(c) for c in checks}
        self.end = end
        self.probe = probe
        self.clock = clock
        self.finished: queue.SimpleQueue[str] = queue.SimpleQueue()

    def _wait_for_dependencies(self, slot: _Slot) -> str | None:
        """None when every dependency passed, else why this check is skipped ("" = deadline)."""
        for dep in slot.check.after:
            other = self.slots[dep]
            if not other.done.wait(max(0.0, self.end - self.clock())):
                return ""
            assert other.result is not None
            if not other.result.result.ok:
                return f"skipped: {dep} did not pass ({other.result.result.value})"
        return None

    def drive(self, slot: _Slot) -> None:
        check = slot.check
        why = self._wait_for_dependencies(slot)
        if why == "":
            return  # the deadline passed; the main thread records it
        if why is not None:
            slot.finish(CheckResult(check.name, check.required, Result.SKIPPED, 0.0, why), self.finished)
            return
        started = slot.started = self.clock()
        attempt, last = 0, None
        while True:
            attempt += 1
            delay = check.delay_before(attempt)
            if delay and self.clock() + delay >= self.end:
                break
            time.sleep(delay)
            remaining = self.end - self.clock()
            if remaining <= 0:
                break
            last = _attempt(self.probe, check, min(check.timeout, remaining))
            out_of_retries = attempt > check.retries and self.clock() - started >= check.grace
            if last.ok or out_of_retries:
                break
        if last is None:
            return  # not even one attempt before the deadline: the main thread records it
        result = Result.PASS if last.ok else (Result.TIMEOUT if last.timed_out else Result.FAIL)
        seconds = self.clock() - started
        slot.finish(
            CheckResult(check.name, check.required, result, seconds, last.message, attempt), self.finished
        )

    def wait(self, tick: Tick | None, interval: float) -> bool:
        """Wait for all checks or the deadline; True when the deadline cut the run short."""
        total = len(self.slots)
        while True:
            done = sum(s.done.is_set() for s in self.slots.values())
            if tick is not None:
                tick(done, total)
            if done == total:
                return False
            remaining = self.end - self.clock()
            if remaining <= 0:
                return True
            try:
                self.finished.get(timeout=min(interval, remaining))
            except queue.Empty:
                pass

    def close(self, deadline: float) -> None:
        """Record every unfinished check as timed out by the whole-validation deadline."""
        now = self.clock()
        for slot in self.slots.values():
            c = slot.check
            seconds = now - slot.started if slot.started is not None else 0.0
            msg = f"the validation deadline ({deadline:g} s) passed before this check finished"
            slot.finish(CheckResult(c.name, c.required, Result.TIMEOUT, seconds, msg))


def run_checks(
    checks: Sequence[CheckSpec],
    *,
    deadline: float,
    probe: ProbeFn = checks_mod.probe,
    tick: Tick | None = None,
    tick_interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """Run `checks` concurrently; return within `deadline` seconds (plus scheduling noise).

    `tick(done, total)` is called from the calling thread at least every `tick_interval` seconds,
    so a service watchdog fed from it stops being fed if this thread ever hangs.
    """
    wall_start = time.time()
    start = clock()
    run = _Run(checks, start + deadline, probe, clock)
    for slot in run.slots.values():
        threading.Thread(target=run.drive, args=(slot,), name=f"drive:{slot.check.name}", daemon=True).start()
    cut = run.wait(tick, tick_interval)
    run.close(deadline)
    results = tuple(s.result for s in run.slots.values() if s.result is not None)
    return Report(results, wall_start, clock() - start, deadline_hit=cut)
