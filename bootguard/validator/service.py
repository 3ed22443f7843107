"""The `bootguard validate` flow of bootguard-validate.service, and the boot-deadline flow.

Order matters and is deliberate: run the checks → record → bless or mark bad (the core's verdict)
→ write last-validation.json → notify (bounded, queued on failure) → metrics → READY=1, or reboot /
wait / stay up. Recording and notifying can fail without stopping the decision; a failed bless
is reported truthfully (non-zero exit, boot-complete.target not reached).
"""

from __future__ import annotations

import socket
import time

import attrs

from bootguard.errors import BootguardError, ExitCode
from bootguard.seams import proc
from bootguard.validator import checks as checks_mod
from bootguard.validator import conflict, record
from bootguard.validator.boot import Next
from bootguard.validator.decision import Decision, Plan, Step, Verdict, plan
from bootguard.validator.journal import MessageId, Priority
from bootguard.validator.notify.base import Notification, NotifyEvent
from bootguard.validator.results import Report
from bootguard.validator.runner import run_checks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from bootguard.validator.boot import Boot, BootDecision
    from bootguard.validator.journal import Journal
    from bootguard.validator.notify.dispatch import Dispatcher
    from bootguard.validator.record import Recorder
    from bootguard.validator.runner import ProbeFn
    from bootguard.validator.sdnotify import Notifier
    from bootguard.validator.spec import ValidatorConfig


def system_reboot() -> None:
    """Reboot through the service manager (clean shutdown, journal flushed)."""
    proc.run(["systemctl", "reboot"], timeout=60)


@attrs.define
class Services:
    """Everything the flow touches; tests replace members, production uses `for_host`."""

    boot: Boot
    recorder: Recorder
    journal: Journal
    sd: Notifier
    dispatcher: Dispatcher
    state_dir: str
    reboot: Callable[[], None] = system_reboot
    probe: ProbeFn = checks_mod.probe
    sleep: Callable[[float], None] = time.sleep
    metrics: Callable[[Report | None], None] | None = None
    conflict_root: str = "/"
    host: str = attrs.field(factory=socket.gethostname)

    def notification_failed(self, name: str, error: str, event: str) -> None:
        """Journal + `notification-failed` event; `error` is already redacted by the sender."""
        text = f"notification {event} via {name} not delivered (queued for the next run): {error}"
        self.journal.send(text, MessageId.NOTIFICATION_FAILED, Priority.WARNING, notifier=name)
        try:
            self.recorder.event("notification-failed", text, cause=name, data={"event": event})
        except (BootguardError, OSError) as exc:
            msg = exc.message if isinstance(exc, BootguardError) else str(exc)
            self.journal.send(f"could not record it: {msg}", MessageId.NOTIFICATION_FAILED, Priority.ERR)


def for_host(
    cfg: ValidatorConfig,
    *,
    esp: str | None,
    xbootldr: str | None,
    efivars: str,
    state_dir: str,
    promote_after: int | None = None,
    grub_env: str | None = None,
    cmdline: str = "/proc/cmdline",
) -> Services:
    """The real services: core blessing, event log, journald, sd_notify, notifiers, metrics."""
    from bootguard import metrics
    from bootguard.validator import notify
    from bootguard.validator.boot import CoreBoot, GrubBoot
    from bootguard.validator.journal import Journal
    from bootguard.validator.notify.dispatch import Dispatcher
    from bootguard.validator.notify.queue import NotifyQueue
    from bootguard.validator.record import StateRecorder
    from bootguard.validator.sdnotify import Notifier

    senders = [notify.build(n) for n in cfg.notifiers]
    dispatcher = Dispatcher(senders, NotifyQueue(state_dir))
    sources = metrics.Sources(state_dir, esp=esp, xbootldr=xbootldr, efivars=efivars)

    def write_metrics(report: Report | None) -> None:
        # The whole host's metrics, read back from what this run wrote (last-validation.json, events).
        # Without a configured file: $BOOTGUARD_METRICS_FILE, else node-exporter's directory if present.
        path = metrics.target(cfg.metrics_file)
        if path is not None:
            metrics.export(sources, path)

    boot = (
        GrubBoot(grub_env, state_dir, cmdline)
        if grub_env
        else CoreBoot(esp, xbootldr, efivars, state_dir, promote_after=promote_after)
    )
    svc = Services(
        boot=boot,
        recorder=StateRecorder(state_dir),
        journal=Journal(),
        sd=Notifier(),
        dispatcher=dispatcher,
        state_dir=state_dir,
        metrics=write_metrics,
    )
    dispatcher.on_failure = svc.notification_failed
    return svc


@attrs.frozen
class Outcome:
    exit_code: int
    messages: tuple[str, ...]
    report: Report | None = None
    step: Step | None = None


