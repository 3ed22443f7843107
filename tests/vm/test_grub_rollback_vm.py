"""Issue 5's state-file backend on a loader without counters: real GRUB (Debian's 2.06, GRUB_DEFAULT=saved)
in the harness, with this checkout's bootguard counting a trial's tries in its own state.

Boot 1 runs golden (gen-1, GRUB's saved_entry): `bootguard pin-golden gen-1 --grub-env … --match
bootguard.entry=gen-1`, then `bootguard trial gen-3 … --tries 2`, which writes try 1 to the state and
then `next_entry=gen-3` with GRUB's grub-editenv. gen-3 panics before any bootguard code runs; GRUB
clears next_entry as it boots it, so the reset lands on golden, whose early-boot step counts the try
and reboots into try 2 by itself; after the second panic the host stays on golden.
"""

from __future__ import annotations

import json

import pytest

from tests.vm.harness import marks
from tests.vm.harness.grub import GrubMenu
from tests.vm.harness.scenario import Scenario, ScenarioResult, grub_entry

pytestmark = pytest.mark.vm

G = "--grub-env /mnt/esp/grub/grubenv"

SETUP = f"""\
bg pin-golden gen-1 {G} --match bootguard.entry=gen-1
bg trial gen-3 {G} --match bootguard.entry=gen-3 --tries 2
do_reboot
"""

GOLDEN = f"""\
bg initrd {G} --reboot-command "/bin/busybox reboot -f"
mkdir -p /state/out
(bg_exec status --json) >/state/out/status.out
finish ok
"""


def grub_panic_twice(_loader: str) -> Scenario:
    return Scenario(
        name="s10-grub-state-counted-panic-twice",
        grub=GrubMenu(
            entries=(
                grub_entry("gen-1", "golden", title="NixOS - Configuration 1"),
                grub_entry("gen-2", "ok", title="NixOS - Configuration 2"),
                grub_entry("gen-3", "panic", title="NixOS - Configuration 3"),
            ),
            env={"saved_entry": "gen-1"},
        ),
        control={"boot-1.sh": SETUP, "action-golden.sh": GOLDEN},
        max_boots=6,
        timeout=500,
    )


@pytest.mark.parametrize("loader", ["grub"])
@marks.boots(grub_panic_twice)
def test_s10_grub_trial_panics_twice_then_golden(loader: str, vm_result: ScenarioResult) -> None:
    """On GRUB, a trial that panics before bootguard runs is tried twice (one-shot next_entry each time,
    counted on golden, golden reboots into the next try) and then dropped; the host stays on golden."""
    r = vm_result
    assert r.cmdline_entries == ["gen-1", "gen-3", "gen-1", "gen-3", "gen-1"], r.describe()
    assert [rc for rc, _ in r.boots[0].bg_results] == [0, 0], r.describe()
    # golden's first boot ends inside `bg initrd` (bootguard's reboot): no marker after it
    assert [b.outcome for b in r.boots[1:]] == ["panic", "", "panic", "end:ok"], r.describe()
    events = r.bootguard_events()
    failures = [e for e in events if e.get("kind") == "counted-failure"]
    assert [(e.get("entry"), e.get("cause")) for e in failures] == [("gen-3", "kernel-panic")] * 2, events
    rolled_back = [e for e in events if e.get("kind") == "rolled-back"]
    assert [(e.get("entry"), e.get("cause")) for e in rolled_back] == [("gen-3", "kernel-panic")], events
    assert any("arming try 2 of 2" in str(e.get("message")) for e in events), events
    status = json.loads((r.state / "out" / "status.out").read_text())
    assert status["trial"] is None and status["golden"]["filename"] == "gen-1", status
    env = r.grubenv_at_end()
    assert env.get("saved_entry") == "gen-1" and not env.get("next_entry"), env
