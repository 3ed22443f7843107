"""The ESP / XBOOTLDR seam: finding the partitions, reading entries, renaming entry files.

Discovery follows the Boot Loader Specification's mount points (`/efi`, `/boot`, `/boot/efi`) and asks
`bootctl --print-esp-path` when it is installed. Reading never follows the partition outside its root
and never trusts sizes: a huge or binary entry file is listed with a problem, not loaded. Standard
library only (early boot).
"""

from __future__ import annotations

import errno
import os

from bootguard.errors import EnvironmentProblem, NotFoundError, ReadOnlyError
from bootguard.model._frozen import Frozen
from bootguard.model.entry import MAX_ENTRY_BYTES, BootEntry, Partition
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.loader import LoaderConf

ENTRIES_DIR = "loader/entries"
UKI_DIR = "EFI/Linux"
LOADER_CONF = "loader/loader.conf"
CANDIDATES = ("/efi", "/boot", "/boot/efi")


class PartitionRoot(Frozen):
    """A mounted boot partition: which kind, and where."""

    __slots__ = ("kind", "root")
    kind: Partition
    root: str

    def __init__(self, kind: Partition, root: str) -> None:
        self._init(kind=kind, root=os.path.abspath(root))

    def join(self, relpath: str) -> str:
        return os.path.join(self.root, *relpath.split("/"))

    def writable(self) -> bool:
        """False when the file system is mounted read-only (statvfs ST_RDONLY)."""
        return not os.statvfs(self.root).f_flag & os.ST_RDONLY

    def require_writable(self, why: str) -> None:
        if not self.writable():
            raise ReadOnlyError(
                f"the {self.kind.value.upper()} at {self.root} is mounted read-only: cannot {why}",
                hint=f"remount it read-write (mount -o remount,rw {self.root}); "
                "systemd-boot cannot count boots on a read-only ESP either (systemd issue 36170)",
            )


def _looks_like_boot_partition(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "loader")) or os.path.isdir(os.path.join(path, "EFI"))


def _explicit(kind: Partition, path: str) -> PartitionRoot:
    if not os.path.isdir(path):
        raise NotFoundError(f"{kind.value.upper()} directory {path} does not exist")
    return PartitionRoot(kind, path)


def _bootctl_esp() -> str | None:
    from bootguard.seams import proc

    if not any(
        os.path.exists(os.path.join(d, "bootctl")) for d in ("/usr/bin", "/bin", "/run/current-system/sw/bin")
    ):
        return None
    done = proc.run(["bootctl", "--print-esp-path"], check=False, timeout=10)
    path = done.stdout.strip()
    return path if done.ok and path else None


def discover(
    esp: str | None = None, xbootldr: str | None = None
) -> tuple[PartitionRoot, PartitionRoot | None]:
    """The ESP (required) and XBOOTLDR (optional), explicit paths first, then the usual mount points."""
    xroot = _explicit(Partition.XBOOTLDR, xbootldr) if xbootldr else None
    if esp:
        return _explicit(Partition.ESP, esp), xroot
    found = _bootctl_esp()
    if found is None:
        found = next((c for c in CANDIDATES if _looks_like_boot_partition(c)), None)
    if found is None:
        raise EnvironmentProblem(
            "no EFI system partition found (looked at " + ", ".join(CANDIDATES) + ")",
            hint="mount it, or pass --esp DIR",
        )
    return PartitionRoot(Partition.ESP, found), xroot


def _read_limited(path: str) -> tuple[bytes, bool]:
    """Up to MAX_ENTRY_BYTES of a regular file, and whether it was larger."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        data = os.read(fd, MAX_ENTRY_BYTES + 1)
    finally:
        os.close(fd)
    return data[:MAX_ENTRY_BYTES], len(data) > MAX_ENTRY_BYTES


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        return []


def _scan_type1(part: PartitionRoot) -> list[BootEntry]:
    entries = []
    for name in _listdir(part.join(ENTRIES_DIR)):
        if not name.lower().endswith(".conf") or name.startswith("."):
            continue
        full = part.join(f"{ENTRIES_DIR}/{name}")
        try:
            data, too_big = _read_limited(full)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                continue  # symlinks and non-files are not entries (FAT has neither)
            raise
        entry = BootEntry.from_conf(f"{ENTRIES_DIR}/{name}", b"" if too_big else data, part.kind)
        if too_big:
            problem = f"file is larger than {MAX_ENTRY_BYTES} bytes; contents ignored"
            entry = entry.evolve(problems=(*entry.problems, problem))
        entries.append(entry)
    return entries


def _scan_type2(part: PartitionRoot) -> list[BootEntry]:
    return [
        BootEntry.from_uki(f"{UKI_DIR}/{name}", part.kind)
        for name in _listdir(part.join(UKI_DIR))
        if name.lower().endswith(".efi") and not name.startswith(".")
    ]


def scan(part: PartitionRoot) -> list[BootEntry]:
    """Every Type #1 and Type #2 entry on a partition, unsorted."""
    return _scan_type1(part) + _scan_type2(part)


def read_loader_conf(esp: PartitionRoot) -> LoaderConf:
    from bootguard.model.loader import LoaderConf

    try:
        data, _ = _read_limited(esp.join(LOADER_CONF))
    except FileNotFoundError:
        data = b""
    return LoaderConf.parse(data)


def rename_entry(part: PartitionRoot, relpath: str, new_filename: str) -> str:
    """Rename an entry file in place without replacing anything; durable (dir fsync + syncfs).

    Returns the new path relative to the partition root.
    """
    directory, _, _old = relpath.rpartition("/")
    new_rel = f"{directory}/{new_filename}" if directory else new_filename
    try:
        fs.rename_noreplace(part.join(relpath), part.join(new_rel))
    except OSError as exc:
        if exc.errno == errno.EROFS:
            part.require_writable(f"rename {relpath}")
        raise
    fs.fsync_dir(part.join(directory) if directory else part.root)
    fs.syncfs(part.root)
    return new_rel


def write_file(part: PartitionRoot, relpath: str, data: bytes) -> None:
    """Atomically write a file on a boot partition (used for bootguard-owned entries)."""
    part.require_writable(f"write {relpath}")
    target = part.join(relpath)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fs.atomic_write(target, data, mode=0o644)
    fs.syncfs(part.root)


def remove_file(part: PartitionRoot, relpath: str) -> bool:
    """Delete a file on a boot partition; False if it was not there."""
    part.require_writable(f"remove {relpath}")
    try:
        os.unlink(part.join(relpath))
    except FileNotFoundError:
        return False
    directory = relpath.rpartition("/")[0]
    fs.fsync_dir(part.join(directory) if directory else part.root)
    fs.syncfs(part.root)
    return True
