"""The distribution guest's root file system: Debian bookworm with systemd as PID 1 and bootguard installed.

Three stages, each cached by a hash of its inputs under `<cache>/distro/`:

1. `base_tarball()` — `mmdebstrap --variant=minbase` of bookworm with systemd, udev, python3 and the
   Python packages bootguard's userland imports, from the host's own Debian mirror (the URI
   `harness.packages.host_debian_source` finds), as a tarball. About 90 s and 215 MB on a fresh machine.
2. `root_image()` — the tarball unpacked, bootguard's Debian package (`make deb`, cached by a hash of
   its sources: `package.py`) installed with `dpkg -i` in a chroot, exactly as a user installs it (its
   postinst enables the validator and the deadline timer and masks systemd-bless-boot), the harness's
   guest files from `guest/`, then `mkfs.ext4 -d`: no loop device, no mount. Rebuilt whenever the
   package changes (~5 s for the package, ~10 s for the image).
3. `scenario_image()` — a sparse copy of that image with the scenario's own files (`/etc/bgvm/…`: the
   generations' checks.toml and units, per-boot init scripts) written by `debugfs -w`.

After a run `read_back()` replays the journal on a copy (e2fsck) and dumps directories with debugfs.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bootguard.errors import CommandError
from bootguard.seams.proc import run
from tests.vm.distro.package import bootguard_deb
from tests.vm.harness.cache import cache_dir
from tests.vm.harness.initramfs import module_paths
from tests.vm.harness.packages import Kernel, debian_kernel, host_debian_source

SUITE = "bookworm"
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "udev",
    "python3",
    "python3-attr",  # Debian's name for attrs
    "python3-pyudev",
    "python3-sdnotify",
    "python3-cffi-backend",  # the cffi watchdog extension's runtime
    "kmod",
    "iproute2",
    "git",  # the GitOps phases (test_distro_gitops.py): host B's configuration repository
    # Debian's initramfs: bootguard's packaged hook runs in `update-initramfs`, as on a user's host.
    "initramfs-tools",
    "busybox",
    "zstd",
)
# Documentation and translations are a third of minbase + python3 and nothing in the guest reads them.
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
IMAGE_MIB = 1024  # sparse: ~260 MB are used
GUEST_FILES = Path(__file__).with_name("guest")
# bootguard's own units are enabled by its package's postinst; the harness's report unit ends each
# scenario and its journal unit prints bootguard's journal at every shutdown.
ENABLE = ("bgvm-report.service", "bgvm-journal.service")
# No logins on the serial line: a getty on the console also makes systemd stop printing unit status
# there, which the logs need. (systemd-bless-boot, the other blesser, is masked by the package.)
MASK = ("getty.target", "serial-getty@ttyS0.service", "getty@tty1.service")
GUEST_DEB = "/var/cache/bgvm/bootguard.deb"
INITRAMFS_MODULES = GUEST_FILES / "etc/initramfs-tools/modules"
EMPTY_DIRS = ("boot/efi", "etc/bootguard", "etc/bgvm", "var/lib/bgvm")

_LOCK = threading.Lock()  # two scenarios start at once; each stage is built once


@dataclass(frozen=True)
class Built:
    """One cached artefact and what it cost this time (0 s and cached=True when it was already there)."""

    stage: str
    path: Path
    seconds: float
    cached: bool

    def describe(self) -> str:
        how = "cached" if self.cached else f"built in {self.seconds:.0f} s"
        return f"{self.stage}: {self.path.name} ({how})"


@dataclass(frozen=True)
class Symlink:
    """A symbolic link to write into a scenario image (e.g. a unit's `.wants/` link)."""

    target: str


BUILDS: list[Built] = []  # what this process built or found, for the session's timing report


def _digest(parts: Iterable[bytes | str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _tree_digest_parts(root: Path, skip: tuple[str, ...] = ("__pycache__",)) -> list[bytes | str]:
    parts: list[bytes | str] = []
    for path in sorted(root.rglob("*")):
        if any(s in path.parts for s in skip) or path.suffix in (".pyc", ".c") or not path.is_file():
            continue
        parts += [str(path.relative_to(root)), oct(path.stat().st_mode & 0o777), path.read_bytes()]
    return parts


def _mirror_line() -> str:
    src = host_debian_source()
    return f"deb [signed-by={src.signed_by}] {src.uri} {SUITE} main"


def _mmdebstrap_argv(target: Path, mirror: str) -> list[str]:
    argv = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES)]
    argv += [f"--dpkgopt={opt}" for opt in DPKG_OPTIONS]
    return [*argv, SUITE, str(target), mirror]


def _replace_older(directory: Path, pattern: str, keep: Path) -> None:
    """Drop artefacts of older inputs: a root image is 260 MB and the cache must stay deletable, not big."""
    for old in directory.glob(pattern):
        if old != keep:
            old.unlink(missing_ok=True)


def base_tarball() -> Built:
    """Stage 1: the mmdebstrap tarball, built once per (suite, mirror, package list, dpkg options)."""
    mirror = _mirror_line()
    key = _digest([SUITE, mirror, *PACKAGES, *DPKG_OPTIONS])
    target = cache_dir("distro") / f"{SUITE}-minbase-{key}.tar"
    if target.exists():
        return Built("mmdebstrap", target, 0.0, cached=True)
    started = time.monotonic()
    partial = target.with_suffix(".partial.tar")
    partial.unlink(missing_ok=True)
    run(_mmdebstrap_argv(partial, mirror), timeout=900)
    partial.rename(target)
    _replace_older(target.parent, f"{SUITE}-minbase-*.tar", target)
    return Built("mmdebstrap", target, time.monotonic() - started, cached=False)


def _chroot(root: Path, *argv: str, timeout: float = 300) -> None:
    env = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
    run(["chroot", str(root), *env, *argv], timeout=timeout)


def initramfs_modules() -> tuple[str, ...]:
    """The modules the guest's /etc/initramfs-tools/modules lists (MODULES=list)."""
    lines = (line.strip() for line in INITRAMFS_MODULES.read_text().splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def _install_kernel(root: Path, kernel: Kernel) -> None:
    """What `linux-image-*` would put in the root for `update-initramfs`, cut to the modules the guest
    boots with (and their dependencies): the full tree is ~400 MB. depmod indexes what is there."""
    dest = root / "lib/modules" / kernel.release
    for path in module_paths(kernel, initramfs_modules()):
        target = dest / path.relative_to(kernel.modules)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (kernel.modules / name).exists():
            shutil.copy2(kernel.modules / name, dest / name)
    config = kernel.vmlinuz.parent / f"config-{kernel.release}"
    shutil.copy2(config, root / "boot" / config.name)  # mkinitramfs checks the kernel's compressors
    _chroot(root, "depmod", kernel.release)


def _install_bootguard(root: Path, deb: Path, kernel: Kernel) -> Path:
    """The harness's files (its initramfs-tools configuration and scripts among them), `dpkg -i` of
    bootguard's package in the unpacked root (maintainer scripts run chrooted), then `update-initramfs`
    with the packaged hook. Returns the initramfs, in the root's /boot."""
    shutil.copytree(GUEST_FILES, root, dirs_exist_ok=True, symlinks=True)
    for rel in EMPTY_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    _install_kernel(root, kernel)
    inside = root / GUEST_DEB.lstrip("/")
    inside.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(deb, inside)
    _chroot(root, "dpkg", "-i", GUEST_DEB)
    inside.unlink()
    _chroot(root, "update-initramfs", "-c", "-k", kernel.release, timeout=600)
    run(["systemctl", f"--root={root}", "enable", *ENABLE])
    run(["systemctl", f"--root={root}", "mask", *MASK])
    return root / "boot" / f"initrd.img-{kernel.release}"


def root_image() -> Built:
    """Stage 2: the ext4 root image, built once per (tarball, bootguard code, units, guest files)."""
    with _LOCK:
        base = base_tarball()
        if not base.cached:
            BUILDS.append(base)
        deb, deb_seconds, deb_cached = bootguard_deb()
        if not deb_cached:
            BUILDS.append(Built("make deb", deb, deb_seconds, cached=False))
        kernel = debian_kernel()
        key = _digest(
            [
                base.path.name,
                kernel.release,
                str(IMAGE_MIB),
                *ENABLE,
                *MASK,
                *EMPTY_DIRS,
                deb.parent.name,  # the package's source hash
                Path(__file__).read_bytes(),  # how the image is made
                *_tree_digest_parts(GUEST_FILES),
            ]
        )
        target = cache_dir("distro") / f"root-{key}.img"
        if target.exists() and guest_initramfs(target).exists():
            built = Built("root image", target, 0.0, cached=True)
            if built not in BUILDS:
                BUILDS.append(built)
            return built
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bgvm-rootfs-", dir=target.parent) as tmpdir:
            root = Path(tmpdir) / "root"
            root.mkdir()
            run(["tar", "-xpf", str(base.path), "-C", str(root), "--numeric-owner"], timeout=300)
            initrd = _install_bootguard(root, deb, kernel)
            shutil.copy2(initrd, guest_initramfs(target))
            partial = Path(tmpdir) / "root.img"
            run(
                ["mkfs.ext4", "-q", "-F", "-L", "bgroot", "-d", str(root), str(partial), f"{IMAGE_MIB}M"],
                timeout=300,
            )
            partial.rename(target)
        _replace_older(target.parent, "root-*.img", target)
        _replace_older(target.parent, "root-*.initrd", guest_initramfs(target))
        built = Built("root image", target, time.monotonic() - started, cached=False)
        BUILDS.append(built)
        return built


def guest_initramfs(image: Path) -> Path:
    """The initramfs `update-initramfs` built inside root image `image` (a copy of its /boot/initrd.img)."""
    return image.with_suffix(".initrd")


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _debugfs_script(files: Mapping[str, str | bytes | Symlink], staging: Path) -> str:
    """debugfs commands that create `files` (absolute guest paths), their directories first."""
    dirs = sorted({d for path in files for d in _ancestors(path)}, key=lambda d: (d.count("/"), d))
    lines = [f"mkdir {d}" for d in dirs]
    for i, (path, content) in enumerate(sorted(files.items())):
        if isinstance(content, Symlink):
            lines.append(f"symlink {path} {content.target}")
            continue
        src = staging / f"f{i}"
        src.write_bytes(content.encode() if isinstance(content, str) else content)
        # debugfs `write` keeps the source's mode and makes root the owner.
        src.chmod(0o755 if path.endswith(".sh") else 0o644)
        lines.append(f"write {src} {path}")
    return "\n".join(lines) + "\n"


def _debugfs_errors(stderr: str) -> list[str]:
    """debugfs always exits 0; its complaints are on stderr. An existing directory is not an error."""
    errors = []
    for line in stderr.splitlines():
        if line.startswith("debugfs ") or not line.strip() or "already exists" in line:
            continue
        errors.append(line)
    return errors


def scenario_image(base: Path, dest: Path, files: Mapping[str, str | bytes | Symlink]) -> Path:
    """Stage 3: a sparse copy of `base` at `dest` with `files` (absolute path → content) written in."""
    run(["cp", "--sparse=always", str(base), str(dest)])
    with tempfile.TemporaryDirectory(prefix="bgvm-files-") as tmpdir:
        staging = Path(tmpdir)
        script = staging / "cmds"
        script.write_text(_debugfs_script(files, staging))
        done = run(["debugfs", "-w", "-f", str(script), str(dest)])
    errors = _debugfs_errors(done.stderr)
    if errors:
        raise CommandError(f"debugfs -w {dest}: {errors[0]}")
    return dest


def read_back(image: Path, dest: Path, directories: Iterable[str]) -> Path:
    """Copy `directories` (absolute guest paths) out of `image` into `dest`; returns `dest`.

    A guest that was reset or powered off with `-f` leaves a journal to replay: e2fsck does so on a copy.
    Directories missing in the image are skipped (a scenario may never create them).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bgvm-readback-") as tmpdir:
        copy = Path(tmpdir) / "root.img"
        run(["cp", "--sparse=always", str(image), str(copy)])
        fsck = run(["e2fsck", "-fy", str(copy)], check=False)
        if fsck.returncode not in (0, 1, 2):
            raise CommandError(f"e2fsck {image}: exit {fsck.returncode}: {fsck.stdout.strip()[-300:]}")
        for directory in directories:
            exists = run(["debugfs", "-R", f"stat {directory}", str(copy)], check=False)
            if "File not found" in exists.stderr:
                continue
            run(["debugfs", "-R", f"rdump {directory} {dest}", str(copy)])
    return dest
