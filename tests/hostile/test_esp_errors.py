"""Category "ESP contents" (issue 15): odd ESP files give a clear error or work; no traceback, no hang."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import pytest

from tests.hostile.conftest import clear_error, trial_host

if TYPE_CHECKING:
    from tests.hosttree import HostTree


@pytest.fixture(autouse=True)
def _no_hang() -> object:
    """A FIFO read would block forever: fail the test after 20 s instead."""

    def alarm(*_: object) -> None:
        raise TimeoutError("bootguard hung on a hostile ESP file")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_loader_conf_directory_is_ignored_with_a_warning(host: HostTree) -> None:
    (host.esp / "loader/loader.conf").mkdir()
    host.add_entry("a+1-1.conf")
    host.booted("a+1-1.conf")
    for args in (("list",), ("status",)):
        code, _, err = host.cli(*args)
        assert code == 0 and "Traceback" not in err, err
        assert "loader/loader.conf is not a regular file" in err
    result = host.initrd()
    assert isinstance(result, dict)
    code, _, err = host.cli("mark", "good")
    assert code == 0, err
    assert host.entries() == ["a.conf"]


def test_fifo_named_conf_is_not_an_entry_and_trial_does_not_hang(host: HostTree) -> None:
    trial_host(host)
    os.mkfifo(host.esp / "loader/entries/fifo.conf")
    code, out, err = host.cli("list")
    assert code == 0 and "fifo" not in out, err
    err = clear_error(host.cli("trial", "fifo.conf"))
    assert "fifo" in err


def test_directory_named_conf_is_not_an_entry(host: HostTree) -> None:
    trial_host(host)
    (host.esp / "loader/entries/dir.conf").mkdir()
    code, _out, err = host.cli("list")
    assert code == 0 and "Traceback" not in err
    clear_error(host.cli("trial", "dir.conf"))


def test_255_byte_name(host: HostTree) -> None:
    trial_host(host)
    name = "n" * 250 + ".conf"  # 255 bytes: NAME_MAX
    host.add_entry(name, "title N\nlinux /vmlinuz\n")
    code, _out, err = host.cli("list")
    assert code == 0 and "Traceback" not in err
    code, _, err = host.cli("trial", name)
    assert code == 0, err
    # arming it would need a longer name (NAME+2.conf): a clear error, the entry untouched
    host.cli("mark", "good")
    err = clear_error(host.cli("arm", name, "--tries", "2"))
    assert "too long" in err
    assert name in host.entries()


def test_50_mb_entry_is_not_read_whole_nor_staged(host: HostTree) -> None:
    trial_host(host)
    with open(host.esp / "loader/entries/huge.conf", "wb") as f:
        f.write(b"title H\nlinux /vmlinuz\n" + b"# padding\n" * (5 << 20))
    code, _out, err = host.cli("list")
    assert code == 0 and "Traceback" not in err
    clear_error(host.cli("trial", "huge.conf"))
    assert not any(n.startswith("bootguard-trial") for n in host.entries())


@pytest.mark.parametrize("text", ["title X\n", "title X\noptions quiet\n", "linux\n"])
def test_entry_systemd_boot_would_not_list_is_not_staged(host: HostTree, text: str) -> None:
    trial_host(host)
    host.add_entry("x.conf", text)
    err = clear_error(host.cli("trial", "x.conf"))
    assert "x.conf" in err
    assert host.get_var("LoaderEntryDefault") == "a.conf"
    assert not any(n.startswith("bootguard-trial") for n in host.entries())


def test_golden_kernel_and_initrd_with_the_same_base_name_both_boot(host: HostTree) -> None:
    (host.esp / "k").mkdir()
    (host.esp / "i").mkdir()
    (host.esp / "k/image").write_bytes(b"kernel")
    (host.esp / "i/image").write_bytes(b"initrd")
    host.add_entry("a.conf", "title A\nversion 1\nlinux /k/image\ninitrd /i/image\n")
    host.booted("a.conf")
    host.set_var("LoaderEntryDefault", "a.conf")
    code, _, err = host.cli("pin-golden", "a.conf")
    assert code == 0, err
    text = (host.esp / "loader/entries/bootguard-golden.conf").read_text()
    paths = {
        line.split()[0]: line.split()[1] for line in text.splitlines() if line.startswith(("linux", "initrd"))
    }
    assert paths["linux"] != paths["initrd"]
    assert (host.esp / paths["linux"].lstrip("/")).read_bytes() == b"kernel"
    assert (host.esp / paths["initrd"].lstrip("/")).read_bytes() == b"initrd"


def test_pinning_golden_on_a_sort_key_host_without_default_keeps_the_next_boot(host: HostTree) -> None:
    """Debian's layout: every entry has `sort-key debian`, no default anywhere."""
    host.add_entry("debian-6.1.0-17.conf", version="6.1.0-17", sort_key="debian")
    host.add_entry("debian-6.1.0-18.conf", version="6.1.0-18", sort_key="debian")
    host.booted("debian-6.1.0-17.conf")
    before = next_boot(host)
    assert before.startswith("debian-6.1.0-18")
    code, _, err = host.cli("pin-golden", "debian-6.1.0-17.conf")
    assert "Traceback" not in err
    assert code == 0, err
    assert next_boot(host) == before


def next_boot(host: HostTree) -> str:
    _, out, _ = host.cli("list")
    return next(line[3:].split()[0] for line in out.splitlines() if line.startswith("→"))


def test_umask_000_gives_no_world_writable_files(host: HostTree) -> None:
    old = os.umask(0)
    try:
        trial_host(host)
        code, _, err = host.cli("trial", "b.conf")
        assert code == 0, err
    finally:
        os.umask(old)
    for p in [*host.esp.rglob("*"), *host.state.rglob("*")]:
        written = "bootguard" in str(p.relative_to(host.root)) or host.state in p.parents
        if not written:
            continue  # the test's own files, written under umask 000
        assert not p.stat().st_mode & 0o002, (p, oct(p.stat().st_mode))


def test_unreadable_entry_is_listed_with_a_problem_and_not_staged(
    host: HostTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root reads every file, so EACCES is injected at the seam's one read function."""
    from bootguard.seams import esp

    real = esp._read_limited

    def read(path: str) -> tuple[bytes, bool]:
        if path.endswith("locked.conf"):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(esp, "_read_limited", read)
    trial_host(host)
    host.add_entry("locked.conf", version="3")
    code, out, err = host.cli("list")
    assert code == 0 and "Traceback" not in err, err
    assert "cannot read it: Permission denied" in out
    err = clear_error(host.cli("trial", "locked.conf"))
    assert "locked.conf" in err
    assert host.cli("status")[0] == 0
