"""The guest's disks, built and read back without mounting anything on the host.

- Boot disk: GPT with one FAT32 ESP (mkfs.vfat + mtools + sfdisk): systemd-boot as EFI/BOOT/BOOTX64.EFI,
  the kernel, the initramfs, loader/loader.conf and loader/entries/*.conf (Type #1 BLS entries); or, for
  GRUB (harness/grub.py), GRUB as BOOTX64.EFI and grub/grub.cfg + grub/grubenv instead of loader/.
- State disk: a bare ext4 file system (no partition table), `/dev/vdb` in the guest. It is ext4 rather
  than FAT because bootguard's state lives on a POSIX file system in real life (/var/lib/bootguard:
  modes, fsync, rename semantics). It is pre-filled with the scenario's control files (`mkfs.ext4 -d`) and
  read back after the run with `e2fsck` (replays the journal, on a copy) + `debugfs rdump`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bootguard.seams.proc import run

ESP_TYPE_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ESP_OFFSET_MIB = 1
ESP_SECTORS = 131072  # 64 MiB
_MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@dataclass(frozen=True)
class BlsEntry:
    """A Type #1 boot loader entry: `loader/entries/<filename>`."""

    filename: str
    title: str
    options: str
    linux: str = "/vmlinuz"
    initrd: str = "/initrd.img"
    sort_key: str | None = None
    version: str | None = None
    extra: tuple[str, ...] = ()

    def render(self) -> str:
        lines = [f"title {self.title}"]
        if self.sort_key is not None:
            lines.append(f"sort-key {self.sort_key}")
        if self.version is not None:
            lines.append(f"version {self.version}")
        lines += [f"linux {self.linux}", f"initrd {self.initrd}", f"options {self.options}", *self.extra]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EspLayout:
    """What goes on the ESP. `loader_conf=None`: no loader/ directory at all (a GRUB ESP)."""

    loader_efi: Path
    kernel: Path
    initrd: Path
    loader_conf: str | None
    entries: tuple[BlsEntry, ...]
    extra_files: dict[str, bytes] = field(default_factory=dict)  # ESP path → content (parents made)

    def directories(self) -> list[str]:
        """Every directory to create, parents first."""
        dirs = ["EFI", "EFI/BOOT"] + (["loader", "loader/entries"] if self.loader_conf is not None else [])
        for name in self.extra_files:
            parts = name.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.append(d)
        return dirs


def _mtools(*argv: str) -> str:
    return run(list(argv), env=_MTOOLS_ENV).stdout


def _mcopy_bytes(image: str, data: bytes, target: str, tmp: Path) -> None:
    src = tmp / "payload"
    src.write_bytes(data)
    _mtools("mcopy", "-o", "-i", image, str(src), f"::{target}")


def build_boot_disk(path: Path, esp: EspLayout) -> None:
    """A GPT disk image at `path` with one FAT32 ESP laid out as `esp` says."""
    with tempfile.TemporaryDirectory(prefix="bgvm-esp-") as tmpdir:
        tmp = Path(tmpdir)
        part = tmp / "esp.part"
        run(["mkfs.vfat", "-F", "32", "-n", "ESP", "-C", str(part), str(ESP_SECTORS // 2)])
        img = str(part)
        for d in esp.directories():
            _mtools("mmd", "-i", img, f"::/{d}")
        _mtools("mcopy", "-i", img, str(esp.loader_efi), "::/EFI/BOOT/BOOTX64.EFI")
        _mtools("mcopy", "-i", img, str(esp.kernel), "::/vmlinuz")
        _mtools("mcopy", "-i", img, str(esp.initrd), "::/initrd.img")
        if esp.loader_conf is not None:
            _mcopy_bytes(img, esp.loader_conf.encode(), "/loader/loader.conf", tmp)
        for entry in esp.entries:
            _mcopy_bytes(img, entry.render().encode(), f"/loader/entries/{entry.filename}", tmp)
        for name, data in esp.extra_files.items():
            _mcopy_bytes(img, data, name, tmp)
        size_mib = ESP_OFFSET_MIB + ESP_SECTORS * 512 // (1024 * 1024) + 1
        with open(path, "wb") as f:
            f.truncate(size_mib * 1024 * 1024)
        table = f"label: gpt\nstart=2048, size={ESP_SECTORS}, type={ESP_TYPE_GUID}, name=ESP\n"
        run(["sfdisk", "--quiet", str(path)], input=table)
        run(
            [
                "dd",
                f"if={part}",
                f"of={path}",
                "bs=1M",
                f"seek={ESP_OFFSET_MIB}",
                "conv=notrunc,sparse",
                "status=none",
            ]
        )


def _esp(disk: Path) -> str:
    return f"{disk}@@{ESP_OFFSET_MIB}M"


def esp_listing(disk: Path, directory: str = "/loader/entries") -> list[str]:
    """File names in `directory` of the ESP (long names, as `mdir -b` prints them), sorted."""
    out = _mtools("mdir", "-b", "-i", _esp(disk), f"::{directory}")
    names = [line.rstrip("/").rsplit("/", 1)[-1] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if n not in (".", ".."))


def esp_read(disk: Path, name: str) -> str:
    """Text of one file on the ESP."""
    return _mtools("mtype", "-i", _esp(disk), f"::{name}")


def build_state_disk(path: Path, files: dict[str, str | bytes], size_mib: int = 64) -> None:
    """An ext4 image at `path` pre-filled with `files` (relative path → content; `.sh` files executable)."""
    with tempfile.TemporaryDirectory(prefix="bgvm-state-") as tmpdir:
        root = Path(tmpdir) / "root"
        root.mkdir()
        for rel, content in files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
            target.chmod(0o755 if rel.endswith(".sh") else 0o644)
        path.unlink(missing_ok=True)
        run(["mkfs.ext4", "-q", "-F", "-L", "bgstate", "-d", str(root), str(path), f"{size_mib}M"])


def read_state_disk(path: Path, dest: Path) -> Path:
    """Copy the whole state file system into `dest` (a fresh directory); returns `dest`.

    Works after an unclean stop too: the journal is replayed by e2fsck on a copy of the image first.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bgvm-state-") as tmpdir:
        copy = Path(tmpdir) / "state.img"
        shutil.copyfile(path, copy)
        # Exit status 1/2 = errors corrected (e.g. the journal replayed): expected after a reset.
        fsck = run(["e2fsck", "-fy", str(copy)], check=False)
        if fsck.returncode not in (0, 1, 2):
            raise AssertionError(f"e2fsck {path}: exit {fsck.returncode}: {fsck.stdout[-500:]}")
        run(["debugfs", "-R", f"rdump / {dest}", str(copy)])
    return dest
