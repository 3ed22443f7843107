"""bootguard on a real Debian with systemd as PID 1: the validator service, boot-complete.target, the boot
deadline and the watchdog hand-off to PID 1, on real systemd-boot 252 and 262 (see docs/vm-distro.md).

Every scenario starts from two generations: golden `gen-1.conf` and the update `gen-2.conf` (uncounted,
as NixOS writes them). Boot 1 is a setup boot that only runs in the initramfs: `bootguard pin-golden`
(the booted gen-1) and `bootguard trial gen-2.conf --tries 2`, then `reboot -f`.
"""

from __future__ import annotations

import pytest

from tests.vm.distro.rootfs import Symlink
from tests.vm.distro.scenario import DistroResult, DistroScenario, Generation, generation_entry
from tests.vm.distro.suite import distro_boots

pytestmark = pytest.mark.vm

LOADERS = ("252", "262")
CARDRESET = 0x20
GOLDEN = generation_entry("gen-1.conf", 1)
UPDATE = generation_entry("gen-2.conf", 2)
LOADER_CONF = "timeout 0\ndefault gen-1.conf\n"
SETUP = "bg pin-golden\nbg trial gen-2.conf --tries 2\ndo_reboot\n"
TRIAL_COPY = "bootguard-trial.conf"
UNTOUCHED = ["bootguard-golden.conf", "gen-1.conf", "gen-2.conf"]

PASSING_CHECKS = """\
[validator]
deadline = 120

[[check]]
name = "journald"
kind = "unit"
unit = "systemd-journald.service"

[[check]]
name = "state-writable"
kind = "command"
command = ["test", "-w", "/var/lib/bootguard"]

[[check]]
name = "no-failed-units"
kind = "no-failed-units"
"""
FAILING_CHECK = """
[[check]]
name = "app-health"
kind = "command"
command = ["false"]
"""
STUCK_UNIT = """\
# A unit of the broken generation that never finishes: multi-user.target (and so the validator, and
# boot-complete.target) waits for it forever.
[Unit]
Description=bgvm: a start job that never ends
Before=multi-user.target boot-complete.target

[Service]
Type=oneshot
ExecStart=/bin/sleep infinity
TimeoutStartSec=infinity
"""
DEADLINE_SECONDS = 20
SHORT_DEADLINE = f"""\
[Timer]
OnBootSec=
OnBootSec={DEADLINE_SECONDS}s
"""


def _golden() -> Generation:
    return Generation(1, checks=PASSING_CHECKS)


def good_trial(_major: str) -> DistroScenario:
    """Setup, then the trial boots, passes its checks under systemd and is blessed."""
    return DistroScenario(
        name="good-trial",
        entries=(GOLDEN, UPDATE),
        loader_conf=LOADER_CONF,
        generations=(_golden(), Generation(2, checks=PASSING_CHECKS)),
        boot_scripts={1: SETUP},
        max_boots=2,
    )


def check_fails(_major: str) -> DistroScenario:
    """Setup, the trial's required check fails (validator marks it bad and reboots), golden boots."""
    return DistroScenario(
        name="check-fails",
        entries=(GOLDEN, UPDATE),
        loader_conf=LOADER_CONF,
        generations=(_golden(), Generation(2, checks=PASSING_CHECKS + FAILING_CHECK)),
        boot_scripts={1: SETUP},
        max_boots=3,
    )


def never_completes(_major: str) -> DistroScenario:
    """Setup, the trial never reaches boot-complete.target, the deadline timer rejects it, golden boots."""
    stuck = Generation(
        2,
        checks=PASSING_CHECKS,
        units={
            "bgvm-stuck.service": STUCK_UNIT,
            "multi-user.target.wants/bgvm-stuck.service": Symlink("/run/systemd/system/bgvm-stuck.service"),
            "bootguard-boot-deadline.timer.d/bgvm-short.conf": SHORT_DEADLINE,
        },
    )
    return DistroScenario(
        name="never-completes",
        entries=(GOLDEN, UPDATE),
        loader_conf=LOADER_CONF,
        generations=(_golden(), stuck),
        boot_scripts={1: SETUP},
        max_boots=3,
    )


# 20 s rather than 10: QEMU's i6300esb counts host time, and PID 1 does not ping while it loads units
# and runs generators; on a busy 2-core host a 10 s watchdog reset healthy boots right after
# "Welcome to Debian" (docs/vm-distro.md). 20 s still tells PID 1's setting apart from the initrd's 30 s.
PID1_WATCHDOG_SEC = 20
PID1_WATCHDOG = f"[Manager]\nRuntimeWatchdogSec={PID1_WATCHDOG_SEC}\n"


def watchdog_handoff(_major: str) -> DistroScenario:
    """One boot: the initrd arms the i6300esb for 30 s, systemd (RuntimeWatchdogSec=20) takes it over."""
    return DistroScenario(
        name="watchdog-handoff",
        entries=(GOLDEN,),
        loader_conf=LOADER_CONF,
        generations=(Generation(1, checks=PASSING_CHECKS, system_conf=PID1_WATCHDOG),),
        max_boots=1,
        initrd_watchdog_timeout=30,
    )


