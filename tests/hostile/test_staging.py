"""Category "half-done staging" (issue 15.4): a failed step leaves the old configuration or the new."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from bootguard.seams import fs
from tests.hostile.conftest import clear_error, trial_host

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.hosttree import HostTree


@contextlib.contextmanager
def full(directory: Path) -> Iterator[None]:
    """`directory` on a real tmpfs with no space left (root); else every write in it fails with ENOSPC."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    if (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(directory)], check=False
        ).returncode
        == 0
    ):
        try:
            for name, data in saved.items():
                (directory / name).write_bytes(data)
                (directory / name).chmod(0o600)
            with contextlib.suppress(OSError), open(directory / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            yield
        finally:
            kept = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and p.name != "filler"}
            subprocess.run(["umount", str(directory)], check=True)
            for name, data in kept.items():
                (directory / name).write_bytes(data)
        return
    prefix = str(directory)

    def hook(step: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    old = fs.step_hook
    fs.step_hook = hook  # atomic_write is how every slot and ESP file is written
    try:
        yield
    finally:
        fs.step_hook = old
    del prefix


def _snapshot(host: HostTree) -> tuple[list[str], str | None, object]:
    golden_dir = host.esp / "EFI/bootguard/golden"
    files = sorted(str(p.relative_to(host.esp)) for p in host.esp.rglob("*") if p.is_file())
    del golden_dir
    status = host.cli_json("status")
    assert isinstance(status, dict)
    return files, host.get_var("LoaderEntryDefault"), status.get("trial")


def test_trial_with_a_full_state_dir_changes_nothing(host: HostTree) -> None:
    trial_host(host)
    before = _snapshot(host)
    with full(host.state):
        clear_error(host.cli("trial", "b.conf"))
    assert _snapshot(host) == before


def test_pin_golden_with_a_full_state_dir_changes_nothing(host: HostTree) -> None:
    trial_host(host)
    (host.esp / "vmlinuz2").write_bytes(b"kernel2")
    host.add_entry("c.conf", "title C\nversion 3\nlinux /vmlinuz2\ninitrd /initrd.img\n")
    before = _snapshot(host)
    golden_text = (host.esp / "loader/entries/bootguard-golden.conf").read_bytes()
    with full(host.state):
        clear_error(host.cli("pin-golden", "c.conf"))
    assert _snapshot(host) == before
    assert (host.esp / "loader/entries/bootguard-golden.conf").read_bytes() == golden_text


def test_esp_full_mid_copy_is_a_clear_error_and_leaves_no_partial_copy(
    host: HostTree, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs as the ESP: run it as root (make test does)")
    esp = host.esp
    saved = {str(p.relative_to(esp)): p.read_bytes() for p in esp.rglob("*") if p.is_file()}
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(esp)], check=True)
    try:
        for rel, data in saved.items():
            (esp / rel).parent.mkdir(parents=True, exist_ok=True)
            (esp / rel).write_bytes(data)
        (esp / "loader/entries").mkdir(parents=True, exist_ok=True)
        (esp / "big-kernel").write_bytes(os.urandom(150 * 1024))  # the copy cannot fit
        host.add_entry("a.conf", "title A\nlinux /big-kernel\n")
        host.booted("a.conf")
        host.set_var("LoaderEntryDefault", "a.conf")
        err = clear_error(host.cli("pin-golden", "a.conf"))
        assert "full" in err
        leftovers = (
            list((esp / "EFI/bootguard/golden").glob("*")) if (esp / "EFI/bootguard/golden").exists() else []
        )
        assert leftovers == []
        assert not (esp / "loader/entries/bootguard-golden.conf").exists()
    finally:
        subprocess.run(["umount", str(esp)], check=True)
