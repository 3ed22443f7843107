"""Every decision of the early-boot step, on real trees with the model of the loader between boots."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bootguard.demo.simloader import SimulatedLoader
from bootguard.earlyboot.observe import BOOTGUARD_GUID
from bootguard.seams.statestore import StateStore
from tests.hosttree import HostTree


def _staged(host: HostTree) -> SimulatedLoader:
    host.add_entry("gen-1.conf", version="1")
    host.add_entry("gen-2.conf", version="2")
    loader = SimulatedLoader(str(host.esp), str(host.efivars), "systemd-boot 257.13-1~deb13u1")
    host.loader_conf("default gen-1.conf\n")
    loader.boot()
    assert host.cli("pin-golden")[0] == 0
    assert host.cli("trial", "gen-2.conf")[0] == 0
    return loader


def _sysfs_watchdog(root: Path, bootstatus: int) -> Path:
    wd = root / "sysfs" / "watchdog0"
    wd.mkdir(parents=True)
    for name, value in {
        "identity": "i6300ESB timer",
        "bootstatus": str(bootstatus),
        "state": "inactive",
        "timeout": "30",
        "nowayout": "0",
        "status": "0x0",
    }.items():
        (wd / name).write_text(value + "\n")
    return root / "sysfs"


def test_watchdog_reset_is_recorded_as_the_cause(host: HostTree, tmp_path: Path) -> None:
    """A boot that ended without a verdict, followed by CARDRESET in sysfs, is a watchdog failure."""
    loader = _staged(host)
    loader.boot()
    host.initrd()
    loader.boot()
    host.initrd("--watchdog-sysfs", str(_sysfs_watchdog(tmp_path, 32)))
    failures = [e for e in host.events() if e["kind"] == "counted-failure"]
    assert [f["cause"] for f in failures] == ["watchdog-reset"]
    assert any(e["kind"] == "watchdog-reset" for e in host.events())


def test_panic_log_in_pstore_is_the_cause(host: HostTree, tmp_path: Path) -> None:
    """A pstore dmesg record with a kernel panic names the cause of the unseen failed boot."""
    loader = _staged(host)
    loader.boot()  # panics before the initrd step
    loader.boot()
    pstore = tmp_path / "pstore"
    pstore.mkdir()
    (pstore / "dmesg-efi-1").write_text("Kernel panic - not syncing: sysrq triggered crash\n")
    host.initrd("--pstore", str(pstore))
    failures = [e for e in host.events() if e["kind"] == "counted-failure"]
    assert [f["cause"] for f in failures] == ["kernel-panic"]
    # The record is archived in the state directory, so it is not blamed again next time.
    assert list(pstore.iterdir()) == []
    assert [p.name for p in (host.state / "pstore").glob("*/*")] == ["dmesg-efi-1"]


def test_lost_default_variable_is_restored_while_trial_runs(host: HostTree) -> None:
    """If LoaderEntryDefault was lost mid-trial, the initrd step puts the glob back and says so."""
    loader = _staged(host)
    host.set_var("LoaderEntryDefault", None)
    loader.boot()
    result = host.initrd()
    assert "restore-default-glob" in result["actions"]  # type: ignore[operator]
    assert host.get_var("LoaderEntryDefault") == "bootguard-*"
    assert any(e["kind"] == "policy-corrected" for e in host.events())


def test_missing_golden_copy_is_rewritten(host: HostTree) -> None:
    """A deleted bootguard-golden.conf is rewritten from the pinned golden entry."""
    loader = _staged(host)
    (host.esp / "loader/entries/bootguard-golden.conf").unlink()
    loader.boot()
    host.initrd()
    assert "bootguard-golden.conf" in host.entries()


def test_dry_run_writes_nothing(host: HostTree) -> None:
    """--dry-run prints decisions and leaves state, events and the ESP untouched."""
    loader = _staged(host)
    loader.boot()
    before_entries, before_events = host.entries(), host.events()
    result = host.initrd("--dry-run")
    assert result["dry_run"] is True and result["events"]
    assert host.entries() == before_entries and host.events() == before_events


def test_read_only_state_dir_spools_to_run(host: HostTree, tmp_path: Path) -> None:
    """With the state directory read-only (initrd before remount), the decision is spooled, then merged."""
    loader = _staged(host)
    loader.boot()
    subprocess.run(["mount", "--bind", str(host.state), str(host.state)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(host.state)], check=True)
        result = host.initrd("--spool-dir", str(tmp_path / "spool"))
        assert str(result["recorded"]).startswith(str(tmp_path / "spool"))
    finally:
        subprocess.run(["umount", str(host.state)], check=True)
    from bootguard.earlyboot.record import merge_spool

    merged = merge_spool(StateStore(host.state), str(tmp_path / "spool"))
    assert merged >= 1
    assert any(e["kind"] == "boot-attempted" for e in host.events())
    assert not (tmp_path / "spool" / "decision.json").exists()


def test_not_counted_boot_on_read_only_esp(host: HostTree) -> None:
    """A counted entry booted without a rename (read-only ESP) is recorded as NOT counted."""
    loader = _staged(host)
    subprocess.run(["mount", "--bind", str(host.esp), str(host.esp)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(host.esp)], check=True)
        sim = loader.boot(rename_fails=True)
        assert sim.boot_count_path is None
        host.initrd()
    finally:
        subprocess.run(["umount", str(host.esp)], check=True)
    kinds = [e["kind"] for e in host.events()]
    assert "not-counted" in kinds
    status = host.cli_json("status")
    assert isinstance(status, dict) and status["counted"] is False


def test_initrd_failure_is_recorded_with_its_cause(host: HostTree) -> None:
    """`initrd --failed` names the cause at once; the next boot does not report it again as unknown."""
    loader = _staged(host)
    loader.boot()
    host.initrd()
    code, out, err = host.cli("initrd", "--failed", "root device /dev/vdz not found")
    assert code == 0, err
    assert "initrd failure recorded: root device /dev/vdz not found" in out
    assert host.get_var_guid("BootguardInitrdFailure", BOOTGUARD_GUID) == "root device /dev/vdz not found"
    loader.boot()  # attempt 2 dies in the initrd before bootguard's step: only the note is left
    assert host.cli("initrd", "--failed", "root device /dev/vdz not found")[0] == 0
    loader.boot()  # golden
    host.initrd()
    causes = [(e["kind"], e["cause"]) for e in host.events() if e["cause"]]
    assert causes == [
        ("counted-failure", "initrd-failure"),
        ("counted-failure", "initrd-failure"),
        ("rolled-back", "initrd-failure"),
    ]
    assert "root device /dev/vdz not found" in str(host.events())
    assert host.get_var_guid("BootguardInitrdFailure", BOOTGUARD_GUID) is None
