"""The core CLI contract on real ESP trees: list, status, mark, arm, pin-golden, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hosttree import HostTree


def test_list_json_contract_in_loader_order(host: HostTree) -> None:
    """`list --json` gives every documented field, in systemd-boot order, with one next_boot entry."""
    host.add_entry("a.conf", version="1")
    host.add_entry("b+3-1.conf", version="2")
    host.add_entry("c+0-2.conf", version="3")
    data = host.cli_json("list")
    assert isinstance(data, list)
    assert [e["filename"] for e in data] == ["b+3-1.conf", "a.conf", "c+0-2.conf"]
    assert [e["status"] for e in data] == ["indeterminate", "good", "bad"]
    assert data[0]["tries_left"] == 3 and data[0]["tries_done"] == 1
    assert data[1]["tries_left"] is None and data[1]["tries_done"] is None
    assert data[0]["path"] == "loader/entries/b+3-1.conf"
    assert [e["next_boot"] for e in data] == [True, False, False]
    assert {"id", "filename", "path", "tries_left", "tries_done", "status", "next_boot"} <= set(data[0])


def test_list_follows_loader_conf_default(host: HostTree) -> None:
    """The next_boot flag follows loader.conf's default glob, as systemd-boot would."""
    host.add_entry("a.conf", version="1")
    host.add_entry("b.conf", version="2")
    host.loader_conf("default a.conf\n")
    data = host.cli_json("list")
    assert isinstance(data, list)
    assert [e["filename"] for e in data if e["next_boot"]] == ["a.conf"]


def test_binary_junk_and_huge_entries_are_listed_with_problems(host: HostTree) -> None:
    """Junk or oversized entry files never crash listing; they are shown with a problem."""
    (host.esp / "loader/entries/junk.conf").write_bytes(b"\x00\xff\xfe title \x80\n" * 10)
    (host.esp / "loader/entries/huge.conf").write_bytes(b"title x\n" + b"#" * (1 << 20))
    data = host.cli_json("list")
    assert isinstance(data, list)
    by_name = {e["filename"]: e for e in data}
    assert by_name["huge.conf"]["problems"]
    assert by_name["junk.conf"]["problems"]


def test_missing_esp_is_one_line_error(host: HostTree, tmp_path: Path) -> None:
    """A missing ESP directory gives one error line and exit code 3."""
    code, _, err = host.cli("--esp", str(tmp_path / "nope"), "list")
    assert code == 3
    assert err.startswith("bootguard: error: ESP directory") and "Traceback" not in err


def test_mark_without_efivarfs_is_clear(host: HostTree, tmp_path: Path) -> None:
    """mark on a non-EFI boot says efivarfs is missing and exits 5."""
    host.add_entry("a+1-1.conf")
    code, _, err = host.cli("--efivars", str(tmp_path / "absent"), "mark", "good")
    assert code == 5
    assert "efivars" in err or "efivarfs" in err


def test_mark_good_bad_indeterminate_like_bless_boot(host: HostTree) -> None:
    """good removes the counter, bad sets +0-DONE, indeterminate goes back, repeats say 'already'."""
    host.add_entry("a+1-1.conf")
    host.booted("a+1-1.conf")
    code, out, _ = host.cli("mark", "good")
    assert code == 0 and host.entries() == ["a.conf"]
    code, out, _ = host.cli("mark", "good")
    assert code == 0 and "already" in out
    assert host.cli("mark", "bad")[0] == 0 and host.entries() == ["a+0-1.conf"]
    assert host.cli("mark", "indeterminate")[0] == 0 and host.entries() == ["a+1-1.conf"]


def test_mark_not_counted_and_not_found(host: HostTree) -> None:
    """An uncounted boot has nothing to mark (success); a vanished file is 'not found' (exit 3)."""
    host.add_entry("a.conf")
    host.booted("a.conf")
    code, out, _ = host.cli("mark", "good")
    assert code == 0 and "not counted" in out
    host.set_var("LoaderBootCountPath", "\\loader\\entries\\gone+1-1.conf")
    code, _, err = host.cli("mark", "good")
    assert code == 3 and "gone+1-1.conf" in err


