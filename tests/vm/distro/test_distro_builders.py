"""The distribution guest's builders on real tools (mkfs.ext4, debugfs, e2fsck, busybox), without a VM."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pytest

from bootguard.errors import CommandError
from bootguard.seams.proc import run
from tests.vm.distro import rootfs
from tests.vm.distro.scenario import DistroScenario, Generation, generation_entry
from tests.vm.harness.initramfs import BUSYBOX
from tests.vm.harness.packages import debian_kernel

pytestmark = pytest.mark.integration
DISTRO = Path(__file__).parent


def _small_image(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("bgvm\n")
    image = tmp_path / "base.img"
    run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(image), "16M"])
    return image


def test_scenario_files_round_trip_through_debugfs(tmp_path: Path) -> None:
    """Files written into a copy of the image (nested dirs, .sh executable, symlinks) read back intact."""
    base = _small_image(tmp_path)
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    files: dict[str, str | bytes | rootfs.Symlink] = {
        "/etc/bgvm/env": "MAX_BOOTS=2\n",
        "/etc/bgvm/boot-1.sh": "do_reboot\n",
        "/etc/bgvm/gen-2/units/a.service": "[Service]\n",
        "/etc/bgvm/gen-2/units/multi-user.target.wants/a.service": rootfs.Symlink("/run/x/a.service"),
    }
    image = rootfs.scenario_image(base, tmp_path / "scn.img", files)
    out = rootfs.read_back(image, tmp_path / "out", ["/etc/bgvm", "/var/lib/absent"])
    assert (out / "bgvm" / "env").read_text() == "MAX_BOOTS=2\n"
    assert stat.S_IMODE((out / "bgvm" / "boot-1.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "bgvm" / "env").stat().st_mode) == 0o644
    link = out / "bgvm" / "gen-2" / "units" / "multi-user.target.wants" / "a.service"
    assert os.readlink(link) == "/run/x/a.service"
    assert not (out / "absent").exists()
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before  # the cached image is never written


def test_debugfs_complaint_is_an_error(tmp_path: Path) -> None:
    """debugfs exits 0 even when it cannot create a file; scenario_image turns its complaint into an error."""
    base = _small_image(tmp_path)
    with pytest.raises(CommandError, match="debugfs"):
        # /etc/hostname is a regular file: nothing can be created below it.
        rootfs.scenario_image(base, tmp_path / "scn.img", {"/etc/hostname/x": "y"})


def test_scenario_files_carry_each_generation_and_boot_script() -> None:
    """A scenario's files put each generation's checks, units and system.conf under /etc/bgvm/gen-N."""
    scn = DistroScenario(
        name="x",
        entries=(generation_entry("gen-1.conf", 1),),
        loader_conf="timeout 0\n",
        generations=(
            Generation(1, checks="[validator]\n"),
            Generation(2, units={"u.service": "[Unit]\n"}, system_conf="[Manager]\n"),
        ),
        boot_scripts={1: "do_reboot\n"},
        max_boots=3,
        initrd_watchdog_timeout=30,
    )
    files = scn.files()
    assert sorted(files) == [
        "/etc/bgvm/boot-1.sh",
        "/etc/bgvm/env",
        "/etc/bgvm/gen-1/checks.toml",
        "/etc/bgvm/gen-2/system.conf",
        "/etc/bgvm/gen-2/units/u.service",
    ]
    assert files["/etc/bgvm/env"] == "MAX_BOOTS=3\nWDT_HEARTBEAT=30\nWDT_TIMEOUT=30\n"
    assert "bgvm.gen=1" in generation_entry("gen-1.conf", 1).render()


GUEST_SCRIPTS = [
    "guest/etc/initramfs-tools/scripts/local-bottom/bgvm",
    "guest/etc/initramfs-tools/scripts/init-bottom/bgvm",
    "guest/usr/lib/bgvm/report.sh",
]


@pytest.mark.parametrize("script", GUEST_SCRIPTS)
def test_guest_shell_scripts_parse_and_are_shellcheck_clean(script: str) -> None:
    """The initramfs-tools scripts and the report script parse in busybox sh (as the guest runs them)
    and pass shellcheck."""
    done = run([str(BUSYBOX), "sh", "-n", str(DISTRO / script)], check=False)
    assert done.returncode == 0, done.stderr
    lint = run(["shellcheck", "--shell=sh", str(DISTRO / script)], check=False)
    assert lint.returncode == 0, lint.stdout


def test_guest_initramfs_is_update_initramfs_with_the_packaged_hook() -> None:
    """The guest boots the initramfs `update-initramfs` built in its root after `dpkg -i` of bootguard's
    package: the packaged hook put the early-boot step (entry point, interpreter, bootguard's modules)
    in, the packaged local-bottom script runs after the harness's, and MODULES=list took the watchdog
    driver and the root's file system."""
    image = rootfs.root_image().path
    listing = set(run(["lsinitramfs", str(rootfs.guest_initramfs(image))]).stdout.split())
    for path in (
        "usr/lib/bootguard/bootguard-initrd",
        "usr/lib/bootguard/python/bootguard/cli/commands/initrd.py",
        "scripts/local-bottom/bootguard",
        "scripts/local-bottom/bgvm",
        "scripts/init-bottom/bgvm",
        "etc/bootguard/initrd.env",
    ):
        assert path in listing, path
    assert any(p.startswith("usr/bin/python3") for p in listing)
    release = debian_kernel().release
    modules = {Path(p).name.split(".ko")[0] for p in listing if f"modules/{release}/" in p and ".ko" in p}
    assert {"i6300esb", "ext4", "vfat", "virtio_blk", "efivarfs"} <= modules, sorted(modules)
    with tempfile.TemporaryDirectory() as tmp:
        run(["unmkinitramfs", str(rootfs.guest_initramfs(image)), tmp])
        order = (Path(tmp) / "scripts/local-bottom/ORDER").read_text()
    assert order.index("/scripts/local-bottom/bgvm") < order.index("/scripts/local-bottom/bootguard")