STALL_SECONDS = 60
GAP_BOOT = f"initrd_step --watchdog-timeout 30\nstall {STALL_SECONDS}\n"
AFTER_GAP_BOOT = "initrd_step\nbg events\nfinish recorded\n"


def watchdog_gap(_major: str) -> DistroScenario:
    """Setup; the trial's initrd arms 30 s and stalls 60 s before PID 1; the reset is recorded next boot."""
    return DistroScenario(
        name="watchdog-gap",
        entries=(GOLDEN, UPDATE),
        loader_conf=LOADER_CONF,
        generations=(_golden(), Generation(2, checks=PASSING_CHECKS)),
        boot_scripts={1: SETUP, 2: GAP_BOOT, 3: AFTER_GAP_BOOT},
        max_boots=3,
        timeout=300,
    )


def _kinds(r: DistroResult) -> list[str]:
    return [str(e.get("kind")) for e in r.bootguard_events()]


def _data(event: dict[str, object]) -> dict[str, object]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def _events(r: DistroResult, kind: str) -> list[dict[str, object]]:
    return [e for e in r.bootguard_events() if e.get("kind") == kind]


@pytest.mark.parametrize("loader", LOADERS)
@distro_boots(good_trial)
def test_good_trial_is_blessed_through_boot_complete(loader: str, distro_result: DistroResult) -> None:
    """The trial boots under systemd, bootguard-validate passes, boot-complete.target is reached, and
    the trial is blessed: its copy and counter are gone and golden is unchanged."""
    r = distro_result
    assert r.run.stopped == "poweroff", r.describe()
    assert [b.outcome for b in r.boots] == ["reboot", "end:complete-poweroff"], r.describe()
    assert r.boots[0].selected == "gen-1.conf", r.describe()
    assert r.boots[1].entry_file == "bootguard-trial+1-1.conf", r.describe()
    assert r.bg_results("pin-golden") == [0] and r.bg_results("trial") == [0], r.describe()
    (done,) = r.sys_lines()
    assert done["n"] == "2" and done["boot_complete"] == "active", r.describe()
    assert done["validate"] == "success", r.describe()
    assert r.esp_entries == UNTOUCHED, r.describe()
    assert "options" in r.esp_texts["/loader/entries/bootguard-golden.conf"]
    assert "bgvm.gen=1" in r.esp_texts["/loader/entries/bootguard-golden.conf"], r.describe()
    assert r.esp_texts["/loader/entries/gen-1.conf"] == GOLDEN.render()
    assert r.esp_texts["/loader/entries/gen-2.conf"] == UPDATE.render()
    validation = r.last_validation()
    assert validation.get("result") == "pass" and validation.get("decision") == "blessed", validation
    kinds = _kinds(r)
    assert "blessed" in kinds and "trial-finished" in kinds, r.describe()
    assert "marked-bad" not in kinds, r.describe()
    # The loader saw the counted trial: LoaderBootCountPath named the renamed copy, and the trial boot
    # was chosen through the glob `bootguard trial` put in LoaderEntryDefault.
    countpath = r.boots[1].variables["LoaderBootCountPath"].text
    assert countpath.endswith("bootguard-trial+1-1.conf"), countpath
    assert r.boots[1].variables["LoaderEntryDefault"].text == "bootguard-*", r.describe()


@pytest.mark.parametrize("loader", LOADERS)
@distro_boots(check_fails)
def test_failed_check_marks_trial_bad_and_golden_boots(loader: str, distro_result: DistroResult) -> None:
    """A required check of the trial fails: the validator marks it bad and reboots with systemctl, the
    loader boots golden, and the events name the failed check."""
    r = distro_result
    assert r.run.stopped == "poweroff", r.describe()
    assert len(r.boots) == 3, r.describe()
    assert r.boots[1].entry_file == "bootguard-trial+1-1.conf", r.describe()
    assert r.boots[2].selected == "bootguard-golden.conf", r.describe()
    assert r.boots[2].countpath is None, r.describe()
    # Boot 2 ended by the validator's `systemctl reboot` (a clean shutdown), not by a reset.
    assert "reboot: Restarting system" in "\n".join(r.boots[1].lines), r.describe()
    assert not r.events_named("WATCHDOG"), r.describe()
    # Boot 2's entry was marked bad by the validator (no tries left: +0-1), as boot 3 sees the ESP.
    assert "bootguard-trial+0-1.conf" in r.boots[2].esp_entries, r.describe()
    (done,) = r.sys_lines()
    assert done["n"] == "3" and done["boot_complete"] == "active", r.describe()
    failed = _events(r, "check-failed")
    assert [e.get("cause") for e in failed] == ["app-health"], r.describe()
    (validation,) = [e for e in _events(r, "validation") if e.get("cause") == "checks-failed"]
    assert _data(validation).get("failed") == ["app-health"], validation
    assert [e.get("entry") for e in _events(r, "marked-bad")] == ["bootguard-trial+1-1.conf"], r.describe()
    assert "rolled-back" in _kinds(r), r.describe()
    assert r.esp_entries == UNTOUCHED, r.describe()


