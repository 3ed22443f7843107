"""A minimal busybox initramfs for the guest: static busybox, a handful of kernel modules, `guest_init.sh`.

The archive is written here in the kernel's `newc` cpio format rather than with `find | cpio`: that needs
no root for the `/dev/console` node (the kernel opens it for init's stdio before any devtmpfs exists) and
gives byte-identical archives for identical inputs, so the cache key is simply a hash of the inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bootguard.errors import NotFoundError
from bootguard.seams.proc import run
from tests.vm.harness.cache import cache_dir
from tests.vm.harness.packages import Kernel

BUSYBOX = Path("/usr/bin/busybox")  # from busybox-static
GUEST_INIT = Path(__file__).with_name("guest_init.sh")

# Loaded in dependency order at the start of every boot (order from `modprobe --show-depends`).
EARLY_MODULES: tuple[str, ...] = (
    "efivarfs",  # LoaderBootCountPath & co.
    "virtio_pci",
    "virtio_blk",  # ESP disk and state disk
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",  # the ESP
    "ext4",  # the state disk
    "9pnet_virtio",
    "9p",  # the host's root file system, read-only, for `chroot /host python3 -m bootguard`
    "efi_pstore",  # panic logs of the previous boot in /sys/fs/pstore
    "watchdog",  # watchdog core; the driver is loaded later with the scenario's heartbeat
)
LATE_MODULES: tuple[str, ...] = ("i6300esb",)
_BUILD_LOCK = threading.Lock()  # the suite runs two scenarios at once; build each archive once


@dataclass
class Cpio:
    """An in-memory newc archive (uid/gid 0, mtime 0)."""

    buf: io.BytesIO = field(default_factory=io.BytesIO)
    ino: int = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), mtime: int = 0
    ) -> None:
        fields = [self.ino, mode, 0, 0, 1, mtime, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.buf.write(header + name.encode() + b"\0")
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        """A regular file. `mtime` matters for Python sources: a .pyc is only used when the mtime it
        records equals its source's (the kernel keeps cpio mtimes, CONFIG_INITRAMFS_PRESERVE_MTIME)."""
        self._entry(name, stat.S_IFREG | mode, data, mtime=mtime)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def module_paths(kernel: Kernel, names: tuple[str, ...]) -> list[Path]:
    """The `.ko` files for `names` and their dependencies, in load order, without duplicates."""
    ordered: list[Path] = []
    for name in names:
        out = run(["modprobe", "-S", kernel.release, "--show-depends", name]).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "insmod":
                path = Path(fields[1])
                if path not in ordered:
                    ordered.append(path)
            elif fields and fields[0] == "builtin":
                continue
    return ordered


def _module_bytes(path: Path) -> bytes:
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".ko":
        return path.read_bytes()
    raise NotFoundError(f"{path}: compressed module format not supported by the harness (only .ko, .ko.xz)")


def _ko_name(path: Path) -> str:
    return path.name.removesuffix(".xz")


def _busybox_applets() -> list[str]:
    return run([str(BUSYBOX), "--list"]).stdout.split()


def build_archive(kernel: Kernel) -> bytes:
    """The uncompressed cpio archive for `kernel`."""
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "esp", "state", "host", "tmp", "run", "lib", "lib/modules"):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    for applet in _busybox_applets():
        if applet != "busybox":
            cpio.symlink(f"bin/{applet}", "busybox")
    early = module_paths(kernel, EARLY_MODULES)
    late = [p for p in module_paths(kernel, LATE_MODULES) if p not in early]
    for path in early + late:
        cpio.file(f"lib/modules/{_ko_name(path)}", _module_bytes(path))
    cpio.file("lib/modules/early.order", "".join(f"{_ko_name(p)}\n" for p in early).encode())
    cpio.file("lib/modules/late.order", "".join(f"{_ko_name(p)}\n" for p in late).encode())
    cpio.file("init", GUEST_INIT.read_bytes(), 0o755)
    return cpio.finish()


def initramfs(kernel: Kernel) -> Path:
    """The gzip'd initramfs for `kernel`, built once per (kernel, init, busybox, module list)."""
    key = hashlib.sha256()
    for part in (
        kernel.release,
        GUEST_INIT.read_bytes(),
        BUSYBOX.read_bytes(),
        repr(EARLY_MODULES + LATE_MODULES),
    ):
        key.update(part if isinstance(part, bytes) else part.encode())
    target = cache_dir("initramfs") / f"initrd-{kernel.release}-{key.hexdigest()[:16]}.img"
    with _BUILD_LOCK:
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".initrd-")
            with open(fd, "wb") as f:
                f.write(gzip.compress(build_archive(kernel), compresslevel=1, mtime=0))
            Path(tmp).rename(target)  # atomic: other runs see the whole archive or none
    return target
