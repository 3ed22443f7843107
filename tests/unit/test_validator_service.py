"""The validate flow with fakes at its seams: boot (the core's verdict), recorder, journal, sd_notify,
reboot. Checks are fake probes; notifications use a fake sender through the real dispatcher."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bootguard.errors import ExitCode, ReadOnlyError
from bootguard.seams import proc
from bootguard.validator import service
from bootguard.validator.boot import BootDecision, Next
from bootguard.validator.checks import CheckProbe
from bootguard.validator.decision import Step
from bootguard.validator.journal import Journal
from bootguard.validator.notify.base import Notification, NotifyError
from bootguard.validator.notify.dispatch import Dispatcher
from bootguard.validator.notify.queue import NotifyQueue
from bootguard.validator.notify.sender import Sender
from bootguard.validator.spec import (
    CheckKind,
    CheckSpec,
    FailureMode,
    FailurePolicy,
    NotifierKind,
    NotifierSpec,
    PathTarget,
    ValidatorConfig,
)


class FakeBoot:
    def __init__(self, next_on_failure: Next = Next.REBOOT, bless_error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.next_on_failure = next_on_failure
        self.bless_error = bless_error

    def entry(self) -> str | None:
        return "a+2-1.conf"

    def passed(self) -> BootDecision:
        self.calls.append("passed")
        if self.bless_error:
            raise self.bless_error
        return BootDecision(Next.CONTINUE, ("marked good: a+2-1.conf → a.conf",))

    def failed(self, reason: str) -> BootDecision:
        self.calls.append(f"failed: {reason}")
        return BootDecision(self.next_on_failure, ("marked bad: a+2-1.conf → a+0-1.conf",))


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []

    def event(
        self,
        kind: str,
        message: str,
        *,
        entry: str | None = None,
        cause: str | None = None,
        data: object = None,
    ) -> None:
        self.events.append((kind, message, cause))


class FakeSd:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def ready(self, status: str | None = None) -> None:
        self.sent.append("READY")

    def status(self, text: str) -> None:
        self.sent.append(f"STATUS={text}")

    def stopping(self) -> None:
        self.sent.append("STOPPING")

    def extend_timeout(self, seconds: float) -> None:
        self.sent.append(f"EXTEND={seconds:g}")

    def ping(self, *, force: bool = False) -> bool:
        self.sent.append("WATCHDOG")
        return True


class FakeSender(Sender):
    def __init__(self, fail: bool = False) -> None:
        super().__init__(NotifierSpec("hook", NotifierKind.WEBHOOK, (("url", "http://x"),)))
        self.fail = fail
        self.got: list[Notification] = []

    def send(self, notification: Notification) -> None:
        if self.fail:
            raise NotifyError("hook: connection refused")
        self.got.append(notification)


def _probe(failing: set[str]) -> Callable[[CheckSpec, float], CheckProbe]:
    def probe(check: CheckSpec, timeout: float) -> CheckProbe:
        if check.name in failing:
            return CheckProbe.failed(f"{check.name} is down")
        return CheckProbe.passed("up")

    return probe


@pytest.fixture(autouse=True)
def systemctl(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every subprocess of the flow is recorded; systemd-bless-boot is reported masked."""
    calls: list[tuple[str, ...]] = []

    def run(argv: list[str], **kw: object) -> proc.Completed:
        calls.append(tuple(argv))
        out = "masked\n" if "is-enabled" in argv else "activating\n"
        return proc.Completed(tuple(argv), 0, out, "")

    monkeypatch.setattr(proc, "run", run)
    return calls


class Harness:
    """The fakes of one flow, typed, for assertions."""

    def __init__(self, boot: FakeBoot) -> None:
        self.boot = boot
        self.recorder = FakeRecorder()
        self.sd = FakeSd()
        self.reboots: list[int] = []
        self.sleeps: list[float] = []
        self.stream = io.StringIO()