@pytest.mark.parametrize("loader", LOADERS)
@distro_boots(never_completes)
def test_boot_that_never_completes_is_rejected_by_the_deadline(
    loader: str, distro_result: DistroResult
) -> None:
    """A unit that never finishes keeps boot-complete.target out of reach; the short deadline timer
    rejects the boot and reboots, the attempt is counted as failed, and golden boots."""
    r = distro_result
    assert r.run.stopped == "poweroff", r.describe()
    assert len(r.boots) == 3, r.describe()
    assert r.boots[1].entry_file == "bootguard-trial+1-1.conf", r.describe()
    assert r.boots[2].selected == "bootguard-golden.conf", r.describe()
    trial_lines = "\n".join(r.boots[1].lines)
    # The stuck unit holds multi-user.target, so the validator never ran in boot 2: the deadline did.
    # (On a starved host the 20 s deadline may fire before the stuck unit's start job even begins.)
    assert "Starting bootguard-validat" not in trial_lines, r.describe()
    assert "boot-complete.target was not reached" in trial_lines, r.describe()
    assert "reboot: Restarting system" in trial_lines, r.describe()
    (deadline,) = [e for e in _events(r, "validation") if e.get("cause") == "boot-deadline"]
    assert deadline.get("entry") in ("bootguard-trial+1-1.conf", None), deadline
    assert [e.get("entry") for e in _events(r, "marked-bad")] == ["bootguard-trial+1-1.conf"], r.describe()
    assert "bootguard-trial+0-1.conf" in r.boots[2].esp_entries, r.describe()
    assert r.boots[2].variables["LoaderEntryDefault"].text == "bootguard-*", r.describe()
    assert "LoaderBootCountPath" not in r.boots[2].variables, r.describe()
    assert [s["n"] for s in r.sys_lines()] == ["3"], r.describe()
    assert r.esp_entries == UNTOUCHED, r.describe()


@pytest.mark.parametrize("loader", LOADERS)
@distro_boots(watchdog_handoff)
def test_pid1_takes_the_watchdog_over_from_the_initrd(loader: str, distro_result: DistroResult) -> None:
    """The initrd step arms the i6300esb with 30 s and lets go; systemd PID 1 opens it with
    RuntimeWatchdogSec=20 within the 30 s and keeps it fed, so the boot completes without a reset."""
    r = distro_result
    assert r.run.stopped == "poweroff", r.describe()
    step = r.packaged_step(1)  # the initramfs-tools script of the package ran the step, and it succeeded
    assert len(r.boots) == 1 and any("armed with 30 s" in line for line in step), (step, r.describe())
    assert not any("step failed" in line for line in step), step
    assert r.boots[0].selected == "gen-1.conf" and r.boots[0].countpath is None, r.describe()
    assert r.esp_entries == ["gen-1.conf"], r.describe()
    (handoff,) = r.sys_lines("HANDOFF")
    assert handoff["state"] == "active" and handoff["timeout"] == "30", handoff
    (wdt,) = r.sys_lines("SYS-WDT")
    expected = {"n": "1", "state": "active", "timeout": str(PID1_WATCHDOG_SEC), "holder": "1"}
    assert wdt == expected, r.describe()
    assert not r.events_named("WATCHDOG"), r.describe()
    assert "watchdog-reset" not in _kinds(r), r.describe()


@pytest.mark.parametrize("loader", LOADERS)
@distro_boots(watchdog_gap)
def test_gap_longer_than_the_timeout_resets_and_is_recorded(loader: str, distro_result: DistroResult) -> None:
    """When nothing takes the armed watchdog over within its 30 s (the initrd stalls 60 s), the i6300esb
    resets the machine; the next boot reads CARDRESET and records the trial boot as a counted failure
    caused by the watchdog."""
    r = distro_result
    assert r.run.stopped == "poweroff", r.describe()
    assert [b.outcome for b in r.boots] == ["reboot", "hang", "end:recorded"], r.describe()
    assert [e.data.get("action") for e in r.events_named("WATCHDOG")] == ["reset"], r.describe()
    assert [b.bootstatus for b in r.boots[1:]] == [0, CARDRESET], r.describe()
    assert r.boots[2].entry_file == "bootguard-trial+0-2.conf", r.describe()
    assert r.esp_entries == ["bootguard-golden.conf", "bootguard-trial+0-2.conf", "gen-1.conf", "gen-2.conf"]
    (failure,) = _events(r, "counted-failure")
    assert failure.get("cause") == "watchdog-reset", failure
    assert failure.get("entry") == "bootguard-trial+1-1.conf", failure
    assert [e.get("cause") for e in _events(r, "watchdog-reset")] == ["watchdog-reset"], r.describe()
