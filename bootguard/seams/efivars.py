"""efivarfs seam: read and write the Boot Loader Interface variables of systemd-boot.

An efivarfs file `NAME-GUID` holds a 4-byte little-endian attribute word followed by the data.
Strings are UTF-16LE and NUL-terminated; LoaderEntries is a run of such strings; LoaderFeatures
is a u64 LE. The kernel requires the attribute word and the data in a single write(2), and
creates most variables immutable (firmware bugs brick machines when odd variables are deleted,
see Documentation/filesystems/efivarfs.rst), so rewriting or deleting one needs `chattr -i`
first. The same code works on a plain directory of such files, which is how the tests and the
demo run without firmware. Standard library only (early boot).
"""

from __future__ import annotations

import codecs
import errno
import os
import sys

from bootguard.errors import EnvironmentProblem, NoEfiError, ParseError, ReadOnlyError
from bootguard.seams.fs import clean_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import TypeVar

    from bootguard.model.loader import LoaderVars

    T = TypeVar("T")

LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
DEFAULT_DIR = "/sys/firmware/efi/efivars"

ATTR_NON_VOLATILE = 0x1
ATTR_BOOTSERVICE_ACCESS = 0x2
ATTR_RUNTIME_ACCESS = 0x4
ATTRS_VOLATILE = ATTR_BOOTSERVICE_ACCESS | ATTR_RUNTIME_ACCESS  # 0x6
ATTRS_NON_VOLATILE = ATTR_NON_VOLATILE | ATTRS_VOLATILE  # 0x7

MAX_VARIABLE_BYTES = 1 << 20  # firmware variable stores are tens of KiB; anything bigger is not ours

# <linux/fs.h>: FS_IOC_GETFLAGS = _IOR('f', 1, long), FS_IOC_SETFLAGS = _IOW('f', 2, long). The
# size field encodes sizeof(long) although the kernel transfers an int. Linux's ABIs are LP64 or ILP32,
# so sizeof(long) is the pointer size sys.maxsize tells (the early-boot path does not import struct).
_LONG = 8 if sys.maxsize > 1 << 32 else 4
FS_IOC_GETFLAGS = (2 << 30) | (_LONG << 16) | (ord("f") << 8) | 1
FS_IOC_SETFLAGS = (1 << 30) | (_LONG << 16) | (ord("f") << 8) | 2
FS_IMMUTABLE_FL = 0x10
# A file system without inode flags (tmpfs before Linux 6.0, FUSE, overlayfs on some hosts).
_NO_FLAGS_ERRNOS = frozenset({errno.ENOTTY, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})

LOADER_VARIABLES = (
    "LoaderBootCountPath",
    "LoaderEntrySelected",
    "LoaderEntries",
    "LoaderEntryDefault",
    "LoaderEntryOneShot",
    "LoaderEntryPreferred",
    "LoaderEntryLastBooted",
    "LoaderInfo",
    "LoaderFeatures",
    "LoaderDevicePartUUID",
)


def encode_str(value: str) -> bytes:
    """UTF-16LE with the terminating NUL, as systemd-boot stores strings."""
    if "\0" in value:
        raise ParseError(f"cannot store {value!r} in an EFI variable: it contains a NUL character")
    return codecs.utf_16_le_encode(value + "\0")[0]  # = .encode("utf-16-le"), see decode_str_list


def decode_str(data: bytes, name: str) -> str:
    """One NUL-terminated UTF-16LE string; ParseError naming `name` otherwise."""
    if not data:
        raise ParseError(f"EFI variable {name}: no data, expected a NUL-terminated string")
    strings = decode_str_list(data, name)
    if len(strings) != 1:
        raise ParseError(f"EFI variable {name}: expected one NUL-terminated string, found {len(strings)}")
    return strings[0]


def decode_str_list(data: bytes, name: str) -> tuple[str, ...]:
    """A run of NUL-terminated UTF-16LE strings (LoaderEntries); empty data is an empty list."""
    if len(data) % 2:
        raise ParseError(f"EFI variable {name}: odd length {len(data)} for UTF-16 data")
    if data and data[-2:] != b"\0\0":
        raise ParseError(f"EFI variable {name}: string is not NUL-terminated")
    try:
        # What .decode("utf-16-le") runs (encodings.utf_16_le.decode), without importing that module
        # through the codec registry on every early boot (issue 13, speed).
        text = codecs.utf_16_le_decode(data, "strict", True)[0]
    except UnicodeDecodeError as exc:
        raise ParseError(f"EFI variable {name}: invalid UTF-16LE ({exc.reason})") from exc
    if not text:
        return ()
    parts = tuple(text[:-1].split("\0"))
    if len(parts) > 1 and "" in parts:
        raise ParseError(f"EFI variable {name}: empty string in a list")
    return parts


