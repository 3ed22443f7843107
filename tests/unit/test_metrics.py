"""bootguard.metrics: the whole host's textfile from the state, the event log, last-validation.json,
the notification queue and the watchdog's sysfs; atomic replacement; a failing source is reported."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bootguard import metrics
from bootguard.metrics import textfile
from bootguard.model.events import Event, EventKind
from bootguard.model.state import Golden, Outcome, State, Trial
from bootguard.seams.statestore import StateStore


def samples(text: str) -> dict[str, float]:
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln[0] != "#"}


def families(text: str) -> dict[str, str]:
    """name → TYPE, checking that every family has HELP right before TYPE, once."""
    lines = text.splitlines()
    out: dict[str, str] = {}
    for i, ln in enumerate(lines):
        if ln.startswith("# TYPE "):
            _, _, name, kind = ln.split(" ")
            assert lines[i - 1].startswith(f"# HELP {name} "), name
            assert name not in out, f"{name} declared twice"
            out[name] = kind
    return out


def event(kind: EventKind, when: float, cause: str | None = None, **data: object) -> Event:
    return Event(
        time=when, kind=kind, message="m", cause=cause, boot_id=str(data.pop("boot", "b")), data=data
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def put(state_dir: Path, state: State, events: list[Event]) -> StateStore:
    store = StateStore(state_dir)
    store.update(lambda _: state)
    for e in events:
        store.append_event(e)
    return store


def render(state_dir: Path, tmp_path: Path) -> str:
    src = metrics.Sources(
        str(state_dir), efivars=str(tmp_path / "no-efivars"), watchdog_sysfs=str(tmp_path / "wd")
    )
    return metrics.render(src, now=1000.0)


def test_rolled_back_host_counts_failures_by_cause_and_says_it_fell_back(
    state_dir: Path, tmp_path: Path
) -> None:
    """Failures fold into the closed cause set (zeros included), watchdog resets and the rollback are
    counted once each, and the host is on golden after a rollback."""
    state = (
        State.initial()
        .with_attempt("gen-1.conf", Outcome.ATTEMPTED, None, 1.0)
        .with_attempt("gen-1.conf", Outcome.GOOD, None, 2.0)
        .with_golden(Golden("gen-1", "gen-1.conf", 1, 3.0))
    )
    events = [
        event(EventKind.BOOT_ATTEMPTED, 5, counted=False),
        event(EventKind.BLESSED, 6),
        event(EventKind.TRIAL_STARTED, 10),
        event(EventKind.BOOT_ATTEMPTED, 11, counted=True),
        event(EventKind.COUNTED_FAILURE, 20, "kernel-panic"),
        event(EventKind.COUNTED_FAILURE, 30, "watchdog-reset"),
        event(EventKind.WATCHDOG_RESET, 30, "watchdog-reset"),
        event(EventKind.ROLLED_BACK, 31, "watchdog-reset"),
    ]
    put(state_dir, state, events)
    text = render(state_dir, tmp_path)
    got = samples(text)
    assert got['bootguard_boot_failures_total{cause="panic"}'] == 1
    assert got['bootguard_boot_failures_total{cause="watchdog-reset"}'] == 1
    assert got['bootguard_boot_failures_total{cause="deadline"}'] == 0
    assert got["bootguard_watchdog_resets_total"] == 1
    assert got["bootguard_rollbacks_total"] == 1
    assert got["bootguard_fell_back_to_golden"] == 1
    assert got["bootguard_last_rollback_timestamp_seconds"] == 31
    assert got["bootguard_last_watchdog_reset_timestamp_seconds"] == 30
    assert (
        got['bootguard_boots_total{counted="true"}'] == 1
        and got['bootguard_boots_total{counted="false"}'] == 1
    )
    assert got['bootguard_golden_info{entry="gen-1.conf",generation="1"}'] == 1
    assert got["bootguard_golden_generation"] == 1
    assert got["bootguard_trial_active"] == 0 and got["bootguard_halted"] == 0
    assert got['bootguard_boot_attempts_total{entry="gen-1.conf"}'] == 1
    assert families(text)["bootguard_boot_failures_total"] == "counter"
    assert got['bootguard_metrics_collector_success{collector="boot"}'] == 1


def test_a_failing_trial_and_a_deadline_miss(state_dir: Path, tmp_path: Path) -> None:
    """A marked-bad boot whose validation missed the boot deadline counts as `deadline`; the trial's
    failed boots and tries left come from the events since it was staged."""
    trial = Trial("gen-2", "gen-2.conf", 3, 50.0, generation=2)
    events = [
        event(EventKind.MARKED_BAD, 40, "validation-failed", boot="old"),  # before the trial: not its own
        event(EventKind.TRIAL_STARTED, 50),
        event(EventKind.VALIDATION, 60, "boot-deadline", boot="x"),
        event(EventKind.MARKED_BAD, 61, "validation-failed", boot="x"),
    ]
    put(state_dir, State.initial().with_trial(trial), events)
    got = samples(render(state_dir, tmp_path))
    assert got['bootguard_boot_failures_total{cause="deadline"}'] == 1
    assert got['bootguard_boot_failures_total{cause="check-failed"}'] == 1
    assert got["bootguard_trial_active"] == 1 and got["bootguard_trial_failed_boots"] == 1
    assert got["bootguard_trial_tries"] == 3 and got["bootguard_trial_tries_left"] == 2
    assert got['bootguard_trial_info{entry="gen-2.conf",generation="2",backend="loader"}'] == 1
    assert got["bootguard_fell_back_to_golden"] == 0


def test_halted_host_with_a_failed_validation_and_queued_notifications(
    state_dir: Path, tmp_path: Path
) -> None:
    """Halted, the last validation's per-check results and durations, the booted entry from
    last-validation.json when there is no loader to ask, and the queue with its oldest entry."""
    golden = Golden("gen-1", "gen-1.conf", 1, 3.0, commit="c0ffee")
    put(
        state_dir,
        State.initial().with_golden(golden).with_halted("golden failed"),
        [event(EventKind.HALTED, 9, "validation-failed")],
    )
    doc = {
        "result": "fail",
        "decision": "halted",
        "time": 900.5,
        "seconds": 1.25,
        "deadline_hit": False,
        "entry": "gen-1.conf",
        "checks": [
            {"name": "sshd", "required": True, "result": "fail", "seconds": 1.0, "message": "down"},
            {"name": 'we"b', "required": False, "result": "pass", "seconds": 0.25, "message": "ok"},
        ],
    }
    (state_dir / "last-validation.json").write_text(json.dumps(doc))
    queue = state_dir / "notify-queue"
    queue.mkdir()
    (queue / "0000000700000-abcdef12.json").write_text("{}")
    (queue / "0000000800000-abcdef13.json").write_text("{}")
    got = samples(render(state_dir, tmp_path))
    assert got["bootguard_halted"] == 1 and got["bootguard_halts_total"] == 1
    assert got['bootguard_boot_failures_total{cause="check-failed"}'] == 1  # golden failed its checks
    assert got["bootguard_last_validation_success"] == 0
    assert got['bootguard_last_validation_info{decision="halted"}'] == 1
    assert got["bootguard_last_validation_timestamp_seconds"] == 900.5
    assert got["bootguard_last_validation_duration_seconds"] == 1.25
    assert got['bootguard_check_success{check="sshd",required="true",result="fail"}'] == 0
    assert got['bootguard_check_success{check="we\\"b",required="false",result="pass"}'] == 1
    assert got['bootguard_check_duration_seconds{check="sshd"}'] == 1
    assert got['bootguard_running_info{entry="gen-1.conf",commit="c0ffee"}'] == 1
    assert got['bootguard_golden_info{entry="gen-1.conf",generation="1",commit="c0ffee"}'] == 1
    assert got["bootguard_running_golden"] == 1 and got["bootguard_running_generation"] == 1
    assert got["bootguard_notifications_queued"] == 2
    assert got["bootguard_notifications_oldest_queued_timestamp_seconds"] == 700


def test_watchdog_from_sysfs(state_dir: Path, tmp_path: Path) -> None:
    """An armed-and-handed-on watchdog is `active` in sysfs; the device is the only label."""
    for name, state, timeout in (("watchdog0", "active", "30"), ("watchdog1", "inactive", "60")):
        d = tmp_path / "wd" / name
        d.mkdir(parents=True)
        (d / "state").write_text(state + "\n")
        (d / "timeout").write_text(timeout + "\n")
    got = samples(render(state_dir, tmp_path))
    assert got['bootguard_watchdog_active{device="watchdog0"}'] == 1
    assert got['bootguard_watchdog_active{device="watchdog1"}'] == 0
    assert got['bootguard_watchdog_timeout_seconds{device="watchdog0"}'] == 30


def test_fresh_host_declares_every_family_and_writes_zero_counters(state_dir: Path, tmp_path: Path) -> None:
    """No state yet: every family is declared with HELP and TYPE, counters are 0, unknowns are absent."""
    text = render(state_dir, tmp_path)
    kinds = families(text)
    assert all(name.startswith("bootguard_") for name in kinds)
    assert all(kinds[n] == "counter" for n in kinds if n.endswith("_total"))
    assert all(kinds[n] == "gauge" for n in kinds if not n.endswith("_total"))
    got = samples(text)
    assert got["bootguard_rollbacks_total"] == 0 and got["bootguard_notifications_queued"] == 0
    assert "bootguard_running_generation" not in got and "bootguard_golden_generation" not in got
    assert got["bootguard_metrics_timestamp_seconds"] == 1000
    assert all(v == 1 for k, v in got.items() if k.startswith("bootguard_metrics_collector_success"))


def test_a_corrupt_source_is_reported_and_the_rest_still_written(state_dir: Path, tmp_path: Path) -> None:
    """A foreign gitops.json: collector `gitops` is 0, boot facts are still there."""
    put(state_dir, State.initial(), [])
    (state_dir / "gitops.json").write_text("not json")
    (state_dir / "gitops.json").chmod(0o600)
    got = samples(render(state_dir, tmp_path))
    assert got['bootguard_metrics_collector_success{collector="gitops"}'] == 0
    assert got['bootguard_metrics_collector_success{collector="boot"}'] == 1
    assert got["bootguard_halted"] == 0


def test_export_replaces_the_file_atomically_world_readable(state_dir: Path, tmp_path: Path) -> None:
    put(state_dir, State.initial(), [event(EventKind.ROLLED_BACK, 1)])
    out = tmp_path / "textfile" / "bootguard.prom"
    out.parent.mkdir()
    out.write_text("old\n")
    metrics.export(metrics.Sources(str(state_dir), efivars=str(tmp_path / "none")), out)
    assert "bootguard_rollbacks_total 1\n" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["bootguard.prom"]  # no temporary left behind


def test_target_prefers_configured_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(metrics.FILE_ENV, str(tmp_path / "env.prom"))
    assert metrics.target("/x/conf.prom") == "/x/conf.prom"
    assert metrics.target(None) == str(tmp_path / "env.prom")


def test_export_quietly_warns_instead_of_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A textfile directory that is gone: a warning, no exception (the run's outcome stands)."""
    src = metrics.Sources(str(tmp_path / "state"), efivars=str(tmp_path / "none"))
    assert metrics.export_quietly(src, str(tmp_path / "missing" / "bootguard.prom")) is None
    assert "metrics not written" in capsys.readouterr().err


def test_numbers_and_labels_are_escaped() -> None:
    out = textfile.Out()
    out.gauge("bootguard_x", "x.", 0.1234567, check='a"b\\c\nd')
    assert out.text().splitlines()[-1] == 'bootguard_x{check="a\\"b\\\\c\\nd"} 0.123'


def test_every_metric_is_documented(state_dir: Path, tmp_path: Path) -> None:
    """docs/monitoring.md names every family the exporter declares."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text()
    missing = [name for name in families(render(state_dir, tmp_path)) if name not in docs]
    assert not missing
