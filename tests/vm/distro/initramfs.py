"""The distribution guest's initramfs: static busybox, the modules to reach the disks, `distro_init.sh`.

The harness's archive (`harness/initramfs.py`) is built around the minimal guest's init; this one reuses
its newc writer and module resolution with another init and no 9p: the guest runs bootguard from its
own root file system, not from the host's. Cached by a hash of its inputs, like the harness's.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import tempfile
import threading
from pathlib import Path

from bootguard.errors import NotFoundError
from bootguard.seams.proc import run
from tests.vm.harness.cache import cache_dir
from tests.vm.harness.initramfs import BUSYBOX, Cpio, module_paths
from tests.vm.harness.packages import Kernel

DISTRO_INIT = Path(__file__).with_name("distro_init.sh")

EARLY_MODULES: tuple[str, ...] = (
    "efivarfs",  # LoaderBootCountPath & co. for `bootguard initrd`
    "virtio_pci",
    "virtio_blk",  # the ESP (vda) and the root disk (vdb)
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",  # the ESP
    "ext4",  # the root file system
    "efi_pstore",  # panic logs of the previous boot
    "watchdog",
)
LATE_MODULES: tuple[str, ...] = ("i6300esb",)  # loaded with the scenario's heartbeat
DIRECTORIES = ("bin", "dev", "proc", "sys", "run", "tmp", "sysroot", "lib", "lib/modules")
_LOCK = threading.Lock()


def _module_bytes(path: Path) -> bytes:
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".ko":
        return path.read_bytes()
    raise NotFoundError(f"{path}: compressed module format not supported (only .ko, .ko.xz)")


def _ko_name(path: Path) -> str:
    return path.name.removesuffix(".xz")


def build_archive(kernel: Kernel) -> bytes:
    """The uncompressed newc archive for `kernel`."""
    cpio = Cpio()
    for d in DIRECTORIES:
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    for applet in run([str(BUSYBOX), "--list"]).stdout.split():
        if applet != "busybox":
            cpio.symlink(f"bin/{applet}", "busybox")
    early = module_paths(kernel, EARLY_MODULES)
    late = [p for p in module_paths(kernel, LATE_MODULES) if p not in early]
    for path in early + late:
        cpio.file(f"lib/modules/{_ko_name(path)}", _module_bytes(path))
    cpio.file("lib/modules/early.order", "".join(f"{_ko_name(p)}\n" for p in early).encode())
    cpio.file("lib/modules/late.order", "".join(f"{_ko_name(p)}\n" for p in late).encode())
    cpio.file("init", DISTRO_INIT.read_bytes(), 0o755)
    return cpio.finish()


def distro_initramfs(kernel: Kernel) -> Path:
    """The gzip'd initramfs for `kernel`, built once per (kernel, init, busybox, module list)."""
    key = hashlib.sha256()
    for part in (
        kernel.release,
        DISTRO_INIT.read_bytes(),
        BUSYBOX.read_bytes(),
        repr(EARLY_MODULES + LATE_MODULES),
    ):
        key.update(part if isinstance(part, bytes) else part.encode())
    target = cache_dir("distro") / f"initrd-{kernel.release}-{key.hexdigest()[:16]}.img"
    with _LOCK:
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".initrd-")
            with open(fd, "wb") as f:
                f.write(gzip.compress(build_archive(kernel), compresslevel=1, mtime=0))
            Path(tmp).rename(target)
            for old in target.parent.glob(f"initrd-{kernel.release}-*.img"):
                if old != target:  # an older init's archive: nothing uses it any more
                    old.unlink(missing_ok=True)
    return target