def _setup(
    tmp_path: Path,
    failing: set[str],
    *,
    policy: FailurePolicy | None = None,
    boot: FakeBoot | None = None,
    sender: FakeSender | None = None,
) -> tuple[ValidatorConfig, service.Services, Harness]:
    checks = (
        CheckSpec("sshd", CheckKind.PATH, PathTarget("/")),
        CheckSpec("web", CheckKind.PATH, PathTarget("/")),
        CheckSpec("extra", CheckKind.PATH, PathTarget("/"), required=False),
    )
    cfg = ValidatorConfig(checks, deadline=10, on_failure=policy or FailurePolicy())
    h = Harness(boot or FakeBoot())
    svc = service.Services(
        boot=h.boot,
        recorder=h.recorder,
        journal=Journal(str(tmp_path / "no-journal"), stream=h.stream),
        sd=h.sd,  # type: ignore[arg-type]  # duck-typed stand-in for the sd_notify wrapper
        dispatcher=Dispatcher([sender or FakeSender()], NotifyQueue(tmp_path)),
        state_dir=str(tmp_path),
        reboot=lambda: h.reboots.append(1),
        probe=_probe(failing),
        sleep=h.sleeps.append,
        conflict_root=str(tmp_path),
    )
    return cfg, svc, h


def _last(tmp_path: Path) -> dict[str, object]:
    doc = json.loads((tmp_path / "last-validation.json").read_text())
    assert isinstance(doc, dict)
    return doc


def test_all_required_pass_blesses_and_signals_ready(tmp_path: Path) -> None:
    """Required checks pass (a wanted one fails) → bless, READY=1, exit 0, no reboot, no notification."""
    sender = FakeSender()
    cfg, svc, h = _setup(tmp_path, {"extra"}, sender=sender)
    out = service.validate(cfg, svc)
    assert out.exit_code == 0 and out.step is Step.CONTINUE
    assert h.boot.calls == ["passed"]
    assert h.sd.sent[-1] == "READY"
    assert h.reboots == [] and sender.got == []
    doc = _last(tmp_path)
    assert (doc["result"], doc["decision"], doc["entry"]) == ("pass", "blessed", "a+2-1.conf")
    checks = doc["checks"]
    assert isinstance(checks, list) and [c["name"] for c in checks] == ["sshd", "web", "extra"]
    kinds = [e[0] for e in h.recorder.events]
    assert kinds == ["validation", "check-failed"]


def test_failure_marks_bad_notifies_then_reboots(tmp_path: Path, systemctl: list[tuple[str, ...]]) -> None:
    """A failed required check → recorded with its reason, marked bad, rollback notice, reboot; exit 6."""
    sender = FakeSender()
    cfg, svc, h = _setup(tmp_path, {"web"}, sender=sender)
    out = service.validate(cfg, svc)
    assert out.exit_code == ExitCode.CHECKS_FAILED and out.step is Step.REBOOT
    assert h.boot.calls == ["failed: web: web is down"]
    assert h.reboots == [1]
    assert "READY" not in h.sd.sent
    assert sender.got[0].event.value == "rollback" and sender.got[0].failed == (("web", "web is down"),)
    assert _last(tmp_path)["decision"] == "marked-bad"
    assert ("check-failed", "required check web fail: web is down", "web") in h.recorder.events


def test_reboot_after_delay_keeps_feeding_the_watchdog(tmp_path: Path) -> None:
    """reboot-after:SECONDS extends the start timeout, keeps pinging, then reboots."""
    cfg, svc, h = _setup(tmp_path, {"sshd"}, policy=FailurePolicy(FailureMode.REBOOT_AFTER, 0.3))
    out = service.validate(cfg, svc)
    assert out.step is Step.REBOOT_LATER and h.reboots == [1]
    assert "EXTEND=60.3" in h.sd.sent
    assert h.sleeps and sum(h.sleeps) <= 0.3 + 1e-9


