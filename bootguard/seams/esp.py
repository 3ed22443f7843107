"""The ESP / XBOOTLDR seam: finding the partitions, reading entries, renaming entry files.

Discovery follows the Boot Loader Specification's mount points (`/efi`, `/boot`, `/boot/efi`) and asks
`bootctl --print-esp-path` when it is installed. Reading never follows the partition outside its root
and never trusts sizes: a huge or binary entry file is listed with a problem, not loaded. Standard
library only (early boot).

The one rule for paths (issue 15.1): every path bootguard reads, writes, renames or removes on a boot
partition goes through `PartitionRoot.join`, i.e. `resolve_inside`: a `..` component is refused
outright (as systemd-bless-boot refuses a LoaderBootCountPath that is not normalized), and the path,
with every symlink on the way resolved, must stay inside the partition's own (resolved) root. Files
are opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat, so a FIFO or device planted as an entry
is never read (it would hang) and a symlink in the last component is never followed.
"""

from __future__ import annotations

import errno
import os
import stat

from bootguard.errors import EnvironmentProblem, NotFoundError, ReadOnlyError, RefusedError
from bootguard.model._frozen import Frozen
from bootguard.model.entry import MAX_ENTRY_BYTES, BootEntry, Partition
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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
        """The path of `relpath` on this partition; OutsideError when it would resolve outside it."""
        return resolve_inside(self, relpath)

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


class OutsideError(RefusedError):
    """A path on a boot partition that would lead outside it (`..`, or a symlink out)."""


def resolve_inside(part: PartitionRoot, relpath: str) -> str:
    """`relpath` joined to the partition root, refused unless it resolves inside the partition.

    `..` components are refused even when they would land inside (systemd-bless-boot refuses a
    LoaderBootCountPath that is not normalized); symlinks on the way are resolved (realpath) and the
    result must stay under the resolved root. The returned path is the lexical one.
    """
    names = [p for p in relpath.split("/") if p not in ("", ".")]
    label = f"the {part.kind.value.upper()} at {part.root}"
    if ".." in names:
        raise OutsideError(f"path {relpath!r} has a '..' component; refusing to leave {label}")
    if any("\0" in n for n in names):
        raise OutsideError(f"path {relpath!r} contains a NUL character; refusing it")
    path = os.path.join(part.root, *names)
    real = os.path.realpath(path)
    if real == path:
        # No symlink anywhere on the path, so none in the root's part of it either: the path is
        # lexically under the root (no '..') and really there; one realpath instead of two.
        return path
    real_root = os.path.realpath(part.root)
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise OutsideError(
            f"{relpath} on {label} resolves to {real}, outside it (a symbolic link); refusing to follow it",
            hint=f"replace the symbolic link {path} by a real directory or file on the partition",
        )
    return path


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


class NotRegularFile(OSError):
    """A path that is a FIFO, device, socket or directory where a regular file was expected."""


def _read_limited(path: str) -> tuple[bytes, bool]:
    """Up to MAX_ENTRY_BYTES of a regular file, and whether it was larger.

    O_NONBLOCK + fstat: a FIFO or device is never read (NotRegularFile), so a planted FIFO cannot
    hang bootguard; O_NOFOLLOW: a symlink in the last component raises ELOOP.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
        chunks: list[bytes] = []
        left = MAX_ENTRY_BYTES + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[:MAX_ENTRY_BYTES], len(data) > MAX_ENTRY_BYTES


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        return []
    except PermissionError as exc:
        raise EnvironmentProblem(f"cannot list {path}: permission denied", hint="run as root") from exc


def _regular_files(path: str) -> list[str]:
    """The names of the regular files in a directory, sorted; symlinks, FIFOs, devices and
    directories are left out by their directory entry type (FAT has none of them), so no entry
    needs opening to be listed. File systems that do not report a type are asked per name (lstat)."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError as exc:
        raise EnvironmentProblem(f"cannot list {path}: permission denied", hint="run as root") from exc


def _body_reader(directory: str) -> Callable[[str], tuple[bytes, str | None]]:
    """Reads an entry's contents when they are first needed (BootEntry.from_file), bounded, with
    the sentence that says why they are ignored when they cannot be used."""

    def read(name: str) -> tuple[bytes, str | None]:
        try:
            data, too_big = _read_limited(os.path.join(directory, name))
        except OSError as exc:  # NotRegularFile too: replaced by a FIFO or a link since it was listed
            return b"", f"cannot read it: {exc.strerror or exc}; contents ignored"
        if too_big:
            return b"", f"file is larger than {MAX_ENTRY_BYTES} bytes; contents ignored"
        return data, None

    return read


