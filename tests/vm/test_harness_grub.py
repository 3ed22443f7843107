"""The harness's GRUB mode without booting: serial markers, grub.cfg, grubenv and the GRUB ESP."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.vm.harness import disk, serial
from tests.vm.harness.grub import GRUB, GRUB_CFG, GRUBENV, GrubMenu
from tests.vm.harness.packages import Kernel, LoaderBinary
from tests.vm.harness.scenario import Scenario, _esp_layout, grub_entry

GRUB_LOG = """\
Welcome to GRUB!
BGVM-BOOT n=1 selected=- countpath=- entry=gen-2 info=- uptime=4.0
BGVM-GRUBENV n=1 bytes=1024 env=saved_entry=gen-2;
BGVM-ACTION n=1 name=boot-1
BGVM-EDITENV rc=0 args=set next_entry=gen-3
BGVM-REBOOT n=1
BGVM-BOOT n=2 selected=- countpath=- entry=gen-3 info=- uptime=4.1
BGVM-GRUBENV n=2 bytes=1024 env=saved_entry=gen-2;next_entry=;
BGVM-ACTION n=2 name=reboot
BGVM-BOOT n=3 selected=a.conf countpath=- entry=- info=systemd-boot_257 uptime=4.1
BGVM-BOOT n=4 selected=a.conf countpath=- info=systemd-boot_257 uptime=4.1
"""

MENU = GrubMenu(
    entries=(grub_entry("gen-1", "ok"), grub_entry("gen-2", "panic", title="Debian gen 2")),
    env={"saved_entry": "gen-2"},
)


def _needs(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} is missing: apt-get install grub-efi-amd64-bin grub2-common")
    return exe


def test_boot_line_entry_and_grubenv_are_parsed() -> None:
    """`entry=` of BGVM-BOOT and BGVM-GRUBENV's variables land on the boot; `-` or no field mean none."""
    boots = serial.parse_boots(GRUB_LOG)
    assert [b.cmdline_entry for b in boots] == ["gen-2", "gen-3", None, None]
    assert boots[0].grubenv == {"saved_entry": "gen-2"} and boots[0].grubenv_bytes == 1024
    assert boots[1].grubenv == {"saved_entry": "gen-2", "next_entry": ""}
    assert (boots[2].grubenv, boots[2].grubenv_bytes) == ({}, None)
    assert boots[1].action == "reboot" and boots[3].selected == "a.conf"


def test_every_menu_entry_carries_its_id_and_action_on_the_kernel_line() -> None:
    """Each `linux` line ends with bootguard.test=ACTION … bootguard.entry=ID of its own menuentry."""
    cfg = MENU.render_cfg()
    entries = re.findall(r"menuentry '([^']*)' .*?\$menuentry_id_option '([^']*)' \{(.*?)\n\}", cfg, re.S)
    assert [(title, eid) for title, eid, _ in entries] == [("gen-1", "gen-1"), ("Debian gen 2", "gen-2")]
    linux = [re.search(r"\tlinux\t(\S+) (.*)", body) for _, _, body in entries]
    assert [m.group(1) if m else None for m in linux] == ["/vmlinuz", "/vmlinuz"]
    cmdlines = [m.group(2).split() if m else [] for m in linux]
    assert cmdlines[0][-2:] == ["bootguard.test=ok", "bootguard.entry=gen-1"]
    assert cmdlines[1][-2:] == ["bootguard.test=panic", "bootguard.entry=gen-2"]
    assert "console=ttyS0,115200" in cmdlines[0]


def test_grub_cfg_has_grub_mkconfig_saved_default_header() -> None:
    """grub.cfg loads the env, boots next_entry once (clearing it with save_env), else saved_entry."""
    cfg = MENU.render_cfg()
    header = cfg.split("### END /etc/grub.d/00_header ###")[0]
    for line in (
        "  load_env",
        'if [ "${next_entry}" ] ; then',
        '   set default="${next_entry}"',
        "   set next_entry=",
        "   save_env next_entry",
        '   set default="${saved_entry}"',
        "set timeout=0",
    ):
        assert line in header.splitlines(), line


@pytest.mark.integration
def test_grub_cfg_passes_grub_script_check(tmp_path: Path) -> None:
    """GRUB's own parser accepts the generated grub.cfg."""
    exe = _needs("grub-script-check")
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(MENU.render_cfg())
    done = subprocess.run([exe, str(cfg)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_grubenv_is_a_1024_byte_block_with_the_initial_variables(tmp_path: Path) -> None:
    """The initial grubenv is grub-editenv's block (1024 bytes) and grub-editenv lists its variables."""
    exe = _needs("grub-editenv")
    block = MENU.grubenv()
    assert len(block) == 1024 and block.startswith(b"# GRUB Environment Block\n")
    path = tmp_path / "grubenv"
    path.write_bytes(block)
    listed = subprocess.run([exe, str(path), "list"], capture_output=True, text=True, check=True).stdout
    assert serial.parse_grubenv(listed) == {"saved_entry": "gen-2"} == serial.parse_grubenv(block.decode())


@pytest.mark.integration
def test_grub_boot_disk_has_grub_files_and_no_loader_directory(tmp_path: Path) -> None:
    """A GRUB ESP holds grub/grub.cfg and grub/grubenv as generated, and no systemd-boot loader/."""
    _needs("grub-editenv")
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * 1000)
    layout = disk.EspLayout(
        loader_efi=blob,
        kernel=blob,
        initrd=blob,
        loader_conf=None,
        entries=(),
        extra_files=MENU.esp_files(),
    )
    image = tmp_path / "disk.img"
    disk.build_boot_disk(image, layout)
    assert disk.esp_listing(image, "/grub") == ["grub.cfg", "grubenv"]
    assert disk.esp_read(image, GRUB_CFG) == MENU.render_cfg()
    assert serial.parse_grubenv(disk.esp_read(image, GRUBENV)) == {"saved_entry": "gen-2"}
    assert "loader" not in disk.esp_listing(image, "/")


def test_grub_scenarios_and_systemd_boot_loaders_do_not_mix(tmp_path: Path) -> None:
    """A GRUB scenario on a systemd-boot binary (or the reverse) is refused before anything is built."""
    kernel = Kernel(release="6.1", vmlinuz=tmp_path / "vmlinuz", modules=tmp_path)
    sdboot = LoaderBinary(
        major="257", version="257.1", efi=tmp_path / "sd.efi", loader_info="systemd-boot 257"
    )
    grub = LoaderBinary(major=GRUB, version="2.06", efi=tmp_path / "g.efi", loader_info="GRUB 2.06")
    with pytest.raises(ValueError, match="grub-x"):
        _esp_layout(Scenario(name="grub-x", grub=MENU), sdboot, kernel)
    with pytest.raises(ValueError, match="sd-x"):
        _esp_layout(Scenario(name="sd-x", loader_conf="timeout 0\n"), grub, kernel)
