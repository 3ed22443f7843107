"""The node-exporter textfile: content from state, events and the report; atomic replacement."""

from __future__ import annotations

import stat
from pathlib import Path

from bootguard.model.events import Event, EventKind
from bootguard.model.state import AttemptKind, Golden, State
from bootguard.seams.statestore import StateStore
from bootguard.validator import metrics
from bootguard.validator.results import CheckResult, Report, Result


def _samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[0] != "#"
    }


def _event(kind: EventKind, when: float, cause: str | None = None) -> Event:
    return Event(time=when, kind=kind, message="m", cause=cause)


def test_render_covers_every_documented_metric() -> None:
    """Attempts, failures by cause, rollbacks, golden, last good boot, validation and per-check values."""
    state = (
        State.initial()
        .with_attempt("a.conf", AttemptKind.ATTEMPTED, None, 1.0)
        .with_attempt("a.conf", AttemptKind.ATTEMPTED, None, 2.0)
        .with_attempt("a.conf", AttemptKind.GOOD, None, 2.0)
        .with_golden(Golden("a.conf", "a.conf", 41, 3.0))
    )
    events = [
        _event(EventKind.COUNTED_FAILURE, 10, "watchdog"),
        _event(EventKind.MARKED_BAD, 11, "validation-failed"),
        _event(EventKind.MARKED_BAD, 12, "validation-failed"),
        _event(EventKind.ROLLED_BACK, 13),
        _event(EventKind.BLESSED, 900),
    ]
    report = Report(
        (
            CheckResult("sshd", True, Result.PASS, 0.25, "ok"),
            CheckResult('we"b', False, Result.FAIL, 1.5, "x"),
        ),
        950.0,
        1.75,
    )
    text = metrics.render(metrics.Facts.gather(state, events, report, now=1000.0))
    got = _samples(text)
    assert got['bootguard_boot_attempts_total{entry="a.conf"}'] == 2
    assert got['bootguard_boot_good_total{entry="a.conf"}'] == 1
    assert got['bootguard_boot_failures_total{cause="validation-failed"}'] == 2
    assert got['bootguard_boot_failures_total{cause="watchdog"}'] == 1
    assert got["bootguard_rollbacks_total"] == 1
    assert got['bootguard_golden_info{entry="a.conf",generation="41"}'] == 1
    assert got["bootguard_golden_generation"] == 41
    assert got["bootguard_seconds_since_last_good_boot"] == 100
    assert got["bootguard_last_validation_success"] == 1
    assert got["bootguard_last_validation_duration_seconds"] == 1.75
    assert got['bootguard_check_success{check="we\\"b",required="false",result="fail"}'] == 0
    assert got['bootguard_check_duration_seconds{check="sshd"}'] == 0.25
    assert text.count("# TYPE bootguard_check_success gauge") == 1


def test_no_history_renders_zero_counters_only() -> None:
    """A fresh host exports rollbacks 0 and no golden, no last-good gauges."""
    got = _samples(metrics.render(metrics.Facts.gather(None, [], None, now=5.0)))
    assert got == {"bootguard_rollbacks_total": 0}


def test_collect_and_write_from_a_state_directory(tmp_path: Path) -> None:
    """collect() reads the real state store; write() replaces the file atomically, world-readable."""
    store = StateStore(tmp_path / "state")
    store.append_event(Event.new(EventKind.ROLLED_BACK, "fell back", boot_id="b"))
    out = tmp_path / "textfile" / "bootguard.prom"
    out.parent.mkdir()
    out.write_text("old\n")
    metrics.write(out, metrics.render(metrics.collect(str(tmp_path / "state"), None)))
    assert "bootguard_rollbacks_total 1\n" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["bootguard.prom"]  # no temporary left behind