def test_mark_records_events(host: HostTree) -> None:
    """Blessing is recorded in the event log with the rename."""
    host.add_entry("a+1-1.conf")
    host.booted("a+1-1.conf")
    host.cli("mark", "good")
    events = host.cli_json("events")
    assert isinstance(events, list)
    assert events[-1]["kind"] == "blessed" and events[-1]["data"]["to"] == "loader/entries/a.conf"


def test_arm_gives_counter_and_refuses_twins(host: HostTree) -> None:
    """arm renames NAME.conf to NAME+N.conf; a counted twin or an already counted entry is refused."""
    host.add_entry("a.conf")
    assert host.cli("arm", "a.conf", "--tries", "3")[0] == 0
    assert host.entries() == ["a+3.conf"]
    code, _, err = host.cli("arm", "a+3.conf", "--tries", "2")
    assert code == 1 and "already has a boot counter" in err
    host.add_entry("a.conf")
    code, _, err = host.cli("arm", "a.conf", "--tries", "2")
    assert code == 1 and "33504" in err
    assert host.entries() == ["a+3.conf", "a.conf"]


def test_pin_golden_refuses_unproven_and_bad(host: HostTree) -> None:
    """Golden must be blessed: counted-with-tries and bad entries are refused, nothing written."""
    host.add_entry("t+1-1.conf")
    host.add_entry("b+0-2.conf")
    code, _, err = host.cli("pin-golden", "t+1-1.conf")
    assert code == 1 and "still on trial" in err
    code, _, err = host.cli("pin-golden", "b+0-2.conf")
    assert code == 1 and "marked bad" in err
    assert host.entries() == ["b+0-2.conf", "t+1-1.conf"]


def test_pin_golden_by_generation_with_gc_root(host: HostTree, tmp_path: Path) -> None:
    """--generation maps NixOS generations (old and hashed names) and adds the GC root."""
    host.add_entry("nixos-generation-7.conf", version="Generation 7 NixOS 24.11")
    host.add_entry("nixos-0f3a9.conf", version="Generation 8 NixOS 26.05")
    root = tmp_path / "nixroot"
    (root / "nix/var/nix/profiles").mkdir(parents=True)
    (root / "nix/var/nix/profiles/system-8-link").symlink_to("/nix/store/x-system")
    code, _, err = host.cli("pin-golden", "--generation", "8", "--nix-root", str(root))
    assert code == 0, err
    # The store path itself, so `nix-collect-garbage -d` deleting old profile links cannot drop it.
    assert os.readlink(root / "nix/var/nix/gcroots/bootguard-golden") == "/nix/store/x-system"
    status = host.cli_json("status")
    assert isinstance(status, dict)
    assert status["golden"]["filename"] == "nixos-0f3a9.conf" and status["golden"]["generation"] == 8
    assert "bootguard-golden.conf" in host.entries()


def test_read_only_esp_is_reported(host: HostTree) -> None:
    """On a read-only ESP, arm fails with a clear message and status says the boot is not counted."""
    host.add_entry("a+2.conf")
    host.add_entry("b.conf")
    host.booted("a+2.conf")
    host.set_var("LoaderBootCountPath", None)
    subprocess.run(["mount", "--bind", str(host.esp), str(host.esp)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(host.esp)], check=True)
        code, _, err = host.cli("arm", "b.conf", "--tries", "2")
        assert code == 5 and "read-only" in err
        status = host.cli_json("status")
        assert isinstance(status, dict)
        assert any("read-only" in a for a in status["advice"])
        assert host.entries() == ["a+2.conf", "b.conf"]
    finally:
        subprocess.run(["umount", str(host.esp)], check=True)


