"""Trials counted in bootguard's state (one-shot tries, golden the default), on real trees with the
model of the loader between boots: every decision of the early-boot step for that backend."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bootguard.demo.simloader import SimulatedLoader
from bootguard.model.loader import BootSimulation
from bootguard.seams.statestore import StateStore
from tests.hosttree import HostTree

LOADERS = ("systemd-boot 252.39-1~deb12u2", "systemd-boot 257.13-1~deb13u1", "systemd-boot 262.1-1")


def _pinned(host: HostTree, info: str = LOADERS[1]) -> SimulatedLoader:
    host.add_entry("gen-1.conf", version="1")
    host.add_entry("gen-2.conf", version="2")
    loader = SimulatedLoader(str(host.esp), str(host.efivars), info)
    host.loader_conf("default gen-1.conf\n")
    loader.boot()
    assert host.cli("pin-golden")[0] == 0
    host.loader_conf("default gen-2.conf\n")  # the installer made the new generation the default
    return loader


def _state_trial(host: HostTree, *extra: str, info: str = LOADERS[1]) -> SimulatedLoader:
    loader = _pinned(host, info)
    code, _, err = host.cli("trial", "gen-2.conf", "--backend", "state", *extra)
    assert code == 0, err
    return loader


def _name(sim: BootSimulation) -> str | None:
    return sim.selection.entry.filename if sim.selection.entry else None


def _trial(host: HostTree) -> dict[str, object] | None:
    trial = StateStore(host.state).load().state.trial
    return trial.to_dict() if trial else None


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_staging_makes_golden_the_default_and_the_trial_a_one_shot(host: HostTree) -> None:
    """`trial --backend state` writes no copy; golden is LoaderEntryDefault, the trial LoaderEntryOneShot,
    and try 1 is recorded (the pending marker) before anything boots."""
    _state_trial(host)
    assert host.get_var("LoaderEntryDefault") == "bootguard-golden.conf"
    assert host.get_var("LoaderEntryOneShot") == "gen-2.conf"
    assert not any(name.startswith("bootguard-trial") for name in host.entries())
    assert _trial(host) is not None
    assert (_trial(host) or {})["backend"] == "state"
    assert ((_trial(host) or {})["attempt"], (_trial(host) or {})["failures"]) == (1, 0)
    status = host.cli_json("status")
    assert isinstance(status, dict)
    assert status["trial"]["counted_by"] == "state" and status["trial"]["try"] == 1
    assert status["next_boot"] == "gen-2.conf" and status["next_boot_reason"] == "oneshot"
    assert any("counted by bootguard: try 1 of 2" in a for a in status["advice"])
    code, out, _ = host.cli("status")
    assert code == 0 and "try 1 of 2, 0 failed; counted by bootguard" in out


@pytest.mark.parametrize("info", LOADERS)
def test_panic_twice_before_bootguard_ends_on_golden(host: HostTree, info: str) -> None:
    """Tries that die before the early-boot step (panic) land on golden by the loader alone; golden's
    step counts each, arms the next try and asks for a reboot, and after 2 the host stays on golden."""
    loader = _state_trial(host, info=info)
    assert _name(loader.boot()) == "gen-2.conf"  # try 1 panics before bootguard
    assert _name(loader.boot()) == "bootguard-golden.conf"
    first = host.initrd()
    assert first["actions"] == ["retry-trial", "reboot"] and first["reboot"] is True
    assert host.get_var("LoaderEntryOneShot") == "gen-2.conf"
    assert _name(loader.boot()) == "gen-2.conf"  # try 2 panics too
    assert _name(loader.boot()) == "bootguard-golden.conf"
    second = host.initrd()
    assert second["actions"] == ["abandon-trial"] and second["reboot"] is False
    assert _trial(host) is None
    assert _name(loader.boot()) == "bootguard-golden.conf"  # and stays there
    failures = [e for e in host.events() if e["kind"] == "counted-failure"]
    assert [(e["entry"], e["cause"]) for e in failures] == [("gen-2.conf", "failed-before-bootguard")] * 2
    assert "try 2 of 2" in str(failures[1]["message"])
    rolled = [e for e in host.events() if e["kind"] == "rolled-back"]
    assert [e["entry"] for e in rolled] == ["gen-2.conf"]
    assert "gen-2.conf" in str(StateStore(host.state).load().state.extra.get("failed_trials"))


def test_good_try_is_blessed_and_the_normal_default_returns(host: HostTree) -> None:
    """A try that passes validation ends the trial: the saved default comes back, no one-shot is left,
    and the loader boots the new generation from then on."""
    loader = _state_trial(host)
    loader.boot()
    result = host.initrd()
    assert result["reboot"] is False
    attempted = [e for e in host.events() if e["kind"] == "boot-attempted"]
    assert "try 1 of 2, counted by bootguard" in str(attempted[-1]["message"])
    assert host.cli("mark", "good")[0] == 0
    assert _trial(host) is None
    assert host.get_var("LoaderEntryDefault") is None
    assert _name(loader.boot()) == "gen-2.conf"
    assert any(e["kind"] == "trial-finished" for e in host.events())


def test_failed_validation_counts_as_a_failed_try(host: HostTree) -> None:
    """`mark bad` on an uncounted try records the verdict; golden's step counts it as validation-failed."""
    loader = _state_trial(host, "--tries", "1")
    loader.boot()
    host.initrd()
    assert host.cli("mark", "bad")[0] == 0
    assert _name(loader.boot()) == "bootguard-golden.conf"
    result = host.initrd()
    assert result["actions"] == ["abandon-trial"]
    failures = [e for e in host.events() if e["kind"] == "counted-failure"]
    assert [e["cause"] for e in failures] == ["validation-failed"]
    assert not any(e["kind"] == "boot-failed" for e in host.events())  # golden's boot was not blamed


