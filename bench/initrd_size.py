"""Benchmark: how much the early-boot step adds to an initramfs (target ≤ 4 MiB compressed).

Packs exactly what `bootguard initrd-files` lists (the interpreter, its libraries, the stdlib modules
the step imports with their bytecode, bootguard's modules) into a newc cpio archive, as an initramfs
is, and compresses it with gzip -9 and, where installed, zstd -19. libc and the dynamic loader are
in every initramfs already (systemd, busybox); the figure without them is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALWAYS_THERE = ("libc.so", "ld-linux")


def files(python: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "bootguard", "--json", "initrd-files", "--python", python],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return [p for group in json.loads(out).values() for p in group]


def packed(paths: list[str], compressor: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "part.cpio"
        listing = "\n".join(p.lstrip("/") for p in paths) + "\n"
        with archive.open("wb") as out:
            subprocess.run(
                ["cpio", "-o", "-H", "newc", "--quiet"],
                input=listing.encode(),
                stdout=out,
                cwd="/",
                check=True,
            )
        done = subprocess.run([*compressor, "-c", str(archive)], check=True, capture_output=True)
        return len(done.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter to package")
    args = ap.parse_args()
    everything = files(args.python)
    without_libc = [p for p in everything if not any(m in p for m in ALWAYS_THERE)]
    raw = sum(os.path.getsize(p) for p in everything)
    print(f"{len(everything)} files, {raw / 2**20:.2f} MiB uncompressed")
    compressors = [["gzip", "-9"]] + ([["zstd", "-19", "-q"]] if shutil.which("zstd") else [])
    for comp in compressors:
        total, extra = packed(everything, comp), packed(without_libc, comp)
        print(
            f"{comp[0]:5}: {total / 2**20:.2f} MiB with libc, {extra / 2**20:.2f} MiB added to an initramfs"
            f" that has libc (target <= 4.00 MiB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