def _scan_type1(part: PartitionRoot, *, lazy: bool) -> list[BootEntry]:
    # The directory is checked once (resolve_inside); each name in it is a single component (no "/",
    # never ".." as it ends in .conf and hidden names are skipped), listed only when its directory
    # entry is a regular file and opened with O_NOFOLLOW when read, so a symlinked entry is never
    # followed: the same entries as a realpath per file, without its ~50 lstat calls per entry on
    # every early boot (issue 13, speed).
    directory = part.join(ENTRIES_DIR)
    read = _body_reader(directory)
    entries = [
        BootEntry.from_file(f"{ENTRIES_DIR}/{name}", part.kind, read)
        for name in _regular_files(directory)
        if name.lower().endswith(".conf") and not name.startswith(".")
    ]
    if not lazy:
        for entry in entries:
            entry.problems  # noqa: B018 -- read and parse now, while the view is a snapshot
    return entries


def _scan_type2(part: PartitionRoot) -> list[BootEntry]:
    return [
        BootEntry.from_uki(f"{UKI_DIR}/{name}", part.kind)
        for name in _listdir(part.join(UKI_DIR))
        if name.lower().endswith(".efi") and not name.startswith(".")
    ]


def scan(part: PartitionRoot, *, lazy: bool = False) -> list[BootEntry]:
    """Every Type #1 and Type #2 entry on a partition, unsorted; `lazy`: a Type #1 entry's file is
    read when a field needs its contents (the early-boot step decides on file names alone)."""
    return _scan_type1(part, lazy=lazy) + _scan_type2(part)


def read_loader_conf(esp: PartitionRoot) -> LoaderConf:
    from bootguard.model.loader import LoaderConf

    path = esp.join(LOADER_CONF)
    try:
        data, too_big = _read_limited(path)
    except FileNotFoundError:
        return LoaderConf.parse(b"")
    except OSError as exc:
        # systemd-boot boots without a loader.conf it cannot read; so does every bootguard command
        # (a directory named loader.conf crashed them all, issue 15).
        why = (
            "is not a regular file" if isinstance(exc, NotRegularFile) else f"cannot be read ({exc.strerror})"
        )
        conf = LoaderConf.parse(b"")
        return conf.evolve(problems=(f"{LOADER_CONF} {why}; ignored, as systemd-boot ignores it",))
    conf = LoaderConf.parse(data)
    if too_big:
        conf = conf.evolve(problems=(*conf.problems, f"{LOADER_CONF} is larger than {MAX_ENTRY_BYTES} bytes"))
    return conf


def read_entry(part: PartitionRoot, relpath: str) -> bytes:
    """The bytes of an entry file, bounded; a clear error for what cannot or must not be read."""
    path = part.join(relpath)
    try:
        data, too_big = _read_limited(path)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{path} does not exist") from exc
    except NotRegularFile as exc:
        raise RefusedError(f"{path} is not a regular file; refusing to read it") from exc
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
    if too_big:
        raise RefusedError(
            f"{path} is larger than {MAX_ENTRY_BYTES} bytes; an entry file is a few lines of text",
        )
    return data


def _write_error(part: PartitionRoot, verb: str, relpath: str, exc: OSError) -> Exception:
    """An OSError while changing a boot partition → the error a user can act on, naming the file."""
    label = f"the {part.kind.value.upper()} at {part.root}"
    if exc.errno == errno.ENOSPC:
        return EnvironmentProblem(
            f"cannot {verb} {relpath}: {label} is full; nothing was left half-written",
            hint=f"free space on {part.root} (df -h {part.root}) and run the command again",
        )
    if exc.errno == errno.ENAMETOOLONG:
        return RefusedError(f"cannot {verb} {relpath}: the file name is too long for {label}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return EnvironmentProblem(
            f"cannot {verb} {relpath} on {label}: permission denied", hint="run as root"
        )
    return EnvironmentProblem(f"cannot {verb} {relpath} on {label}: {exc.strerror or exc}")