def decode_u64(data: bytes, name: str) -> int:
    if len(data) != 8:
        raise ParseError(f"EFI variable {name}: expected 8 bytes (u64), got {len(data)}")
    return int.from_bytes(data, "little")


def split_attributes(raw: bytes, name: str) -> tuple[int, bytes]:
    """Split an efivarfs file into its attribute word and its data."""
    if len(raw) < 4:
        raise ParseError(f"EFI variable {name}: {len(raw)} bytes is too short for the 4-byte attribute word")
    return int.from_bytes(raw[:4], "little"), raw[4:]


class EfiVars:
    """The loader variables in an efivarfs (or a directory laid out like one)."""

    # A string, not a Path: pathlib costs about 6 ms at early boot (issue 5); `directory` is for callers.
    __slots__ = ("_dir",)

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR) -> None:
        self._dir = clean_path(directory)

    def __repr__(self) -> str:
        return f"EfiVars({self._dir!r})"

    @property
    def directory(self) -> Path:
        from pathlib import Path

        return Path(self._dir)

    def path(self, name: str, guid: str = LOADER_GUID) -> str:
        return os.path.join(self._dir, f"{name}-{guid}")

    def available(self) -> bool:
        return os.path.isdir(self._dir)

    def require(self) -> None:
        if not self.available():
            raise NoEfiError(
                f"{self._dir} is missing: not an EFI boot or efivarfs not mounted",
                hint=f"boot via UEFI, or mount it: mount -t efivarfs efivarfs {self._dir}",
            )

    # -- reading ---------------------------------------------------------------------------

    def read_raw(self, name: str, guid: str = LOADER_GUID) -> tuple[int, bytes] | None:
        """(attributes, data) of a variable, or None when it is not set."""
        path = self.path(name, guid)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error("read", name, path, exc) from exc
        try:
            raw = _read_all(fd, MAX_VARIABLE_BYTES + 5)
        except OSError as exc:
            raise _os_error("read", name, path, exc) from exc
        finally:
            os.close(fd)
        if len(raw) > MAX_VARIABLE_BYTES + 4:
            raise ParseError(f"EFI variable {name}: larger than {MAX_VARIABLE_BYTES} bytes")
        return split_attributes(raw, name)

    def read_str(self, name: str, guid: str = LOADER_GUID) -> str | None:
        found = self.read_raw(name, guid)
        return None if found is None else decode_str(found[1], name)

    def read_str_list(self, name: str, guid: str = LOADER_GUID) -> tuple[str, ...] | None:
        found = self.read_raw(name, guid)
        return None if found is None else decode_str_list(found[1], name)

    def read_u64(self, name: str, guid: str = LOADER_GUID) -> int | None:
        found = self.read_raw(name, guid)
        return None if found is None else decode_u64(found[1], name)

    def snapshot(self) -> LoaderVars:
        """All loader variables at once (NoEfiError without efivarfs).

        Only LoaderBootCountPath decides a verdict (which file to bless or mark bad): a malformed one
        is an error. Every other variable that is malformed (empty, odd length, no NUL, invalid
        UTF-16, huge, a directory) is treated as absent with a warning, so that one unrelated bad
        variable never refuses a good boot (issue 15.2).
        """
        from bootguard.model.loader import LoaderVars

        self.require()
        warnings: list[str] = []

        def tolerant(read: Callable[[str], T | None], name: str) -> T | None:
            try:
                return read(name)
            except (ParseError, EnvironmentProblem) as exc:
                warnings.append(f"{exc.message}; ignored")
                return None

        return LoaderVars(
            boot_count_path=self.read_str("LoaderBootCountPath"),
            entry_selected=tolerant(self.read_str, "LoaderEntrySelected"),
            entries=tolerant(self.read_str_list, "LoaderEntries") or (),
            entry_default=tolerant(self.read_str, "LoaderEntryDefault"),
            entry_oneshot=tolerant(self.read_str, "LoaderEntryOneShot"),
            entry_preferred=tolerant(self.read_str, "LoaderEntryPreferred"),
            entry_last_booted=tolerant(self.read_str, "LoaderEntryLastBooted"),
            info=tolerant(self.read_str, "LoaderInfo"),
            features=tolerant(self.read_u64, "LoaderFeatures"),
            device_part_uuid=tolerant(self.read_str, "LoaderDevicePartUUID"),
            warnings=warnings,
        )

    # -- writing ---------------------------------------------------------------------------

    def write_str(
        self, name: str, value: str, attrs: int = ATTRS_NON_VOLATILE, guid: str = LOADER_GUID
    ) -> None:
        """Set a string variable (UTF-16LE, NUL-terminated)."""
        self.write_raw(name, encode_str(value), attrs, guid)

    def write_raw(
        self, name: str, data: bytes, attrs: int = ATTRS_NON_VOLATILE, guid: str = LOADER_GUID
    ) -> None:
        """Set a variable to `data`: attribute word and data in one write(2), as efivarfs requires."""
        self.require()
        path = self.path(name, guid)
        buf = attrs.to_bytes(4, "little") + data
        with _Unprotected(path, name, restore=True):
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
            try:
                # No O_TRUNC: efivarfs replaces the whole variable on each write and does not
                # support truncation; on a plain directory the tail is cut below instead.
                fd = os.open(path, flags, 0o644)
            except OSError as exc:
                raise _os_error("write", name, path, exc) from exc
            try:
                written = os.write(fd, buf)
                if written != len(buf):
                    raise EnvironmentProblem(
                        f"short write to EFI variable {name} ({written} of {len(buf)} bytes)"
                    )
                if os.fstat(fd).st_size > len(buf):
                    os.ftruncate(fd, len(buf))
            except OSError as exc:
                raise _os_error("write", name, path, exc) from exc
            finally:
                os.close(fd)

    def delete(self, name: str, guid: str = LOADER_GUID) -> bool:
        """Remove a variable; False when it was not set."""
        self.require()
        path = self.path(name, guid)
        with _Unprotected(path, name, restore=False) as guard:
            if not guard.existed:
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            except OSError as exc:
                guard.restore = True  # it stays: leave it protected as it was
                raise _os_error("delete", name, path, exc) from exc
        return True


