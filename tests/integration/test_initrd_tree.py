"""The initramfs file list is complete: the packaged entry point runs in a chroot holding only
what `bootguard initrd-files --destinations` lists (plus busybox for /bin/sh), on Debian's python3."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
PYTHON = "/usr/bin/python3"
BUSYBOX = "/bin/busybox"


def _install(tree: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listing = subprocess.run(
        [sys.executable, "-m", "bootguard", "initrd-files", "--destinations", "--python", PYTHON],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    for line in listing.splitlines():
        src, dst = line.split("\t")
        target = tree / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    (tree / "bin").mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, tree / "bin/sh")
    assert not (tree / "usr/bin/python3").exists()  # only python3.X: the wrapper must find it
    shutil.copy2(ROOT / "initrd/bootguard-initrd", tree / "usr/lib/bootguard/bootguard-initrd")


def _host(tree: Path) -> None:
    entries = tree / "esp/loader/entries"
    entries.mkdir(parents=True)
    (entries / "trial+1-1.conf").write_text("title trial\nlinux /k\n")
    efivars = tree / "sys/firmware/efi/efivars"
    efivars.mkdir(parents=True)
    for name, value in (
        ("LoaderInfo", "systemd-boot 257.13-1~deb13u1"),
        ("LoaderBootCountPath", "\\loader\\entries\\trial+1-1.conf"),
    ):
        (efivars / f"{name}-{GUID}").write_bytes(struct.pack("<I", 6) + (value + "\0").encode("utf-16-le"))
    (tree / "proc/sys/kernel/random").mkdir(parents=True)
    (tree / "proc/sys/kernel/random/boot_id").write_text("5c0b1a52-0000-4000-8000-000000000001\n")
    # A panic record for the step to archive (with the file seam's copy: no shutil in the list).
    (tree / "sys/fs/pstore").mkdir(parents=True)
    (tree / "sys/fs/pstore/dmesg-efi-1").write_text("Kernel panic - not syncing: sysrq triggered crash\n")


@pytest.mark.integration
@pytest.mark.skipif(
    not (os.path.exists(PYTHON) and os.path.exists(BUSYBOX)), reason="needs python3 and busybox-static"
)
def test_packaged_early_boot_step_runs_from_the_listed_files_alone(tmp_path: Path) -> None:
    """In a chroot with only the listed files, the entry point records the counted boot and archives
    pstore's panic record."""
    tree = tmp_path / "initramfs"
    _install(tree)
    _host(tree)
    env = {"PATH": "/usr/bin:/bin", "BOOTGUARD_ESP": "/esp", "BOOTGUARD_STATE_DIR": "/state"}
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    done = subprocess.run(
        [chroot, str(tree), "/bin/sh", "/usr/lib/bootguard/bootguard-initrd"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Could not find" not in done.stderr, done.stderr  # the interpreter found its prefix
    assert "booting trial+1-1.conf: counted attempt 1" in done.stdout
    events = (tree / "state/events.jsonl").read_text()
    assert '"boot-attempted"' in events and "trial+1-1.conf" in events
    assert list((tree / "sys/fs/pstore").iterdir()) == []
    assert [p.name for p in (tree / "state/pstore").glob("*/*")] == ["dmesg-efi-1"]


def _efivar(tree: Path, name: str, value: str) -> None:
    path = tree / "sys/firmware/efi/efivars" / f"{name}-{GUID}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<I", 6) + (value + "\0").encode("utf-16-le"))


@pytest.mark.integration
@pytest.mark.skipif(
    not (os.path.exists(PYTHON) and os.path.exists(BUSYBOX)), reason="needs python3 and busybox-static"
)
def test_listed_files_suffice_to_end_a_used_up_trial(tmp_path: Path) -> None:
    """Golden boots after the trial's tries ran out: the step, from the listed files alone, rolls the
    trial back and removes its copy from the ESP (fs.syncfs needs ctypes: found missing by the
    distribution guest booting Debian's initramfs)."""
    tree = tmp_path / "initramfs"
    _install(tree)
    entries = tree / "esp/loader/entries"
    entries.mkdir(parents=True)
    (tree / "esp/k").write_text("kernel\n")
    (tree / "esp/loader/loader.conf").write_text("timeout 0\ndefault gen-1.conf\n")
    for n in (1, 2):
        (entries / f"gen-{n}.conf").write_text(f"title g{n}\nversion {n}\nlinux /k\noptions g={n}\n")
    _efivar(tree, "LoaderInfo", "systemd-boot 257.13-1~deb13u1")
    _efivar(tree, "LoaderEntrySelected", "gen-1.conf")
    (tree / "proc/sys/kernel/random").mkdir(parents=True)
    (tree / "proc/sys/kernel/random/boot_id").write_text("5c0b1a52-0000-4000-8000-000000000002\n")
    host = [sys.executable, "-m", "bootguard", "--esp", str(tree / "esp"), "--state-dir", str(tree / "state"),
            "--efivars", str(tree / "sys/firmware/efi/efivars")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([*host, "pin-golden"], check=True, capture_output=True, env=env)
    subprocess.run([*host, "trial", "gen-2.conf", "--tries", "2"], check=True, capture_output=True, env=env)
    # Both tries failed before bootguard ran (the loader counted them down); golden boots.
    (entries / "bootguard-trial+2.conf").rename(entries / "bootguard-trial+0-2.conf")
    _efivar(tree, "LoaderEntrySelected", "bootguard-golden.conf")
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    done = subprocess.run(
        [chroot, str(tree), "/bin/sh", "/usr/lib/bootguard/bootguard-initrd"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "BOOTGUARD_ESP": "/esp", "BOOTGUARD_STATE_DIR": "/state"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in entries.iterdir()) == ["bootguard-golden.conf", "gen-1.conf", "gen-2.conf"]
    assert '"rolled-back"' in (tree / "state/events.jsonl").read_text()
