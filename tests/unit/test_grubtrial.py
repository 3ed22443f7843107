"""GRUB hosts: trials counted by bootguard, with GRUB's real `grub-editenv` changing a real grubenv and a
model of grub.cfg's GRUB_DEFAULT=saved logic between boots (next_entry once, else saved_entry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootguard.errors import EnvironmentProblem
from bootguard.seams.grubenv import GrubEnv
from bootguard.seams.statestore import StateStore
from tests.hosttree import HostTree
from tests.simgrub import MENU, SimGrub


@pytest.fixture
def grub(tmp_path: Path) -> SimGrub:
    return SimGrub(tmp_path)


def _g(grub: SimGrub) -> tuple[str, ...]:
    return ("--grub-env", str(grub.env), "--cmdline", str(grub.cmdline))


def _staged(host: HostTree, grub: SimGrub, tries: int = 2) -> None:
    assert grub.boot() == "gen-1"
    code, _, err = host.cli("pin-golden", "gen-1", "--match", MENU["gen-1"], *_g(grub))
    assert code == 0, err
    code, _, err = host.cli("trial", "gen-3", "--match", MENU["gen-3"], "--tries", str(tries), *_g(grub))
    assert code == 0, err


def test_staging_sets_saved_and_next_entry(host: HostTree, grub: SimGrub) -> None:
    """pin-golden makes golden GRUB's saved_entry; trial records try 1, then sets next_entry once."""
    _staged(host, grub)
    assert GrubEnv(str(grub.env)).read() == {"saved_entry": "gen-1", "next_entry": "gen-3"}
    trial = StateStore(host.state).load().state.trial
    assert trial is not None and (trial.backend.value, trial.attempt, trial.cmdline) == (
        "state",
        1,
        MENU["gen-3"],
    )


def test_trial_failing_twice_ends_on_golden(host: HostTree, grub: SimGrub) -> None:
    """Try 1 dies before bootguard, GRUB boots golden, golden's step counts it and arms try 2 (reboot);
    try 2 reaches the step and then hangs; after that the trial is dropped and golden stays."""
    _staged(host, grub)
    assert grub.boot() == "gen-3"  # panics before the step
    assert grub.boot() == "gen-1"
    first = host.initrd(*_g(grub))
    assert first["actions"] == ["retry-trial", "reboot"] and first["reboot"] is True
    assert GrubEnv(str(grub.env)).read()["next_entry"] == "gen-3"
    assert grub.boot() == "gen-3"
    on_trial = host.initrd(*_g(grub))
    assert on_trial["reboot"] is False and "try 2 of 2" in str(on_trial["events"])
    assert grub.boot() == "gen-1"  # try 2 hung: reset, GRUB's default
    last = host.initrd(*_g(grub))
    assert last["actions"] == ["abandon-trial"] and last["reboot"] is False
    causes = [(e["kind"], e["cause"]) for e in host.events() if e["cause"]]
    assert causes == [
        ("counted-failure", "failed-before-bootguard"),
        ("counted-failure", "unknown"),
        ("rolled-back", "unknown"),
    ]
    assert StateStore(host.state).load().state.trial is None
    assert grub.boot() == "gen-1"


def test_good_trial_becomes_grubs_default(host: HostTree, grub: SimGrub) -> None:
    """`mark good` on the trial's boot ends the trial and makes it GRUB's saved_entry."""
    _staged(host, grub)
    assert grub.boot() == "gen-3"
    host.initrd(*_g(grub))
    code, out, err = host.cli("mark", "good", *_g(grub))
    assert code == 0, err
    assert "trial of gen-3 passed" in out
    assert GrubEnv(str(grub.env)).read() == {"saved_entry": "gen-3"}
    assert StateStore(host.state).load().state.trial is None
    assert grub.boot() == "gen-3"


