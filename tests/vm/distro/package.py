"""bootguard's Debian package for the distribution guest: `make deb` once per source state, cached.

The guest installs bootguard the way a Debian user does, `dpkg -i` of the package `scripts/build-deb.sh`
builds (debhelper, pybuild, Debian's python3). The build takes ~5 s; it is cached under `<cache>/deb/`
by a hash of everything the package is built from, so a test session builds it at most once and an
unchanged checkout never.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bootguard.errors import CommandError
from bootguard.seams.proc import run
from tests.vm.harness.cache import CHECKOUT, cache_dir

BUILD_SCRIPT = CHECKOUT / "scripts" / "build-deb.sh"
# What scripts/build-deb.sh copies into the package's source tree (keep the two lists alike).
SOURCES: tuple[str, ...] = (
    "bootguard",
    "c_ext",
    "debian",
    "docs",
    "initrd",
    "monitoring",
    "systemd",
    "pyproject.toml",
    "setup.py",
    "README.md",
    "scripts/build-deb.sh",
)
_SKIP_SUFFIXES = (".pyc", ".so", ".c", ".o")
_LOCK = threading.Lock()


def source_digest(checkout: Path = CHECKOUT) -> str:
    """A hash of the package's sources: names, modes and contents (build products excluded)."""
    h = hashlib.sha256()
    for rel in SOURCES:
        top = checkout / rel
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in paths:
            if "__pycache__" in path.parts or path.suffix in _SKIP_SUFFIXES:
                continue
            h.update(str(path.relative_to(checkout)).encode() + b"\0")
            h.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time per cache, across processes too (a VM session and the package test)."""
    with _LOCK, open(cache_dir("deb") / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def bootguard_deb() -> tuple[Path, float, bool]:
    """The .deb for the checkout as it is now: (path, build seconds, cached?)."""
    with _build_lock():
        target_dir = cache_dir("deb") / source_digest()
        found = sorted(target_dir.glob("bootguard_*.deb"))
        if found:
            return found[0], 0.0, True
        started = time.monotonic()
        partial = target_dir.with_name(target_dir.name + ".partial")
        run(["rm", "-rf", str(partial)])
        done = run(["sh", str(BUILD_SCRIPT), str(partial)], check=False, timeout=900)
        if done.returncode != 0:
            raise CommandError(f"make deb failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        run(["rm", "-rf", str(target_dir)])
        partial.rename(target_dir)
        for old in target_dir.parent.iterdir():  # one package per cache: older ones are never used again
            if old != target_dir and old.name != ".lock":
                run(["rm", "-rf", str(old)])
        deb = next(target_dir.glob("bootguard_*.deb"))
        return deb, time.monotonic() - started, False
