"""The Debian package (`make deb`, debian/): its contents, metadata, maintainer scripts and lintian.

The package is built once per source state (cached by `tests/vm/distro/package.py`, shared with the
distribution guest, which installs the same file). The life-cycle test installs, removes, reinstalls
and purges it with the real dpkg in a chroot of the distribution guest's Debian tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootguard.seams.proc import run
from tests.vm.distro import package, rootfs
from tests.vm.harness.cache import CHECKOUT

pytestmark = pytest.mark.integration

ENABLED = ("bootguard-validate.service", "bootguard-boot-deadline.timer", "bootguard-shutdown.service")
DEBIAN_DEPENDS = ("python3-attr", "python3-pyudev", "python3-cffi-backend", "python3-sdnotify", "python3")
CONFFILES = ("/etc/bootguard/checks.toml", "/etc/bootguard/gitops.env", "/etc/bootguard/initrd.env")


def _needs_root_tools() -> None:
    if shutil.which("dpkg-buildpackage") is None or shutil.which("lintian") is None:
        pytest.fail("Debian packaging tools missing: run scripts/bootstrap.sh (or `make deb`)")


@pytest.fixture(scope="module")
def deb() -> Path:
    _needs_root_tools()
    path, _seconds, _cached = package.bootguard_deb()
    return path


@pytest.fixture(scope="module")
def control(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("control")
    run(["dpkg-deb", "-e", str(deb), str(out)])
    return out


def _field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


def _contents(deb: Path) -> set[str]:
    lines = run(["dpkg-deb", "-c", str(deb)]).stdout.splitlines()
    return {line.split(None, 5)[5].removeprefix(".").split(" -> ")[0] for line in lines}


def test_name_version_and_architecture_follow_the_build_host(deb: Path) -> None:
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    version = _field(deb, "Version")
    assert deb.name == f"bootguard_{version}_{arch}.deb"
    assert _field(deb, "Architecture") == arch
    changelog = str(CHECKOUT / "debian/changelog")
    assert version == run(["dpkg-parsechangelog", "-l", changelog, "-SVersion"]).stdout.strip()


def test_depends_on_debians_python_packages(deb: Path) -> None:
    depends = [d.strip().split(" ")[0] for d in _field(deb, "Depends").split(",")]
    for name in DEBIAN_DEPENDS:
        assert name in depends, (name, depends)
    # The cffi compiler and PyPI names are not runtime dependencies.
    assert "python3-cffi" not in depends
    assert not any(d.startswith("python3-attrs") for d in depends)


def test_ships_command_package_extension_units_initrd_parts_and_man_page(deb: Path) -> None:
    files = _contents(deb)
    expected = {
        "/usr/bin/bootguard",
        "/usr/lib/python3/dist-packages/bootguard/cli/main.py",
        "/usr/lib/bootguard/bootguard-initrd",
        "/usr/lib/bootguard/bootguard-initrd.service",
        "/usr/lib/bootguard/bootguard-initrd-failure.service",
        "/usr/share/initramfs-tools/hooks/bootguard",
        "/usr/share/initramfs-tools/scripts/local-bottom/bootguard",
        "/usr/lib/dracut/modules.d/90bootguard/module-setup.sh",
        "/usr/share/man/man8/bootguard.8.gz",
        "/usr/share/doc/bootguard/copyright",
        "/usr/share/bootguard/monitoring/prometheus/bootguard.rules.yml",  # docs/monitoring.md
        "/usr/share/bootguard/monitoring/grafana/bootguard-fleet.json",
        *CONFFILES,
    }
    assert expected <= files, sorted(expected - files)
    # Every unit of systemd/ is shipped, whatever units other changes add there.
    units = {f"/lib/systemd/system/{p.name}" for p in (CHECKOUT / "systemd").glob("*.service")}
    units |= {f"/lib/systemd/system/{p.name}" for p in (CHECKOUT / "systemd").glob("*.timer")}
    assert units and units <= files, sorted(units - files)
    others = {f"/usr/share/bootguard/systemd/{p.name}" for p in (CHECKOUT / "systemd").iterdir()
              if p.is_file() and p.suffix not in (".service", ".timer")}
    assert others <= files, sorted(others - files)  # e.g. the GitOps role settings (gitops-*.env)
    modules = {p.relative_to(CHECKOUT).as_posix() for p in (CHECKOUT / "bootguard").rglob("*.py")}
    shipped = {f.removeprefix("/usr/lib/python3/dist-packages/") for f in files}
    assert modules <= shipped, sorted(modules - shipped)
    assert any(f.startswith("/usr/lib/python3/dist-packages/bootguard/_native_wd") and f.endswith(".so")
               for f in files)
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_extension_and_cli_run_with_debians_python(deb: Path, tmp_path: Path) -> None:
    """The packaged tree works with /usr/bin/python3 (not a pyenv one): native watchdog backend, --help."""
    run(["dpkg-deb", "-x", str(deb), str(tmp_path)])
    site = tmp_path / "usr/lib/python3/dist-packages"
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); import bootguard._native_wd as n, bootguard;"
        " print(n.__file__); print(bootguard.__file__)"
    )
    done = run(["/usr/bin/python3", "-I", "-c", code])
    assert done.stdout.splitlines() == [
        next(str(p) for p in (site / "bootguard").glob("_native_wd*.so")),
        str(site / "bootguard/__init__.py"),
    ]
    script = (tmp_path / "usr/bin/bootguard").read_text()
    assert script.startswith("#!/usr/bin/python3 -I\n")
    helped = run(["/usr/bin/python3", "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r});"
                  " sys.argv = ['bootguard', '--help']; from bootguard.cli.main import entry; entry()"])
    assert "pin-golden" in helped.stdout


def test_conffiles_are_the_example_configuration(control: Path) -> None:
    assert sorted((control / "conffiles").read_text().split()) == sorted(CONFFILES)


def test_maintainer_scripts_enable_only_the_validator_and_deadline_and_start_nothing(control: Path) -> None:
    postinst = (control / "postinst").read_text()
    # dh_installsystemd writes one section per call: units of the --no-enable call are re-enabled only
    # when the administrator had enabled them (`debian-installed` + `was-enabled`).
    enabled: set[str] = set()
    only_if_enabled_before: set[str] = set()
    for section in postinst.split("# Automatically added by dh_installsystemd")[1:]:
        units = {line.split("'")[1] for line in section.splitlines() if "deb-systemd-helper enable '" in line}
        (only_if_enabled_before if "debian-installed" in section else enabled).update(units)
    assert enabled == set(ENABLED)
    unit_names = {p.name for p in (CHECKOUT / "systemd").iterdir() if p.suffix in (".service", ".timer")}
    with_install = {n for n in unit_names if "[Install]" in (CHECKOUT / "systemd" / n).read_text()}
    assert only_if_enabled_before == with_install - set(ENABLED)
    assert "deb-systemd-invoke" not in postinst  # nothing starts on install: the next boot runs them
    assert "deb-systemd-helper mask systemd-bless-boot.service" in postinst
    assert "bootguard-upgrade.timer" in postinst  # known to the state file, disabled
    assert "rm -rf /var/lib/bootguard" in (control / "postrm").read_text()
    assert "activate-noawait update-initramfs" in (control / "triggers").read_text()


MAINTAINER_SCRIPTS = ("debian/bootguard.postinst", "debian/bootguard.prerm", "debian/bootguard.postrm")


@pytest.mark.parametrize("script", [*MAINTAINER_SCRIPTS, "scripts/build-deb.sh"])
def test_packaging_shell_scripts_are_shellcheck_clean(script: str) -> None:
    lint = run(["shellcheck", "--shell=sh", str(CHECKOUT / script)], check=False)
    assert lint.returncode == 0, lint.stdout


def test_lintian_reports_no_error_and_no_warning(deb: Path) -> None:
    done = run(["lintian", "--fail-on", "error,warning", "--pedantic", str(deb)], check=False)
    tags = [line for line in done.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert done.returncode == 0 and not tags, done.stdout + done.stderr


# --- the life cycle with the real dpkg ------------------------------------------------------------


@pytest.fixture
def debian_root(tmp_path: Path) -> Iterator[Path]:
    """The distribution guest's Debian tree (bookworm minbase + python3 packages), unpacked."""
    if os.geteuid() != 0:
        pytest.fail("the dpkg life-cycle test chroots: run it as root (like the VM tests)")
    base = rootfs.base_tarball()
    root = tmp_path / "root"
    root.mkdir()
    run(["tar", "-xpf", str(base.path), "-C", str(root), "--numeric-owner"], timeout=300)
    yield root
    run(["rm", "-rf", str(root)])