def test_report_mode_stays_up(tmp_path: Path) -> None:
    """on_failure = report marks bad and notifies 'failure' but never reboots."""
    sender = FakeSender()
    cfg, svc, h = _setup(tmp_path, {"sshd"}, policy=FailurePolicy(FailureMode.REPORT), sender=sender)
    out = service.validate(cfg, svc)
    assert out.exit_code == ExitCode.CHECKS_FAILED and out.step is Step.STAY and h.reboots == []
    assert sender.got[0].event.value == "failure"


def test_core_halt_on_golden_overrides_reboot(tmp_path: Path) -> None:
    """When the core halts (golden failed too) the validator does not reboot, whatever the policy."""
    cfg, svc, h = _setup(tmp_path, {"sshd"}, boot=FakeBoot(next_on_failure=Next.HALT))
    out = service.validate(cfg, svc)
    assert out.step is Step.STAY and h.reboots == [] and _last(tmp_path)["decision"] == "halted"


def test_recovery_after_a_failed_run_is_notified(tmp_path: Path) -> None:
    """A pass after a failed validation sends a recovery notice."""
    (tmp_path / "last-validation.json").write_text('{"result": "fail"}')
    sender = FakeSender()
    cfg, svc, _ = _setup(tmp_path, set(), sender=sender)
    service.validate(cfg, svc)
    assert [n.event.value for n in sender.got] == ["recovery"]


def test_unreachable_notifier_never_blocks_the_reboot(tmp_path: Path) -> None:
    """Delivery fails → queued in the state dir, and the rollback reboot happens anyway."""
    cfg, svc, h = _setup(tmp_path, {"sshd"}, sender=FakeSender(fail=True))
    service.validate(cfg, svc)
    assert h.reboots == [1]
    assert len(list((tmp_path / "notify-queue").glob("*.json"))) == 1


def test_failed_bless_is_reported_truthfully(tmp_path: Path) -> None:
    """Checks pass but the ESP is read-only → the error propagates (non-zero exit), no READY."""
    boot = FakeBoot(bless_error=ReadOnlyError("cannot rename /efi/loader/entries/a+2-1.conf: read-only"))
    cfg, svc, h = _setup(tmp_path, set(), boot=boot)
    with pytest.raises(ReadOnlyError):
        service.validate(cfg, svc)
    assert "READY" not in h.sd.sent
    assert _last(tmp_path)["decision"] == "bless-failed"
    assert "blessing failed" in h.stream.getvalue()


def test_bless_conflict_is_reported_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An enabled systemd-bless-boot.service is named in the journal with `systemctl mask`."""
    monkeypatch.setattr(proc, "run", lambda argv, **kw: proc.Completed(tuple(argv), 0, "enabled\n", ""))
    cfg, svc, h = _setup(tmp_path, set())
    out = service.validate(cfg, svc)
    assert any("systemctl mask systemd-bless-boot.service" in m for m in out.messages)
    assert "systemd-bless-boot.service is enabled" in h.stream.getvalue()


def test_boot_deadline_rejects_an_incomplete_boot(tmp_path: Path, systemctl: list[tuple[str, ...]]) -> None:
    """boot-complete.target not active at the deadline → marked bad, recorded as boot-deadline, reboot."""
    cfg, svc, h = _setup(tmp_path, set())
    out = service.boot_deadline(cfg, svc)
    assert ("systemctl", "is-active", "boot-complete.target") in systemctl
    assert out.exit_code == ExitCode.CHECKS_FAILED and h.reboots == [1]
    assert h.boot.calls[0].startswith("failed: boot-complete.target was not reached")
    assert h.recorder.events[0][2] == "boot-deadline"
    assert _last(tmp_path)["cause"] == "boot-deadline"


def test_boot_deadline_does_nothing_after_a_complete_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If boot-complete.target was reached the deadline unit exits 0 and touches nothing."""
    monkeypatch.setattr(proc, "run", lambda argv, **kw: proc.Completed(tuple(argv), 0, "active\n", ""))
    cfg, svc, h = _setup(tmp_path, set())
    assert service.boot_deadline(cfg, svc).exit_code == 0
    assert h.boot.calls == [] and h.reboots == []