class _Flow:
    def __init__(self, cfg: ValidatorConfig, svc: Services) -> None:
        self.cfg, self.svc = cfg, svc
        self.messages: list[str] = []
        self.entry: str | None = None

    # -- helpers ----------------------------------------------------------------------------

    def say(self, text: str, mid: MessageId, prio: Priority = Priority.INFO, **fields: object) -> None:
        self.messages.append(text)
        self.svc.journal.send(text, mid, prio, entry=self.entry, **fields)

    def guarded(self, what: str, fn: Callable[[], object]) -> None:
        """Run a bookkeeping step that must not stop the decision; report its failure."""
        try:
            fn()
        except (BootguardError, OSError) as exc:
            text = exc.message if isinstance(exc, BootguardError) else str(exc)
            self.say(f"could not {what}: {text}", MessageId.VALIDATION_FAILED, Priority.ERR)

    def find_entry(self) -> None:
        try:
            self.entry = self.svc.boot.entry()
        except BootguardError as exc:
            self.messages.append(f"cannot tell which entry is booted: {exc.message}")

    def warn_conflict(self) -> None:
        found = conflict.detect(root=self.svc.conflict_root)
        if found is not None:
            self.say(
                f"{found.reason}: it would bless this boot too; {found.hint}",
                MessageId.BLESS_CONFLICT,
                Priority.WARNING,
            )

    # -- steps ------------------------------------------------------------------------------

    def run(self) -> Report:
        sd = self.svc.sd
        total = len(self.cfg.checks)
        sd.status(f"running {total} checks (deadline {self.cfg.deadline:g} s)")
        last = [-1]

        def tick(done: int, all_: int) -> None:
            sd.ping()
            if done != last[0]:
                last[0] = done
                sd.status(f"checks: {done}/{all_} done")

        report = run_checks(self.cfg.checks, deadline=self.cfg.deadline, probe=self.svc.probe, tick=tick)
        sd.ping(force=True)
        return report

    def tell_report(self, report: Report) -> None:
        for c in report.checks:
            if not c.result.ok:
                prio = Priority.ERR if c.required else Priority.WARNING
                self.svc.journal.send(
                    f"check {c.name} {c.result.value}: {c.message}",
                    MessageId.CHECK_FAILED,
                    prio,
                    check=c.name,
                    required=c.required,
                    result=c.result.value,
                    seconds=round(c.seconds, 3),
                    entry=self.entry,
                )
        mid = MessageId.VALIDATION_PASSED if report.passed else MessageId.VALIDATION_FAILED
        self.say(
            f"validation {report.result} in {report.seconds:.1f} s: {report.summary()}",
            mid,
            Priority.INFO if report.passed else Priority.ERR,
            result=report.result,
        )
        self.guarded(
            "record the validation in the event log",
            lambda: record.record_report(self.svc.recorder, report, self.entry),
        )

    def verdict(self, decision: Decision) -> BootDecision | None:
        boot = self.svc.boot
        if decision.verdict is Verdict.GOOD:
            core = boot.passed()  # a failed bless must fail the service: no guard here
            for m in core.messages:
                self.say(m, MessageId.BLESSED)
            return core
        try:
            core = boot.failed(decision.reason)
        except BootguardError as exc:
            # Rejecting must never depend on the ESP being writable: the loader's counter still
            # counts this boot down, so reboot anyway.
            self.say(f"could not mark this boot bad: {exc.message}", MessageId.MARKED_BAD, Priority.ERR)
            return None
        for m in core.messages:
            self.say(m, MessageId.MARKED_BAD, Priority.WARNING)
        return core

    def notify(self, event: NotifyEvent | None, title: str, report: Report | None, reason: str) -> None:
        svc = self.svc
        svc.sd.ping(force=True)
        self.guarded("retry queued notifications", svc.dispatcher.retry_queued)
        if event is None:
            return
        failed = tuple((c.name, c.message) for c in report.failed_required) if report else ()
        note = Notification(event, title, reason, svc.host, time.time(), self.entry, failed)
        self.guarded("send notifications", lambda: svc.dispatcher.deliver(note))
        svc.sd.ping(force=True)

    def finish(self, p: Plan) -> None:
        svc = self.svc
        if p.step is Step.REBOOT_LATER:
            self.say(f"rebooting in {p.delay:g} s", MessageId.REBOOTING, Priority.WARNING)
            svc.sd.extend_timeout(p.delay + 60)
            left = p.delay
            while left > 0:  # in steps, so that the service watchdog keeps being fed
                svc.sd.status(f"validation failed; rebooting in {left:.0f} s")
                svc.sd.ping()
                svc.sleep(min(1.0, left))
                left -= 1.0
        if p.step in (Step.REBOOT, Step.REBOOT_LATER):
            self.say("rebooting to fall back from this boot", MessageId.REBOOTING, Priority.WARNING)
            svc.sd.stopping()
            svc.reboot()


_TITLES = {
    None: "",
    NotifyEvent.RECOVERY: "boot validated again after a failure",
    NotifyEvent.FAILURE: "boot failed validation",
    NotifyEvent.ROLLBACK: "boot failed validation; rolling back",
}


