"""The Nix interpreters the NixOS module is evaluated with: Debian's own, and a newer one from trixie.

Debian bookworm packages Nix 2.8 (`nix-bin`, scripts/bootstrap.sh). nixpkgs 25.11 and later need
Nix >= 2.18, so the module is also evaluated with trixie's `nix-bin` (2.26), which runs here without
being installed: `apt-get download` through the VM harness's private apt configuration (its own
sources list, lists and cache; the host's apt state is untouched), `dpkg-deb -x` of nix-bin and of
the libraries bookworm lacks or has too old (glibc among them), and the binary started through that
tree's own dynamic loader with `--library-path`. Evaluation only (`--eval`, no store writes).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from bootguard.errors import NotFoundError
from bootguard.seams.proc import run
from tests.vm.harness.cache import cache_dir
from tests.vm.harness.packages import private_apt

SUITE = "trixie"
# nix-bin and what bookworm lacks (or has too old) for it; the rest comes from the host.
TRIXIE_PACKAGES = (
    "nix-bin",
    "libc6",
    "libstdc++6",
    "libgcc-s1",
    "libcpuid17",
    "libboost-context1.83.0",
    "libgit2-1.9",
    "liblowdown2",
    "libhttp-parser2.9",
    "libmbedcrypto16",
    "libmbedtls21",
    "libmbedx509-7",
)
LIBDIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/nix")


def debian_nix() -> list[str]:
    """argv prefix of Debian's packaged nix-instantiate."""
    exe = shutil.which("nix-instantiate")
    if exe is None:
        raise NotFoundError(
            "nix-instantiate is missing", hint="install the Debian package nix-bin (scripts/bootstrap.sh)"
        )
    return [exe]


def _tree() -> Path:
    root = cache_dir("nix-trixie")
    done = root / "tree" / ".complete"
    if done.is_file():
        return root / "tree"
    apt = private_apt()
    with tempfile.TemporaryDirectory(prefix="bg-nix-") as tmp:
        dest = Path(tmp)
        for package in TRIXIE_PACKAGES:
            versions = [v for v, suite in apt.madison(package) if suite == SUITE]
            if not versions:
                raise NotFoundError(f"{package}: not in Debian {SUITE} (apt knows {apt.madison(package)})")
            deb = apt.download(package, versions[0], dest)
            run(["dpkg-deb", "-x", str(deb), str(dest / "tree")])
            deb.unlink()
        shutil.rmtree(root / "tree", ignore_errors=True)
        shutil.copytree(dest / "tree", root / "tree", symlinks=True)
    done.write_text("ok\n")
    return root / "tree"


@functools.cache
def trixie_nix() -> list[str]:
    """argv prefix that runs trixie's nix-instantiate through its own glibc's loader."""
    tree = _tree()
    loader = tree / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    if not loader.exists():
        loader = tree / "lib64/ld-linux-x86-64.so.2"
    libpath = ":".join(str(tree / d) for d in LIBDIRS if (tree / d).is_dir())
    # nix-instantiate is a link to the multi-call `nix`, which dispatches on argv[0].
    return [str(loader), "--library-path", libpath, "--argv0", "nix-instantiate", str(tree / "usr/bin/nix")]


def version(argv: list[str]) -> str:
    done = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise NotFoundError(f"{argv[-1]} --version failed: {done.stderr.strip()}")
    return done.stdout.split()[-1]