def test_hang_with_watchdog_reset_is_the_cause(host: HostTree, tmp_path: Path) -> None:
    """A try that reached the step and then ended in a watchdog reset is counted with that cause."""
    loader = _state_trial(host)
    loader.boot()
    host.initrd()
    loader.boot()
    wd = tmp_path / "sysfs" / "watchdog0"
    wd.mkdir(parents=True)
    for name, value in {"identity": "i6300ESB timer", "bootstatus": "32", "state": "inactive"}.items():
        (wd / name).write_text(value + "\n")
    host.initrd("--watchdog-sysfs", str(tmp_path / "sysfs"))
    failures = [e for e in host.events() if e["kind"] == "counted-failure"]
    assert [e["cause"] for e in failures] == ["watchdog-reset"]


def test_rerunning_the_step_in_the_same_boot_counts_nothing_twice(host: HostTree) -> None:
    """The step run twice in one boot (same boot id) neither counts the failure again nor re-arms."""
    loader = _state_trial(host)
    loader.boot()
    loader.boot()  # golden, after try 1 died
    boot_id = str(uuid.uuid4())
    for _ in range(2):
        code, _, err = host.cli("--json", "initrd", "--boot-id", boot_id, "--reboot-command", "true")
        assert code == 0, err
    assert [e["kind"] for e in host.events()].count("counted-failure") == 1
    assert ((_trial(host) or {})["attempt"], (_trial(host) or {})["failures"]) == (2, 1)


def test_uncounted_trial_copy_is_converted_to_state_counting(host: HostTree) -> None:
    """A loader-counted trial whose rename fails (firmware cannot write the ESP) is taken over: golden
    becomes the default at once, the next try is a one-shot of the copy, and two failures end on golden."""
    loader = _pinned(host)
    assert host.cli("trial", "gen-2.conf")[0] == 0
    sim = loader.boot(rename_fails=True)
    assert _name(sim) == "bootguard-trial+2.conf" and sim.boot_count_path is None
    result = host.initrd()
    assert "golden-default" in result["actions"]  # type: ignore[operator]
    assert host.get_var("LoaderEntryDefault") == "bootguard-golden.conf"
    assert (_trial(host) or {})["backend"] == "state"
    assert _name(loader.boot(rename_fails=True)) == "bootguard-golden.conf"
    assert host.initrd()["actions"] == ["retry-trial", "reboot"]
    assert host.get_var("LoaderEntryOneShot") == "bootguard-trial.conf"  # 257 strips the counter
    assert _name(loader.boot(rename_fails=True)) == "bootguard-trial+2.conf"
    host.initrd()
    assert _name(loader.boot(rename_fails=True)) == "bootguard-golden.conf"
    assert host.initrd()["actions"] == ["abandon-trial"]
    kinds = [e["kind"] for e in host.events()]
    assert kinds.count("counted-failure") == 2 and "rolled-back" in kinds
    assert "bootguard-trial+2.conf" not in host.entries()  # ESP writable here: the copy is removed
    assert _name(loader.boot()) == "bootguard-golden.conf"


def test_read_only_esp_stages_a_state_trial_by_itself(host: HostTree) -> None:
    """With the ESP read-only, `trial` (auto) uses state counting and changes nothing on the ESP."""
    _pinned(host)
    before = host.entries()
    with _read_only(host.esp):
        code, out, err = host.cli("--json", "trial", "gen-2.conf")
    assert code == 0, err
    assert json.loads(out)["backend"] == "state"
    assert host.entries() == before
    assert host.get_var("LoaderEntryOneShot") == "gen-2.conf"


def test_explicit_loader_backend_on_read_only_esp_is_refused(host: HostTree) -> None:
    """`--backend loader` needs a trial copy on the ESP: a read-only ESP is a one-line exit-5 error."""
    _pinned(host)
    with _read_only(host.esp):
        code, _, err = host.cli("trial", "gen-2.conf", "--backend", "loader")
    assert code == 5 and "read-only" in err and len(err.strip().splitlines()) <= 2, err
    assert _trial(host) is None