class _Unprotected:
    """Clear FS_IMMUTABLE_FL on an existing variable for the `with` block, optionally restoring it."""

    __slots__ = ("existed", "fd", "flags", "name", "path", "restore")

    def __init__(self, path: str, name: str, *, restore: bool) -> None:
        self.path = path
        self.name = name
        self.restore = restore
        self.fd: int | None = None
        self.flags: int | None = None
        self.existed = False

    def __enter__(self) -> _Unprotected:
        try:
            self.fd = os.open(
                self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
            )
        except FileNotFoundError:
            return self
        except OSError as exc:
            raise _os_error("open", self.name, self.path, exc) from exc
        self.existed = True
        try:
            flags = _get_flags(self.fd)
            if flags is not None and flags & FS_IMMUTABLE_FL:
                _set_flags(self.fd, flags & ~FS_IMMUTABLE_FL)
                self.flags = flags
        except OSError as exc:
            os.close(self.fd)
            self.fd = None
            raise _os_error("unprotect (chattr -i)", self.name, self.path, exc) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is None:
            return
        try:
            if self.restore and self.flags is not None:
                _set_flags(self.fd, self.flags)
        except OSError as err:
            raise _os_error("re-protect (chattr +i)", self.name, self.path, err) from err
        finally:
            os.close(self.fd)
            self.fd = None


def _get_flags(fd: int) -> int | None:
    import fcntl

    try:
        out = fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0\0\0\0")
    except OSError as exc:
        if exc.errno in _NO_FLAGS_ERRNOS:
            return None
        raise
    return int.from_bytes(out, "little", signed=True)


def _set_flags(fd: int, flags: int) -> None:
    import fcntl

    fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags.to_bytes(4, "little", signed=True))


def _read_all(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    while limit > 0:
        chunk = os.read(fd, min(limit, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def _os_error(verb: str, name: str, path: str, exc: OSError) -> Exception:
    """errno → the error a user can act on, naming the variable."""
    code = exc.errno
    if code == errno.EROFS:
        parent = os.path.dirname(path) or "."
        return ReadOnlyError(
            f"cannot {verb} EFI variable {name}: {parent} is mounted read-only",
            hint=f"mount -o remount,rw {parent}",
        )
    if code in (errno.EPERM, errno.EACCES):
        return EnvironmentProblem(
            f"cannot {verb} EFI variable {name} ({path}): permission denied",
            hint="run as root; the variable may be immutable (chattr -i) or protected by the firmware",
        )
    if code == errno.ENOSPC:
        return EnvironmentProblem(f"cannot {verb} EFI variable {name}: the firmware variable store is full")
    if code == errno.ELOOP:
        return EnvironmentProblem(f"{path} is a symbolic link; refusing to follow it")
    if code == errno.EINVAL:
        return EnvironmentProblem(f"cannot {verb} EFI variable {name}: rejected by the firmware (EINVAL)")
    return EnvironmentProblem(f"cannot {verb} EFI variable {name} ({path}): {exc.strerror or exc}")
