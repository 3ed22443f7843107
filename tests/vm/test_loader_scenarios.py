"""Issue 4 scenarios 1, 2, 3 and 7 on real boots, driven by bootguard's own commands in the guest.

Every scenario starts the same way. The host runs generation 2; generation 1 is golden; NixOS has just
written generation 3 and made it the default. Boot 1 (the setup boot, on generation 2) runs
`bootguard pin-golden nixos-generation-1.conf`, writes `default nixos-generation-3.conf` into
loader.conf as NixOS's switch-to-configuration would, runs `bootguard trial nixos-generation-3.conf
--tries 2` and reboots. What generation 3 (and so bootguard's trial copy of it) and golden do on their
boots is the scenario.
"""

from __future__ import annotations

import pytest

from tests.vm import fallback_layouts as layouts
from tests.vm.harness import marks
from tests.vm.harness.disk import BlsEntry
from tests.vm.harness.packages import LOADER_MAJORS
from tests.vm.harness.scenario import Scenario, ScenarioResult

pytestmark = pytest.mark.vm

NIXOS = ["nixos-generation-1.conf", "nixos-generation-2.conf", "nixos-generation-3.conf"]

SETUP_TRIAL = """\
bg pin-golden nixos-generation-1.conf
sed -i 's/^default .*/default nixos-generation-3.conf/' /esp/loader/loader.conf
settle
bg trial nixos-generation-3.conf --tries 2
do_reboot
"""

# golden after a rollback: bootguard's early-boot step, then what a person would look at.
GOLDEN = """\
bg initrd
bg status
finish ok
"""

# a good trial: the early-boot step, then the validator path's verdict (`mark good`), reboot once more
# to see what the loader boots after the blessing.
BLESS_ONCE = """\
bg initrd
if [ "$(efistr LoaderBootCountPath)" != - ]; then
    bg mark good
    do_reboot
fi
bg status
finish ok
"""

# hang: bootguard's early-boot step arms the i6300esb (5 s) and hands it on; nobody takes it over.
HANG_AFTER_ARMING = """\
bg initrd --watchdog-timeout 5
stall
"""

FAILING_CHECKS = """\
[[check]]
name = "always-fails"
kind = "command"
command = ["/bin/false"]
required = true
"""

# golden fails validation too: bootguard must record it and stop, not reboot or rearrange.
GOLDEN_FAILS_VALIDATION = """\
bg initrd
bg validate --config /mnt/state/control/checks.toml
bg status
finish ok
"""


def _entries(gen3: str, golden: str) -> tuple[BlsEntry, ...]:
    return (
        layouts.nixos_generation(1, golden),
        layouts.nixos_generation(2, "ok"),
        layouts.nixos_generation(3, gen3),
    )


def _scenario(name: str, gen3: str, golden: str, scripts: dict[str, str], max_boots: int = 5) -> Scenario:
    return Scenario(
        name=name,
        entries=_entries(gen3, golden),
        loader_conf="timeout 0\ndefault nixos-generation-2.conf\n",
        control={"boot-1.sh": SETUP_TRIAL, **scripts},
        max_boots=max_boots,
        timeout=90.0 * max_boots,
    )


def good_trial(_major: str) -> Scenario:
    scripts = {"action-bless.sh": BLESS_ONCE, "action-golden.sh": GOLDEN}
    return _scenario("s1-good-trial", "bless", "golden", scripts)


def panic_twice(_major: str) -> Scenario:
    return _scenario("s2-panic-twice", "panic", "golden", {"action-golden.sh": GOLDEN})


def hang_twice(_major: str) -> Scenario:
    scripts = {"action-hang-armed.sh": HANG_AFTER_ARMING, "action-golden.sh": GOLDEN}
    return _scenario("s3-hang-twice", "hang-armed", "golden", scripts)


def golden_fails_too(_major: str) -> Scenario:
    scripts = {"action-golden-fails.sh": GOLDEN_FAILS_VALIDATION, "checks.toml": FAILING_CHECKS}
    return _scenario("s7-golden-fails-too", "panic", "golden-fails", scripts)


