"""The user's GitOps phases A–D on real boots (issue 11): Debian with systemd as PID 1 under real systemd-boot
252 and 262, bootguard's real units started with `systemctl start` as their timers would.

Host B is the guest; host A is the clone /srv/host-a that the test's driver (tests/vm/distro/gitops/phase.sh,
run after each completed boot) commits and pushes from; their remote is the bare /srv/remote.git on the
root disk. The configuration repository describes B's next generation; the fixture's build/switch scripts
turn it into a boot entry gen-N.conf (a generation whose boot.txt says `panic` crashes the kernel early in
its boot). One guest boot sequence serves every phase (lean: ~4 systemd boots + 2 panics per loader):

  boot 1 golden  D: a change that does not build → B rolled back, stays on gen-1;
                 A: a change that breaks the boot → built, switched, staged as a trial
  boot 2, 3      the trial panics twice
  boot 4 golden  the validator fails the commit at boot and resets git; the next timer run does not retry;
                 B: a local edit → auto-commit, server preset: not pushed;
                 the fix conflicts with B's commit → prefer-remote; built, staged
  boot 5 trial   blessed (C: both hosts on the fix, B runs it); workstation role: A's change and B's
                 conflicting commit → push rejected, prefer-local, built, staged, pushed
  boot 6 trial   blessed; A pulls; every commit still reachable
  boot 7         ends in the initramfs
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.vm.distro import rootfs
from tests.vm.distro.scenario import DistroResult, DistroScenario, Generation, generation_entry
from tests.vm.distro.suite import distro_boots
from tests.vm.harness.cache import CHECKOUT

pytestmark = pytest.mark.vm

LOADERS = ("252", "262")
GUEST = Path(__file__).with_name("gitops")
SETUP = """\
chroot $ROOT /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \\
    /bin/sh /etc/bgvm/gitops/setup.sh && say "GITOPS n=$BOOT_N setup=ok"