def rename_entry(part: PartitionRoot, relpath: str, new_filename: str) -> str:
    """Rename an entry file in place without replacing anything; durable (dir fsync + syncfs).

    Returns the new path relative to the partition root.
    """
    directory, _, _old = relpath.rpartition("/")
    new_rel = f"{directory}/{new_filename}" if directory else new_filename
    src, dst = part.join(relpath), part.join(new_rel)
    try:
        fs.rename_noreplace(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno == errno.EROFS:
            part.require_writable(f"rename {relpath}")
        raise _write_error(part, "rename", relpath, exc) from exc
    fs.fsync_dir(part.join(directory) if directory else part.root)
    fs.syncfs(part.root)
    return new_rel


def _makedirs(part: PartitionRoot, relpath: str) -> None:
    # An explicit mode: under umask 000, os.makedirs' default would make 0777 directories (issue 15).
    path = part.join(relpath)
    if os.path.isdir(path):
        return
    old = os.umask(0o022)
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    finally:
        os.umask(old)


def write_file(part: PartitionRoot, relpath: str, data: bytes) -> None:
    """Atomically write a file on a boot partition (used for bootguard-owned entries)."""
    part.require_writable(f"write {relpath}")
    target = part.join(relpath)
    try:
        _makedirs(part, relpath.rpartition("/")[0])
        fs.atomic_write(target, data, mode=0o644)
        fs.syncfs(part.root)
    except OSError as exc:
        raise _write_error(part, "write", relpath, exc) from exc


def copy_file(part: PartitionRoot, src_rel: str, dst_rel: str) -> None:
    """Copy a regular file within a boot partition (temp file, fsync, rename); both ends inside it.

    A full partition gives a clear error and leaves no partial copy behind.
    """
    part.require_writable(f"copy {src_rel}")
    src, dst = part.join(src_rel), part.join(dst_rel)
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{src_rel} is missing from {part.root}") from exc
    except OSError as exc:
        raise _write_error(part, "read", src_rel, exc) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RefusedError(f"{src_rel} on {part.root} is not a regular file; refusing to copy it")
        _makedirs(part, dst_rel.rpartition("/")[0])
        fs.copy_fd_durably(fd, dst, mode=0o644)
        fs.syncfs(part.root)
    except OSError as exc:
        raise _write_error(part, "copy to", dst_rel, exc) from exc
    finally:
        os.close(fd)


def remove_file(part: PartitionRoot, relpath: str) -> bool:
    """Delete a file on a boot partition; False if it was not there."""
    part.require_writable(f"remove {relpath}")
    try:
        os.unlink(part.join(relpath))
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _write_error(part, "remove", relpath, exc) from exc
    directory = relpath.rpartition("/")[0]
    fs.fsync_dir(part.join(directory) if directory else part.root)
    fs.syncfs(part.root)
    return True


def read_if_present(part: PartitionRoot, relpath: str) -> bytes | None:
    """The bytes of a (bootguard-owned) file, None when absent: saved so a failed step can put it back."""
    try:
        return read_entry(part, relpath)
    except NotFoundError:
        return None


def _same_content(a: str, b: str) -> bool:
    import filecmp

    return filecmp.cmp(a, b, shallow=False)


def copy_image(part: PartitionRoot, src_rel: str, directory: str, taken: set[str]) -> tuple[str, bool]:
    """Copy a kernel/initrd/devicetree into `directory`; returns its new path and whether it is new.

    The copy never overwrites a different file: golden's kernel and initrd sharing a base name get
    two names (both under one name, golden could not boot), and an older golden's image of the same
    name stays intact until the new pin is committed (so a failed pin can be rolled back).
    `taken` holds the names this entry already uses and is extended.
    """
    src_rel = src_rel.lstrip("/")
    src = part.join(src_rel)  # refuses `..` and symlinks out of the partition
    if not os.path.isfile(src) or os.path.islink(src):
        raise NotFoundError(
            f"golden's image /{src_rel} is missing from {part.root} (or is not a regular file): "
            "golden would not boot",
            hint="pin an entry whose kernel and initrd are present",
        )
    base = src_rel.rpartition("/")[2]
    for n in range(1000):
        name = base if n == 0 else f"{n}-{base}"
        dst_rel = f"{directory}/{name}"
        if name in taken:
            continue
        dst = part.join(dst_rel)
        if os.path.abspath(src) == os.path.abspath(dst):
            taken.add(name)
            return dst_rel, False
        if os.path.lexists(dst):
            if os.path.isfile(dst) and not os.path.islink(dst) and _same_content(src, dst):
                taken.add(name)
                return dst_rel, False
            continue
        copy_file(part, src_rel, dst_rel)
        taken.add(name)
        return dst_rel, True
    raise RefusedError(f"too many copies named {base} in {part.join(directory)}")


def prune(part: PartitionRoot, directory: str, keep: set[str]) -> list[str]:
    """Remove every file in `directory` (bootguard's own) whose name is not in `keep`."""
    removed = []
    for name in _listdir(part.join(directory)):
        if name not in keep:
            remove_file(part, f"{directory}/{name}")
            removed.append(name)
    return removed