def _event_for(verdict: Verdict, p: Plan, previous: dict[str, object] | None) -> NotifyEvent | None:
    if verdict is Verdict.GOOD:
        was_bad = previous is not None and previous.get("result") == "fail"
        return NotifyEvent.RECOVERY if was_bad else None
    return NotifyEvent.ROLLBACK if p.step in (Step.REBOOT, Step.REBOOT_LATER) else NotifyEvent.FAILURE


def validate(cfg: ValidatorConfig, svc: Services) -> Outcome:
    """Decide this boot. Exit code 0 when it was blessed, CHECKS_FAILED when it was rejected."""
    flow = _Flow(cfg, svc)
    flow.find_entry()
    flow.warn_conflict()
    previous = record.read_last_validation(svc.state_dir)
    report = flow.run()
    decision = Decision.of(report)
    flow.tell_report(report)
    try:
        core = flow.verdict(decision)
    except BootguardError as exc:
        flow.say(
            f"all required checks passed, but blessing failed: {exc.message}", MessageId.BLESSED, Priority.ERR
        )
        flow.guarded(
            "write last-validation.json", lambda: _write_last(svc, report, flow.entry, "bless-failed")
        )
        raise
    allows = core is None or core.next is Next.REBOOT
    p = plan(decision.verdict, cfg.on_failure, core_allows_reboot=allows)
    label = _decision_label(decision.verdict, core)
    flow.guarded("write last-validation.json", lambda: _write_last(svc, report, flow.entry, label))
    event = _event_for(decision.verdict, p, previous)
    flow.notify(event, _TITLES[event], report, decision.reason)
    write_metrics = svc.metrics
    if write_metrics is not None:
        flow.guarded("write metrics", lambda: write_metrics(report))
    if p.step is Step.CONTINUE:
        flow.guarded("settle the GitOps commit of a finished trial", lambda: _gitops_after_boot(svc, flow))
        svc.sd.ready(report.summary())
        return Outcome(int(ExitCode.OK), tuple(flow.messages), report, p.step)
    flow.finish(p)
    return Outcome(int(ExitCode.CHECKS_FAILED), tuple(flow.messages), report, p.step)


def _gitops_after_boot(svc: Services, flow: _Flow) -> None:
    """GitOps hook: a trial that ended since the last look fails (or deploys) its commit in git."""
    from bootguard.gitops.bootverdict import after_validation

    for settled in after_validation(svc.state_dir, flow.entry, svc.dispatcher):
        for line in settled.messages:
            flow.say(line, MessageId.MARKED_BAD if settled.outcome == "failed" else MessageId.BLESSED)


def _decision_label(verdict: Verdict, core: BootDecision | None) -> str:
    if verdict is Verdict.GOOD:
        return "blessed"
    if core is None:
        return "mark-bad-failed"
    return "halted" if core.next is Next.HALT else "marked-bad"


def _write_last(
    svc: Services, report: Report, entry: str | None, decision: str, extra: dict[str, object] | None = None
) -> None:
    from bootguard.model.events import read_boot_id

    doc = record.last_validation_doc(
        report, entry=entry, decision=decision, boot_id=read_boot_id(), extra=extra
    )
    record.write_last_validation(svc.state_dir, doc)


def boot_deadline(cfg: ValidatorConfig, svc: Services, *, target: str = "boot-complete.target") -> Outcome:
    """Run by bootguard-boot-deadline.service: the boot never completed → reject it and reboot."""
    try:
        done = proc.run(["systemctl", "is-active", target], check=False, timeout=30)
        state = done.stdout.strip() or "unknown"
    except BootguardError as exc:
        state = f"unknown ({exc.message})"
    if state == "active":
        return Outcome(int(ExitCode.OK), (f"{target} was reached; nothing to do",))
    flow = _Flow(cfg, svc)
    flow.find_entry()
    reason = f"{target} was not reached before the boot deadline (it is {state})"
    flow.say(reason, MessageId.BOOT_DEADLINE, Priority.ERR)
    flow.guarded(
        "record the missed deadline",
        lambda: svc.recorder.event(
            "validation",
            f"validation fail: {reason}",
            entry=flow.entry,
            cause="boot-deadline",
            data={"result": "fail", "target": target, "state": state},
        ),
    )
    report = Report((), time.time(), 0.0, deadline_hit=True)
    core = flow.verdict(Decision(Verdict.BAD, reason))
    allows = core is None or core.next is Next.REBOOT
    p = plan(Verdict.BAD, cfg.on_failure, core_allows_reboot=allows)
    label = _decision_label(Verdict.BAD, core)
    extra: dict[str, object] = {"result": "fail", "cause": "boot-deadline", "message": reason}
    flow.guarded("write last-validation.json", lambda: _write_last(svc, report, flow.entry, label, extra))
    flow.notify(_event_for(Verdict.BAD, p, None), "boot never completed", None, reason)
    write_metrics = svc.metrics
    if write_metrics is not None:
        flow.guarded("write metrics", lambda: write_metrics(None))
    flow.finish(p)
    return Outcome(int(ExitCode.CHECKS_FAILED), tuple(flow.messages), report, p.step)
