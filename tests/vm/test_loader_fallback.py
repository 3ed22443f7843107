"""The trial/fallback mechanism on the four real systemd-boot binaries, with hand-written entries.

This proves the loader half of issue 5's promise without any bootguard code in the loop: the trial
fails by a kernel panic (nothing of bootguard runs), and the loader alone must boot the trial exactly
`tries` times and then bootguard's golden copy — not the intermediate generation, not the trial's
original entry. See fallback_layouts.py for the layout and docs/vm-harness.md for the results table.
"""

from __future__ import annotations

import pytest

from tests.vm import fallback_layouts as layouts
from tests.vm.harness import marks
from tests.vm.harness.packages import LOADER_MAJORS
from tests.vm.harness.scenario import Scenario, ScenarioResult

pytestmark = pytest.mark.vm

TRIAL_FILES = ["bootguard-trial+1-1.conf", "bootguard-trial+0-2.conf"]
UNTOUCHED = [
    "nixos-generation-1.conf",
    "nixos-generation-2.conf",
    "nixos-generation-3.conf",
    "bootguard-golden.conf",
]


def via_efi_variable(_major: str) -> Scenario:
    """loader.conf as NixOS writes it (`default nixos-generation-3.conf`); LoaderEntryDefault=`bootguard-*`
    written by the guest through efivarfs on a first setup boot."""
    return Scenario(
        name="fallback-efivar-glob",
        entries=layouts.fallback_entries(trial_action="panic"),
        loader_conf=layouts.NIXOS_LOADER_CONF,
        control={"boot-1.sh": layouts.SET_DEFAULT_GLOB_BOOT},
        max_boots=6,
        timeout=200,
    )


def via_loader_conf(_major: str) -> Scenario:
    """No EFI variable: `default bootguard-*` in loader.conf."""
    return Scenario(
        name="fallback-loaderconf-glob",
        entries=layouts.fallback_entries(trial_action="panic"),
        loader_conf=layouts.GLOB_LOADER_CONF,
        max_boots=5,
        timeout=180,
    )


def _assert_trial_twice_then_golden(r: ScenarioResult, first: int) -> None:
    boots = r.boots[first:]
    assert [b.entry_file for b in boots] == [*TRIAL_FILES, "bootguard-golden.conf"], r.describe()
    assert [b.outcome for b in boots] == ["panic", "panic", "end:ok"], r.describe()
    assert r.run.stopped == "poweroff", r.describe()
    assert sorted(r.esp_entries) == sorted([*UNTOUCHED, "bootguard-trial+0-2.conf"]), r.describe()
    assert all(b.loader_info == r.loader.loader_info for b in r.boots), r.describe()


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(via_efi_variable)
def test_efi_variable_glob_boots_trial_twice_then_golden(loader: str, vm_result: ScenarioResult) -> None:
    """With LoaderEntryDefault=`bootguard-*`, a panicking trial boots twice, then bootguard's golden copy."""
    setup = vm_result.boots[0]
    assert setup.selected == "nixos-generation-3.conf", vm_result.describe()
    assert vm_result.boots[1].variables["LoaderEntryDefault"].text == layouts.GLOB, vm_result.describe()
    _assert_trial_twice_then_golden(vm_result, first=1)


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(via_loader_conf)
def test_loader_conf_glob_boots_trial_twice_then_golden(loader: str, vm_result: ScenarioResult) -> None:
    """With `default bootguard-*` in loader.conf, a panicking trial boots twice, then the golden copy."""
    assert "LoaderEntryDefault" not in vm_result.boots[0].variables, vm_result.describe()
    _assert_trial_twice_then_golden(vm_result, first=0)