bg pin-golden --commit "$(cat $ROOT/var/lib/bgvm/gitops/made)"
initrd_step
"""


@dataclass(frozen=True)
class GitopsScenario(DistroScenario):
    """A distribution scenario with extra guest files (the phase driver) and a reboot after each boot."""

    extra_files: Mapping[str, str | bytes | rootfs.Symlink] = field(default_factory=dict)

    def files(self) -> dict[str, str | bytes | rootfs.Symlink]:
        out = super().files()
        out["/etc/bgvm/env"] = str(out["/etc/bgvm/env"]) + "ON_COMPLETE=reboot\n"
        out.update(self.extra_files)
        return out


def _guest_files() -> dict[str, str | bytes | rootfs.Symlink]:
    files: dict[str, str | bytes | rootfs.Symlink] = {
        f"/etc/bgvm/gitops/{p.name}": p.read_text() for p in sorted(GUEST.iterdir()) if p.is_file()
    }
    for role in ("server", "workstation"):
        files[f"/etc/bgvm/gitops/gitops-{role}.env"] = (
            CHECKOUT / "systemd" / f"gitops-{role}.env"
        ).read_text()
    files["/etc/systemd/system/bgvm-gitops.service"] = (GUEST / "bgvm-gitops.service").read_text()
    files["/etc/systemd/system/multi-user.target.wants/bgvm-gitops.service"] = rootfs.Symlink(
        "/etc/systemd/system/bgvm-gitops.service"
    )
    return files


def gitops_phases(_major: str) -> DistroScenario:
    return GitopsScenario(
        name="gitops-phases",
        entries=(generation_entry("gen-1.conf", 1),),
        loader_conf="timeout 0\ndefault gen-1.conf\n",
        generations=(Generation(1, checks=(GUEST / "checks.toml").read_text()),),
        boot_scripts={1: SETUP},
        max_boots=6,
        timeout=1200,  # ~300–500 CPU s here; room for load and a power cycle or two
        extra_files=_guest_files(),
    )


def facts(r: DistroResult) -> dict[str, str]:
    path = r.state / "bgvm" / "gitops" / "facts"
    assert path.exists(), r.describe()
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        out[name] = value
    return out


def gitops_record(r: DistroResult) -> dict[str, object]:
    doc = json.loads((r.state / "bootguard" / "gitops.json").read_text())
    rec = doc["repos"]["/etc/config"]
    assert isinstance(rec, dict)
    return rec


def history(r: DistroResult) -> list[dict[str, str]]:
    got = gitops_record(r)["history"]
    assert isinstance(got, list)
    return got


def _events(r: DistroResult, kind: str) -> list[dict[str, object]]:
    return [e for e in r.bootguard_events() if e.get("kind") == kind]


def _data(e: dict[str, object]) -> dict[str, object]:
    d = e.get("data")
    return d if isinstance(d, dict) else {}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.distro_row("phase A: boot failure")
@distro_boots(gitops_phases)
def test_phase_a_breaking_change_two_failed_boots_golden_cause_recorded(
    loader: str, distro_result: DistroResult
) -> None:
    r, f = distro_result, facts(distro_result)
    assert f["a_rc"] == "0" and f["a_head"] == f["a_commit"] and f["a_newest"] == "gen-2.conf", f
    entries = r.entry_files
    assert len(entries) >= 4 and "bootguard-trial" in entries[1] and "bootguard-trial" in entries[2], entries
    assert r.selected[3] == "bootguard-golden.conf", r.describe()
    # The cause the event log has for the rollback is the cause the commit failed with.
    rolled = _events(r, "rolled-back")
    assert rolled, r.describe()
    failed = [v for v in history(r) if v["outcome"] == "failed" and v["stage"] == "boot"]
    assert [v["commit"] for v in failed] == [f["a_commit"]]
    assert failed[0]["cause"] and failed[0]["cause"] == rolled[-1].get("cause"), (failed, rolled)
    # Each failed try is told with its own evidence (its own pstore record), on the entry file that was
    # booted; the orderly reboots around them (after a verdict) are no failure of anything.
    counted = _events(r, "counted-failure")
    assert [e.get("entry") for e in counted] == entries[1:3], counted
    evidence = [_data(e).get("evidence") for e in counted]
    assert all(evidence) and len(set(evidence)) == len(evidence), counted
    assert not _events(r, "boot-failed") and not _events(r, "boot-ended"), r.describe()


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.distro_row("phase B: commit automation")
@distro_boots(gitops_phases)
def test_phase_b_local_edit_becomes_a_commit_not_pushed_on_a_server(
    loader: str, distro_result: DistroResult
) -> None:
    f = facts(distro_result)
    assert f["b_rc"] == "0", f
    assert f["b_subject"] == "Auto-commit_from_bgvm" or f["b_subject"].startswith("Auto-commit_from_"), f
    assert f["b_body"].startswith("Changes_detected_on_") and "|Host:_" in f["b_body"], f
    assert f["b_remote_unchanged"] == "yes"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.distro_row("phase C: end to end")
@distro_boots(gitops_phases)
def test_phase_c_both_hosts_end_on_the_blessed_commit_b_runs(
    loader: str, distro_result: DistroResult
) -> None:
    r, f = distro_result, facts(distro_result)
    assert f["fix_rc"] == "0" and f["fix_newest"] == "gen-3.conf", f
    assert f["c_b_head"] == f["c_a_head"] == f["c_remote"] == f["fix_commit"] == f["c_running"], f
    assert r.entry_files[4].startswith("bootguard-trial"), r.describe()
    blessed = [v["commit"] for v in history(r) if v["outcome"] == "blessed"]
    assert f["fix_commit"] in blessed
    assert any(
        _data(e).get("stage") == "boot" and _data(e).get("outcome") == "blessed"
        for e in _events(r, "upgrade")
    )


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.distro_row("phase D: failure recovery")
@distro_boots(gitops_phases)
def test_phase_d_build_failure_then_boot_failure_not_retried_then_fix(
    loader: str, distro_result: DistroResult
) -> None:
    r, f = distro_result, facts(distro_result)
    # A change that does not build: B's git rolled back, no new generation.
    assert f["d1_rc"] != "0" and f["d1_head"] == f["golden"] and f["d1_builds"] == "0", f
    assert f["d1_newest"] == "none"
    # A change that breaks the boot: back on golden, git reset to golden's commit, backed up, not retried.
    assert f["golden_head"] == f["golden"] == f["golden_running"], f
    backups = dict(kv.split("=", 1) for kv in f["golden_backups"].split(",") if kv)
    assert any(k.endswith("-failed-boot") and v == f["a_commit"] for k, v in backups.items()), backups
    assert f["retry_rc"] != "0" and f["retry_builds_before"] == f["retry_builds_after"], f
    assert f["retry_head"] == f["golden"]
    failed_events = [e for e in _events(r, "upgrade-failed") if _data(e).get("stage") == "boot"]
    assert [_data(e).get("commit") for e in failed_events] == [f["a_commit"]]
    # The fix: upgraded and blessed.
    failed = gitops_record(r)["failed"]
    assert failed is None or (isinstance(failed, dict) and failed["commit"] != f["a_commit"])
    assert f["final_running"] == f["final_b"]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.distro_row("conflict per role")
@distro_boots(gitops_phases)
def test_conflicts_under_each_role_keep_every_commit(loader: str, distro_result: DistroResult) -> None:
    r, f = distro_result, facts(distro_result)
    # server (prefer-remote): A's side of motd.txt; B's commit dropped from the branch, kept as a backup
    assert f["fix_motd"] == "motd_from_A" and f["fix_head"] == f["fix_commit"], f
    # workstation (prefer-local): push rejected first, then B's side kept and pushed; A pulls it
    assert f["w_commit_rc"] != "0" and f["w_upgrade_rc"] == "0" and f["w_push_rc"] == "0", f
    assert f["w_motd"] == "B's_own_motd" and f["w_b_head"] == f["w_remote"], f
    assert f["final_a"] == f["final_b"] == f["final_remote"] == f["final_running"], f
    assert r.entry_files[5].startswith("bootguard-trial"), r.describe()
    assert f["lost"] == "none", f