def test_bad_verdict_is_counted_as_validation_failure(host: HostTree, grub: SimGrub) -> None:
    """`mark bad` on a try is counted on golden's next boot as validation-failed."""
    _staged(host, grub, tries=1)
    grub.boot()
    host.initrd(*_g(grub))
    assert host.cli("mark", "bad", *_g(grub))[0] == 0
    assert grub.boot() == "gen-1"
    assert host.initrd(*_g(grub))["actions"] == ["abandon-trial"]
    failures = [e["cause"] for e in host.events() if e["kind"] == "counted-failure"]
    assert failures == ["validation-failed"]


def test_pinning_an_entry_not_booted_now_is_refused(host: HostTree, grub: SimGrub) -> None:
    """Golden must be the GRUB entry booted now (its token on the command line)."""
    grub.boot()
    code, _, err = host.cli("pin-golden", "gen-2", "--match", MENU["gen-2"], *_g(grub))
    assert code != 0 and "not on this boot's kernel command line" in err


def test_grub_env_without_match_is_a_usage_error(host: HostTree, grub: SimGrub) -> None:
    """--grub-env needs --match: a one-line usage error, exit 2."""
    code, _, err = host.cli("trial", "gen-3", *_g(grub))
    assert code == 2 and "--match" in err


def test_missing_or_foreign_grubenv_is_a_clear_error(host: HostTree, tmp_path: Path) -> None:
    """A missing environment block is a not-found error naming the file; a foreign file is refused."""
    missing = tmp_path / "nope" / "grubenv"
    code, _, err = host.cli("pin-golden", "gen-1", "--match", "x", "--grub-env", str(missing))
    assert code == 3 and str(missing) in err
    foreign = tmp_path / "foreign"
    foreign.write_text("saved_entry=gen-1\n")
    with pytest.raises(EnvironmentProblem, match="not a GRUB environment block"):
        GrubEnv(str(foreign)).read()


def test_golden_failing_validation_halts_instead_of_rebooting(host: HostTree, grub: SimGrub) -> None:
    """Golden failing its checks on GRUB halts (recorded, no reboot), as on systemd-boot."""
    from bootguard.services import grubtrial

    _staged(host, grub, tries=1)
    grub.boot()  # the trial
    grub.boot()  # golden
    halt, messages = grubtrial.failed(
        GrubEnv(str(grub.env)), StateStore(host.state), "sshd down", grub.cmdline.read_text()
    )
    assert halt is True and "golden (gen-1) failed validation too: sshd down" in messages[0]
    state = StateStore(host.state).load().state
    assert state.halted and "sshd down" in state.halted
    assert any(e["kind"] == "halted" for e in host.events())


def test_grub_trial_ends_are_recorded_with_commit_and_cause(host: HostTree, grub: SimGrub) -> None:
    """C1 on GRUB: a blessed trial keeps its commit with its generation; a used-up one ends failed."""
    assert grub.boot() == "gen-1"
    code, _, err = host.cli(
        "pin-golden", "gen-1", "--match", MENU["gen-1"], "--commit", "aaaa0001", *_g(grub)
    )
    assert code == 0, err
    code, _, err = host.cli(
        "trial", "gen-3", "--match", MENU["gen-3"], "--tries", "1", "--commit", "bbbb0002", *_g(grub)
    )
    assert code == 0, err
    assert grub.boot() == "gen-3"  # panics before the step
    assert grub.boot() == "gen-1"
    host.initrd(*_g(grub))
    state = StateStore(host.state).load().state
    assert [(e.entry_id, e.commit, e.outcome, e.cause) for e in state.finished_trials] == [
        ("gen-3", "bbbb0002", "failed", "failed-before-bootguard")
    ]
    assert state.running_commit("gen-1") == "aaaa0001"
    code, _, err = host.cli(
        "trial", "gen-2", "--match", MENU["gen-2"], "--tries", "1", "--commit", "cccc0003", *_g(grub)
    )
    assert code == 0, err
    assert grub.boot() == "gen-2"
    host.initrd(*_g(grub))
    assert host.cli("mark", "good", *_g(grub))[0] == 0
    state = StateStore(host.state).load().state
    assert [(e.outcome, e.commit) for e in state.finished_trials][-1] == ("blessed", "cccc0003")
    assert state.running_commit("gen-2") == "cccc0003"
