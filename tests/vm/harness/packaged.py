"""An initramfs with bootguard's early-boot step packaged the way initrd/ packages it, for a guest without
the host's root over 9p.

It is the harness's busybox initramfs with a second, separately compressed cpio archive appended (the
kernel unpacks concatenated archives one after the other, as it does for early microcode). The second
archive holds exactly what `bootguard initrd-files --destinations` lists, each file at its destination,
plus `initrd/bootguard-initrd` at /usr/lib/bootguard/bootguard-initrd, as the dracut module and the
initramfs-tools hook install them. Nothing else: if the list is incomplete, the guest's Python fails.

The appended archive's compressed size is what bootguard adds to a real initramfs (issue 5's target is
≤ 4 MiB); it is written next to the image as JSON.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from bootguard.seams.proc import run
from tests.vm.harness.cache import CHECKOUT, cache_dir
from tests.vm.harness.initramfs import Cpio, initramfs
from tests.vm.harness.packages import Kernel

GUEST_PYTHON = "/usr/bin/python3"  # Debian's interpreter: the one the guest's initramfs gets
WRAPPER_SOURCE = CHECKOUT / "initrd" / "bootguard-initrd"
WRAPPER = "/usr/lib/bootguard/bootguard-initrd"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Listed:
    """One line of `initrd-files --destinations`: a file on this host and where it goes in the image."""

    source: str
    destination: str


def listed_files(python: str = GUEST_PYTHON) -> list[Listed]:
    """What the checkout's `bootguard initrd-files --destinations --python PYTHON` prints."""
    argv = [sys.executable, "-m", "bootguard", "initrd-files", "--destinations", "--python", python]
    out = run(argv, env={**os.environ, "PYTHONPATH": str(CHECKOUT)}, timeout=120).stdout
    return [Listed(*line.split("\t", 1)) for line in out.splitlines() if line.strip()]


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def overlay_archive(files: list[Listed]) -> bytes:
    """The uncompressed cpio of the listed files (content of each source, its mode and mtime) and the
    wrapper, with a directory entry for every parent (the kernel's unpacker creates none by itself)."""
    cpio = Cpio()
    wanted = [(f.source, f.destination) for f in files] + [(str(WRAPPER_SOURCE), WRAPPER)]
    made: set[str] = set()
    for source, destination in wanted:
        for d in _parents(destination):
            if d not in made:
                made.add(d)
                cpio.directory(d)
        st = os.stat(source)  # follows symlinks: /lib64/ld-linux-x86-64.so.2 becomes the file itself
        mode = 0o755 if destination == WRAPPER else st.st_mode & 0o7777
        cpio.file(destination.lstrip("/"), Path(source).read_bytes(), mode, mtime=int(st.st_mtime))
    return cpio.finish()


def compressed_sizes(archive: bytes) -> dict[str, int]:
    """Sizes of `archive` uncompressed and as the compressors initramfs builders use: gzip -9, xz, and
    zstd -19 (initramfs-tools' default compressor on Debian) when the host has the `zstd` tool."""
    sizes = {
        "uncompressed": len(archive),
        "gzip-9": len(gzip.compress(archive, compresslevel=9, mtime=0)),
        # the kernel's xz decoder wants CRC32 checks (as `xz --check=crc32`, what dracut/mkinitramfs pass)
        "xz": len(lzma.compress(archive, check=lzma.CHECK_CRC32, preset=9)),
    }
    zstd = shutil.which("zstd")
    if zstd is not None:
        with tempfile.TemporaryDirectory(prefix="bgvm-zstd-") as tmp:
            raw, packed = Path(tmp) / "overlay.cpio", Path(tmp) / "overlay.cpio.zst"
            raw.write_bytes(archive)
            run([zstd, "-q", "-19", "-o", str(packed), str(raw)], timeout=300)
            sizes["zstd-19"] = packed.stat().st_size
    return sizes


def packaged_initramfs(kernel: Kernel) -> Path:
    """The harness's initramfs for `kernel` + the packaged early-boot step (gzip -9), cached by content.

    `<image>.json` next to it records the files and the sizes the packaging added.
    """
    files = listed_files()
    archive = overlay_archive(files)
    base = initramfs(kernel)
    digest = hashlib.sha256(base.name.encode() + archive).hexdigest()[:16]
    target = cache_dir("initramfs") / f"packaged-{kernel.release}-{digest}.img"
    with _LOCK:
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(base.read_bytes() + gzip.compress(archive, compresslevel=9, mtime=0))
            report = {"files": len(files) + 1, "added_bytes": compressed_sizes(archive)}
            target.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
            tmp.rename(target)
    return target


def added_sizes(image: Path) -> dict[str, object]:
    """The report written next to a packaged image."""
    loaded: dict[str, object] = json.loads(image.with_suffix(".json").read_text())
    return loaded