def test_errors_have_no_traceback_without_debug(host: HostTree) -> None:
    """A real subprocess run prints one error line and the documented exit code."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "bootguard", "--esp", "/nonexistent", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == ["bootguard: error: ESP directory /nonexistent does not exist"]


@pytest.mark.parametrize(
    "args", [["trial", "x.conf", "--tries", "0"], ["pin-golden", "a", "--generation", "1"]]
)
def test_usage_errors_exit_2(host: HostTree, args: list[str]) -> None:
    """Contradictory or out-of-range options are usage errors (exit 2)."""
    host.add_entry("a.conf")
    assert host.cli(*args)[0] == 2


def test_every_command_has_help() -> None:
    """`bootguard COMMAND --help` works for every command (and exits 0)."""
    from bootguard.cli.main import COMMANDS

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for name in COMMANDS:
        done = subprocess.run(
            [sys.executable, "-m", "bootguard", name, "--help"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 0, (name, done.stderr)
        assert f"usage: bootguard {name}" in done.stdout


def test_golden_images_are_copied_out_of_reach_of_the_installer(host: HostTree) -> None:
    """pin-golden copies golden's kernel and initrd to EFI/bootguard/golden and points its entry there."""
    (host.esp / "EFI/nixos").mkdir(parents=True)
    (host.esp / "EFI/nixos/k-1.efi").write_bytes(b"kernel")
    (host.esp / "EFI/nixos/i-1.efi").write_bytes(b"initrd")
    host.add_entry(
        "nixos-generation-1.conf", "title G1\nlinux /EFI/nixos/k-1.efi\ninitrd /EFI/nixos/i-1.efi\n"
    )
    assert host.cli("pin-golden", "nixos-generation-1.conf")[0] == 0
    text = (host.esp / "loader/entries/bootguard-golden.conf").read_text()
    assert "linux /EFI/bootguard/golden/k-1.efi" in text and "initrd /EFI/bootguard/golden/i-1.efi" in text
    (host.esp / "EFI/nixos/k-1.efi").unlink()  # the installer's GC after configurationLimit
    assert (host.esp / "EFI/bootguard/golden/k-1.efi").read_bytes() == b"kernel"


def test_pin_golden_refuses_entry_with_missing_kernel(host: HostTree) -> None:
    """An entry whose kernel is not on the ESP cannot be golden: it would not boot."""
    host.add_entry("g.conf", "title G\nlinux /EFI/gone/kernel.efi\n")
    code, _, err = host.cli("pin-golden", "g.conf")
    assert code == 3 and "/EFI/gone/kernel.efi is missing" in err
    assert "bootguard-golden.conf" not in host.entries()


@pytest.mark.parametrize("same_boot", [True, False])
def test_status_says_whose_validation_it_shows(host: HostTree, same_boot: bool) -> None:
    """Before this boot's validator has run, the last validation is an earlier boot's: status says so
    instead of a bare "pass" that reads as this boot's verdict (real /proc boot id)."""
    from bootguard.model.events import read_boot_id
    from bootguard.validator.record import write_last_validation

    now = read_boot_id()
    assert now is not None  # this machine has /proc
    host.add_entry("os-1.conf", version="1")
    doc = {"version": 1, "result": "pass", "decision": "blessed", "time": 1_700_000_000.0, "checks": []}
    write_last_validation(
        str(host.state), {**doc, "boot_id": now if same_boot else "0" * 32, "entry": "os-1+1-1.conf"}
    )
    status = host.cli_json("status")
    assert isinstance(status, dict) and status["last_validation"]["this_boot"] is same_boot
    code, out, err = host.cli("status")
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if x.startswith("validation:")]
    if same_boot:
        assert line == "validation: pass"
    else:
        assert line.startswith("validation: pass, of an earlier boot (os-1+1-1.conf, 2023-11-1")
        assert line.endswith("); none yet on this boot")
