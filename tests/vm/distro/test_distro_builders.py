"""The distribution guest's builders on real tools (mkfs.ext4, debugfs, e2fsck, busybox), without a VM."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
from pathlib import Path

import pytest

from bootguard.errors import CommandError
from bootguard.seams.proc import run
from tests.vm.distro import initramfs, rootfs
from tests.vm.distro.scenario import DistroScenario, Generation, generation_entry
from tests.vm.harness.initramfs import BUSYBOX, module_paths
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


@pytest.mark.parametrize("script", ["distro_init.sh", "guest/usr/lib/bgvm/report.sh"])
def test_guest_shell_scripts_parse_and_are_shellcheck_clean(script: str) -> None:
    """The init and the report script parse in busybox sh (as the guest runs them) and pass shellcheck."""
    done = run([str(BUSYBOX), "sh", "-n", str(DISTRO / script)], check=False)
    assert done.returncode == 0, done.stderr
    lint = run(["shellcheck", "--shell=sh", str(DISTRO / script)], check=False)
    assert lint.returncode == 0, lint.stdout


def test_initramfs_has_the_distro_init_and_the_watchdog_driver() -> None:
    """The archive's /init is distro_init.sh; i6300esb is loaded late (with the heartbeat), ext4 early."""
    kernel = debian_kernel()
    archive = gzip.decompress(initramfs.distro_initramfs(kernel).read_bytes())
    assert initramfs.DISTRO_INIT.read_bytes() in archive
    early = module_paths(kernel, initramfs.EARLY_MODULES)
    assert any(p.name.startswith("ext4.ko") for p in early)
    assert b"i6300esb.ko\n" in archive
    assert b"9p" not in b"".join(p.name.encode() for p in early)
