"""The i6300esb watchdog on real boots: expiry resets the machine and leaves CARDRESET in bootstatus; the
early-boot hand-off to `bootguard watchdog run` keeps it fed, and a magic close stops it.

Independent of the loader, so run on the oldest and newest systemd-boot only.
"""

from __future__ import annotations

import re

import pytest

from tests.vm.harness import marks
from tests.vm.harness.scenario import Scenario, ScenarioResult, entry

pytestmark = pytest.mark.vm

LOADERS = ("252", "262")
CARDRESET = 0x20

# Take the watchdog over from the early-boot step, keep it fed for longer than its timeout, stop it.
HANDOFF = """\
bg initrd --watchdog-timeout 30
bg_exec watchdog run --timeout 5 &
pid=$!
sleep 15
w=/sys/class/watchdog/watchdog0
say "WDT-STATE when=running state=$(cat $w/state) timeout=$(cat $w/timeout)"
sleep 5
kill -TERM $pid
wait $pid
say "BG rc=$? cmd=watchdog run"
say "WDT-STATE when=stopped state=$(cat $w/state) timeout=$(cat $w/timeout)"
bg watchdog info
finish ok
"""


def hang_then_reboot(_major: str) -> Scenario:
    """Boot 1 opens /dev/watchdog and stops; boot 2 reboots with `reboot -f`; boot 3 powers off."""
    return Scenario(
        name="wd-expiry-bootstatus",
        entries=(entry("wd.conf", "ok"),),
        loader_conf="timeout 0\ndefault wd.conf\n",
        control={"boot-1.sh": "do_hang\n", "boot-2.sh": "do_reboot\n"},
        max_boots=3,
        timeout=150,
    )


def handoff(_major: str) -> Scenario:
    return Scenario(
        name="wd-initrd-handoff-keepalive",
        entries=(entry("wd.conf", "ok"),),
        loader_conf="timeout 0\ndefault wd.conf\n",
        control={"boot-1.sh": HANDOFF},
        max_boots=1,
        timeout=150,
    )


def _states(r: ScenarioResult) -> dict[str, tuple[str, str]]:
    found = re.findall(r"^BGVM-WDT-STATE when=(\S+) state=(\S+) timeout=(\S+)", r.run.serial, re.MULTILINE)
    return {when: (state, timeout) for when, state, timeout in found}


@pytest.mark.parametrize("loader", LOADERS)
@marks.boots(hang_then_reboot)
def test_expiry_resets_and_sets_cardreset_once(loader: str, vm_result: ScenarioResult) -> None:
    """An unfed i6300esb resets the VM (QMP WATCHDOG); the next boot reads CARDRESET, a later one 0."""
    r = vm_result
    assert [b.outcome for b in r.boots] == ["hang", "reboot", "end:ok"], r.describe()
    assert [b.bootstatus for b in r.boots] == [0, CARDRESET, 0], r.describe()
    watchdog = r.events_named("WATCHDOG")
    assert [e.data.get("action") for e in watchdog] == ["reset"], r.describe()
    assert len(r.events_named("RESET")) == 2, r.describe()


@pytest.mark.parametrize("loader", LOADERS)
@marks.boots(handoff)
def test_initrd_arms_and_watchdog_run_takes_over(loader: str, vm_result: ScenarioResult) -> None:
    """`bootguard initrd` arms the watchdog, `bootguard watchdog run` feeds it past its timeout, SIGTERM
    stops it: no reset happens."""
    r = vm_result
    assert len(r.boots) == 1 and r.run.stopped == "poweroff", r.describe()
    assert r.events_named("WATCHDOG") == [], r.describe()
    assert r.bg_results("initrd") == [0] and r.bg_results("watchdog") == [0, 0], r.describe()
    assert _states(r) == {"running": ("active", "5"), "stopped": ("inactive", "5")}, r.describe()