def _dpkg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["chroot", str(root), "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "dpkg", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)


def _links(root: Path) -> dict[str, str]:
    etc = root / "etc/systemd/system"
    return {
        str(p.relative_to(etc)): os.readlink(p)
        for p in etc.rglob("*")
        if p.is_symlink() and ("bootguard" in p.name or p.name == "systemd-bless-boot.service")
    }


def test_install_remove_reinstall_purge(deb: Path, debian_root: Path) -> None:
    root = debian_root
    shutil.copy2(deb, root / "tmp/bootguard.deb")
    _dpkg(root, "-i", "/tmp/bootguard.deb")
    installed = _links(root)
    lib = "/lib/systemd/system"
    assert installed == {
        "boot-complete.target.requires/bootguard-validate.service": f"{lib}/bootguard-validate.service",
        "multi-user.target.wants/bootguard-validate.service": f"{lib}/bootguard-validate.service",
        "sysinit.target.wants/bootguard-boot-deadline.timer": f"{lib}/bootguard-boot-deadline.timer",
        "multi-user.target.wants/bootguard-shutdown.service": f"{lib}/bootguard-shutdown.service",
        "systemd-bless-boot.service": "/dev/null",
    }
    # The installed command runs with the tree's python3 (Debian's 3.11, its attrs/pyudev/sdnotify).
    done = subprocess.run(
        ["chroot", str(root), "/usr/bin/bootguard", "--state-dir", "/var/lib/bootguard", "events"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    imported = subprocess.run(
        ["chroot", str(root), "/usr/bin/python3", "-c",
         "import attr, pyudev, sdnotify, bootguard._native_wd, bootguard.validator.service"],
        capture_output=True, text=True, check=False,
    )
    assert imported.returncode == 0, imported.stderr
    state = root / "var/lib/bootguard"
    state.mkdir(exist_ok=True)
    (state / "events.jsonl").write_text('{"kind": "kept"}\n')
    (root / "etc/bootguard/checks.toml").write_text("# edited\n")

    _dpkg(root, "-r", "bootguard")
    assert _links(root) == {}  # no dangling boot-complete.target.requires link, bless-boot unmasked
    assert (state / "events.jsonl").read_text() == '{"kind": "kept"}\n'
    assert (root / "etc/bootguard/checks.toml").read_text() == "# edited\n"
    assert not (root / "usr/bin/bootguard").exists()

    _dpkg(root, "-i", "/tmp/bootguard.deb")
    assert _links(root) == installed
    assert (root / "etc/bootguard/checks.toml").read_text() == "# edited\n"  # a conffile: kept

    _dpkg(root, "-P", "bootguard")
    assert _links(root) == {}
    assert not state.exists()
    assert not (root / "etc/bootguard").exists()
    assert not list((root / "var/lib/systemd/deb-systemd-helper-enabled").rglob("bootguard*"))