def _assert_setup(r: ScenarioResult) -> None:
    setup = r.boots[0]
    assert setup.selected == "nixos-generation-2.conf", r.describe()
    assert [rc for rc, _ in setup.bg_results] == [0, 0], r.describe()


def _assert_fell_back_to_golden(r: ScenarioResult, cause: str) -> None:
    """Trial twice (+2 → +1-1 → +0-2), then bootguard's golden copy; the event log names `cause`."""
    assert [b.entry_file for b in r.boots[1:]] == [
        "bootguard-trial+1-1.conf",
        "bootguard-trial+0-2.conf",
        "bootguard-golden.conf",
    ], r.describe()
    assert r.bg_results("initrd")[-1] == 0, r.describe()
    rolled_back = [e for e in r.bootguard_events() if e.get("kind") == "rolled-back"]
    assert rolled_back, f"no rolled-back event in {r.bootguard_events()}\n{r.describe()}"
    assert rolled_back[-1].get("cause") == cause, r.describe()
    for name in NIXOS:  # the user's entries are never renamed
        assert name in r.esp_entries, r.describe()


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(good_trial)
def test_s1_good_trial_is_blessed_and_becomes_the_default(loader: str, vm_result: ScenarioResult) -> None:
    """A passing trial is blessed by `mark good`: counter and trial copy gone, generation 3 boots next."""
    r = vm_result
    _assert_setup(r)
    assert [b.entry_file for b in r.boots[1:]] == ["bootguard-trial+1-1.conf", "nixos-generation-3.conf"], (
        r.describe()
    )
    assert r.bg_results("mark") == [0], r.describe()
    assert r.boots[2].countpath is None, r.describe()
    assert not any("+" in name for name in r.esp_entries), r.describe()
    assert not any(name.startswith("bootguard-trial") for name in r.esp_entries), r.describe()
    golden = r.esp_texts["/loader/entries/nixos-generation-1.conf"]
    assert golden == layouts.nixos_generation(1, "golden").render(), r.describe()
    assert r.run.stopped == "poweroff", r.describe()


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(panic_twice)
def test_s2_kernel_panic_twice_comes_back_on_golden(loader: str, vm_result: ScenarioResult) -> None:
    """A trial whose kernel panics twice (no bootguard code runs) ends on golden; the log says panic."""
    r = vm_result
    _assert_setup(r)
    assert [b.outcome for b in r.boots[1:3]] == ["panic", "panic"], r.describe()
    _assert_fell_back_to_golden(r, cause="kernel-panic")
    assert r.run.stopped == "poweroff", r.describe()


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(hang_twice)
def test_s3_hang_twice_watchdog_resets_then_golden(loader: str, vm_result: ScenarioResult) -> None:
    """A trial that hangs after bootguard armed the watchdog is reset twice (CARDRESET seen), then golden."""
    r = vm_result
    _assert_setup(r)
    assert len(r.events_named("WATCHDOG")) == 2, r.describe()
    assert [b.bootstatus for b in r.boots[2:4]] == [32, 32], r.describe()
    _assert_fell_back_to_golden(r, cause="watchdog-reset")
    assert r.run.stopped == "poweroff", r.describe()


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.pending_on("validate")
@marks.boots(golden_fails_too)
def test_s7_golden_failing_validation_stops_without_a_loop(loader: str, vm_result: ScenarioResult) -> None:
    """When golden fails validation after a rollback, bootguard records it and reboots nothing."""
    r = vm_result
    _assert_setup(r)
    _assert_fell_back_to_golden(r, cause="kernel-panic")
    assert r.bg_results("validate") == [6], r.describe()
    assert len(r.boots) == 4 and r.run.stopped == "poweroff", r.describe()
    assert any(e.get("kind") == "halted" for e in r.bootguard_events()), r.describe()
    assert r.bg_results("status") == [0], r.describe()
