"""Moving pstore's crash records into the state directory: fs.copy_durably, then the unlink.

The early-boot step copies with the file seam instead of shutil (which would put bz2, lzma and their
libraries into every initramfs), so the copy itself is tested here: the content, the fsyncs that
make it durable before the record is removed, and errors that are OSError and leave nothing behind.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

import pytest

from bootguard.earlyboot.step import archive_pstore
from bootguard.seams import fs

if TYPE_CHECKING:
    from pathlib import Path

RECORD = b"Kernel panic - not syncing: sysrq triggered crash\n" * 30000  # > one 1 MiB read


def _fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths os.fsync is called on, in order (it still syncs)."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_copy_is_equal_private_and_fsynced_before_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "dmesg-efi-1", tmp_path / "archive" / "dmesg-efi-1"
    src.write_bytes(RECORD)
    dst.parent.mkdir()
    fsynced = _fsynced(monkeypatch)
    fs.copy_durably(src, dst, mode=0o600)
    assert dst.read_bytes() == RECORD
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    # The file's data is synced under its temporary name, then the directory holding the rename.
    assert len(fsynced) == 2
    assert fsynced[0].startswith(f"{dst}.tmp.")
    assert fsynced[1] == str(dst.parent)
    assert sorted(p.name for p in dst.parent.iterdir()) == ["dmesg-efi-1"]


def test_copy_errors_are_oserror_and_leave_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileNotFoundError):
        fs.copy_durably(tmp_path / "gone", out / "gone")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file"):  # refused unread, not waited on
        fs.copy_durably(tmp_path / "fifo", out / "fifo")
    (tmp_path / "big").write_bytes(RECORD)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        fs.copy_durably(tmp_path / "big", out / "big")
    assert list(out.iterdir()) == []


def test_records_are_moved_and_other_files_left(tmp_path: Path) -> None:
    pstore, archive = tmp_path / "pstore", tmp_path / "state" / "pstore"
    pstore.mkdir()
    (pstore / "dmesg-efi-1").write_bytes(RECORD)
    (pstore / "dmesg-efi-2").write_bytes(b"second\n")
    (pstore / "console-ramoops-0").write_bytes(b"not a dmesg record\n")
    assert archive_pstore(str(pstore), str(archive)) == 2
    assert [p.name for p in pstore.iterdir()] == ["console-ramoops-0"]
    (moved,) = archive.iterdir()
    assert stat.S_IMODE(moved.stat().st_mode) == 0o700
    assert (moved / "dmesg-efi-1").read_bytes() == RECORD
    assert (moved / "dmesg-efi-2").read_bytes() == b"second\n"
    assert sorted(p.name for p in moved.iterdir()) == ["dmesg-efi-1", "dmesg-efi-2"]


def test_a_record_that_cannot_be_copied_stays_for_systemd_pstore(tmp_path: Path) -> None:
    pstore, archive = tmp_path / "pstore", tmp_path / "state" / "pstore"
    pstore.mkdir()
    os.mkfifo(pstore / "dmesg-efi-1")  # copying it fails (OSError): the boot must go on
    (pstore / "dmesg-efi-2").write_bytes(b"second\n")
    assert archive_pstore(str(pstore), str(archive)) == 1
    assert [p.name for p in pstore.iterdir()] == ["dmesg-efi-1"]
    (moved,) = archive.iterdir()
    assert [p.name for p in moved.iterdir()] == ["dmesg-efi-2"]


def test_no_pstore_or_no_record_creates_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "state" / "pstore"
    assert archive_pstore(str(tmp_path / "missing"), str(archive)) == 0
    (tmp_path / "empty").mkdir()
    assert archive_pstore(str(tmp_path / "empty"), str(archive)) == 0
    assert not archive.exists()