def test_used_up_trial_booted_again_switches_to_golden_and_reboots(host: HostTree) -> None:
    """If the loader boots the trial again without a one-shot (default lost) and no try is left, the
    step drops the trial, makes golden the default and asks for a reboot."""
    loader = _state_trial(host, "--tries", "1")
    loader.boot()
    host.initrd()
    host.set_var("LoaderEntryDefault", None)  # lost, e.g. by a firmware NVRAM reset
    assert _name(loader.boot()) == "gen-2.conf"  # loader.conf's default
    result = host.initrd()
    assert result["actions"] == ["abandon-trial", "golden-default", "reboot"] and result["reboot"] is True
    assert host.get_var("LoaderEntryDefault") == "bootguard-golden.conf"
    assert _name(loader.boot()) == "bootguard-golden.conf"


def test_lost_default_is_mended_on_golden(host: HostTree) -> None:
    """On golden with a try pending, a lost LoaderEntryDefault is set back to golden."""
    loader = _state_trial(host)
    loader.boot()
    loader.boot()
    host.set_var("LoaderEntryDefault", None)
    result = host.initrd()
    assert "golden-default" in result["actions"]  # type: ignore[operator]
    assert host.get_var("LoaderEntryDefault") == "bootguard-golden.conf"


def test_failing_reboot_command_is_a_clear_error(host: HostTree) -> None:
    """When the reboot into the next try fails, the step says so and exits non-zero."""
    loader = _state_trial(host)
    loader.boot()
    loader.boot()
    code, _, err = host.cli("initrd", "--reboot-command", "false")
    assert code != 0 and "bootguard: error:" in err and "Traceback" not in err, err


def test_spooled_retry_is_not_taken_for_an_armed_try(host: HostTree, tmp_path: Path) -> None:
    """With the state read-only in the initrd the retry is not carried out; merging the spool keeps the
    failure but not the pending marker, so the next boot re-arms instead of blaming a try that never ran."""
    loader = _state_trial(host)
    loader.boot()
    loader.boot()
    with _read_only(host.state):
        result = host.initrd("--spool-dir", str(tmp_path / "spool"))
    assert "retry-trial" in result["actions"] and "reboot" not in result  # type: ignore[operator]
    from bootguard.earlyboot.record import merge_spool

    merge_spool(StateStore(host.state), str(tmp_path / "spool"))
    assert ((_trial(host) or {})["attempt"], (_trial(host) or {})["failures"]) == (1, 1)
    loader.boot()  # still golden: no one-shot was set
    assert host.initrd()["actions"] == ["retry-trial", "reboot"]
    assert [e["kind"] for e in host.events()].count("counted-failure") == 1


def test_restaging_as_state_trial_removes_the_loader_trials_copy(host: HostTree) -> None:
    """A state trial staged over a loader-counted one removes the old trial copy and keeps the user's
    default from before the first trial."""
    _pinned(host)
    host.set_var("LoaderEntryDefault", "gen-1.conf")
    assert host.cli("trial", "gen-2.conf")[0] == 0
    assert "bootguard-trial+2.conf" in host.entries()
    assert host.cli("trial", "gen-2.conf", "--backend", "state")[0] == 0
    assert not any(n.startswith("bootguard-trial") for n in host.entries())
    assert (_trial(host) or {})["saved_default"] == "gen-1.conf"


def test_state_counted_trial_ends_are_recorded_with_commit_and_cause(host: HostTree) -> None:
    """C1 on the state backend: a used-up trial ends `failed` with the failure's cause, a blessed one
    `blessed`; each in the update that ends it, with its commit; golden stays the running commit."""
    loader = _state_trial(host, "--tries", "1", "--commit", "dead0001")
    loader.boot()
    host.initrd()
    assert host.cli("mark", "bad")[0] == 0
    loader.boot()
    host.initrd()
    state = StateStore(host.state).load().state
    assert [(e.entry_id, e.commit, e.outcome, e.cause) for e in state.finished_trials] == [
        ("gen-2.conf", "dead0001", "failed", "validation-failed")
    ]
    assert state.trial is None and state.running_commit("gen-2.conf") is None
    host.add_entry("gen-3.conf", version="3")
    code, _, err = host.cli("trial", "gen-3.conf", "--backend", "state", "--commit", "beef0002")
    assert code == 0, err
    assert _name(loader.boot()) == "gen-3.conf"
    host.initrd()
    assert host.cli("mark", "good")[0] == 0
    state = StateStore(host.state).load().state
    assert [(e.outcome, e.commit, e.seq) for e in state.finished_trials] == [
        ("failed", "dead0001", 1),
        ("blessed", "beef0002", 2),
    ]
    assert state.running_commit("gen-3.conf") == "beef0002"
