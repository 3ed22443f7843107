"""Category "ESP paths" (issue 15.1): nothing bootguard reads, writes or renames resolves outside the ESP."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootguard.errors import ParseError
from tests.hostile.conftest import clear_error, trial_host

if TYPE_CHECKING:
    from pathlib import Path

    from tests.hosttree import HostTree


def _outside(host: HostTree) -> Path:
    outside = host.root / "outside"
    outside.mkdir(exist_ok=True)
    return outside


@pytest.mark.parametrize("verb", ["good", "bad"])
@pytest.mark.parametrize(
    "count_path",
    [
        "\\..\\outside\\passwd+1",
        "\\loader\\entries\\..\\..\\outside\\passwd+1",
        "\\loader\\.\\entries\\..\\..\\..\\outside\\passwd+1",
        "loader\\entries\\..\\..\\outside\\passwd+1",
    ],
)
def test_count_path_with_dotdot_renames_nothing_outside(host: HostTree, verb: str, count_path: str) -> None:
    outside = _outside(host)
    (outside / "passwd+1").write_text("root:x:0:0\n")
    host.add_entry("a+1.conf")
    host.set_var("LoaderInfo", "systemd-boot 252.39-1~deb12u2")
    host.set_var("LoaderBootCountPath", count_path)
    err = clear_error(host.cli("mark", verb))
    assert "not a normalized absolute path" in err
    assert sorted(os.listdir(outside)) == ["passwd+1"]
    assert host.entries() == ["a+1.conf"]


@given(
    st.lists(
        st.sampled_from(["..", ".", "loader", "entries", "", "x+1.conf", "outside"]), min_size=1, max_size=8
    ),
    st.sampled_from(["\\", "/"]),
)
def test_count_path_rule_matches_bless_boot(parts: list[str], sep: str) -> None:
    from bootguard.model.counter import normalized_boot_count_path

    path = sep + sep.join(parts)
    tilted = path.replace("\\", "/")
    names = tilted.split("/")[1:]
    normal = "//" not in tilted and not any(n in (".", "..") for n in names)
    if normal:
        assert normalized_boot_count_path(path) == tilted
    else:
        with pytest.raises(ParseError):
            normalized_boot_count_path(path)


def test_entries_dir_symlinked_out_of_the_esp_is_refused(host: HostTree) -> None:
    outside = _outside(host)
    (outside / "a+1.conf").write_text("title A\nlinux /vmlinuz\n")
    entries = host.esp / "loader" / "entries"
    os.rmdir(entries)
    os.symlink(outside, entries)
    host.set_var("LoaderInfo", "systemd-boot 252.39-1~deb12u2")
    host.set_var("LoaderBootCountPath", "\\loader\\entries\\a+1.conf")
    for args in (("mark", "good"), ("mark", "bad"), ("pin-golden", "a+1.conf"), ("list",)):
        err = clear_error(host.cli(*args))
        assert "outside" in err
    assert sorted(os.listdir(outside)) == ["a+1.conf"]


def test_entry_symlinked_out_of_the_esp_is_not_renamed(host: HostTree) -> None:
    outside = _outside(host)
    (outside / "target").write_text("title A\nlinux /vmlinuz\n")
    os.symlink(outside / "target", host.esp / "loader/entries/a+1.conf")
    host.set_var("LoaderInfo", "systemd-boot 252.39-1~deb12u2")
    host.set_var("LoaderBootCountPath", "\\loader\\entries\\a+1.conf")
    code, _, err = host.cli("mark", "good")
    assert "Traceback" not in err
    assert sorted(os.listdir(outside)) == ["target"]
    assert (outside / "target").read_text().startswith("title A")
    assert code != 0 or not (host.esp / "loader/entries/a.conf").exists()


@pytest.mark.parametrize(
    "image", ["/../outside/file", "/loader/../../outside/file", "/../../../../etc/hostname"]
)
def test_golden_image_outside_the_esp_is_not_copied(host: HostTree, image: str) -> None:
    outside = _outside(host)
    (outside / "file").write_bytes(b"secret")
    host.add_entry("a.conf", f"title A\nlinux {image}\ninitrd /initrd.img\n")
    host.booted("a.conf")
    host.set_var("LoaderEntryDefault", "a.conf")
    err = clear_error(host.cli("pin-golden", "a.conf"))
    assert "'..'" in err
    assert not (host.esp / "EFI/bootguard").exists() or not os.listdir(host.esp / "EFI/bootguard/golden")
    assert not (host.esp / "loader/entries/bootguard-golden.conf").exists()


def test_golden_image_symlinked_out_of_the_esp_is_not_copied(host: HostTree) -> None:
    outside = _outside(host)
    (outside / "file").write_bytes(b"secret")
    os.symlink(outside / "file", host.esp / "kernel")
    host.add_entry("a.conf", "title A\nlinux /kernel\n")
    host.booted("a.conf")
    host.set_var("LoaderEntryDefault", "a.conf")
    clear_error(host.cli("pin-golden", "a.conf"))
    assert not (host.esp / "loader/entries/bootguard-golden.conf").exists()


def test_golden_dir_symlinked_out_of_the_esp_is_refused(host: HostTree) -> None:
    outside = _outside(host)
    (host.esp / "EFI").mkdir()
    os.symlink(outside, host.esp / "EFI/bootguard")
    host.add_entry("a.conf", version="1")
    host.booted("a.conf")
    host.set_var("LoaderEntryDefault", "a.conf")
    clear_error(host.cli("pin-golden", "a.conf"))
    assert os.listdir(outside) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1, max_size=40))
def test_trial_copy_paths_stay_inside(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    """Any entry file name: list/pin/trial either work or refuse clearly; nothing lands outside."""
    from tests.hosttree import HostTree

    host = trial_host(HostTree(tmp_path_factory.mktemp("h")))
    fname = name + ".conf"
    try:
        host.add_entry(fname, "title X\nlinux /vmlinuz\n")
    except OSError:
        return  # the file system refuses the name itself
    for args in (("list",), ("trial", "--", fname)):
        code, _, err = host.cli(*args)
        assert "Traceback" not in err
        assert code == 0 or "bootguard: error:" in err
    assert sorted(os.listdir(host.root)) == ["efivars", "esp", "state"]


_KEYS = st.sampled_from(
    ["title", "linux", "initrd", "efi", "options", "sort-key", "version", "devicetree", "#"]
)
_VALUES = st.one_of(
    st.sampled_from(
        ["/vmlinuz", "/initrd.img", "/../outside/file", "/loader/../../outside/file", "", "/", "/EFI"]
    ),
    st.text(st.characters(codec="utf-8", exclude_characters="\n\0"), max_size=30),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.tuples(_KEYS, _VALUES), max_size=8), raw=st.binary(max_size=40))
def test_any_entry_contents_pin_and_trial_stay_inside(
    tmp_path_factory: pytest.TempPathFactory, lines: list[tuple[str, str]], raw: bytes
) -> None:
    """Random entry text (and raw bytes): pin-golden and trial work or refuse clearly; nothing escapes."""
    from tests.hosttree import HostTree

    host = HostTree(tmp_path_factory.mktemp("h"))
    outside = _outside(host)
    (outside / "file").write_bytes(b"secret")
    text = "\n".join(f"{k} {v}" for k, v in lines).encode() + b"\n" + raw
    (host.esp / "loader/entries/g.conf").write_bytes(text)
    host.add_entry("b.conf", version="2")
    host.booted("g.conf")
    host.set_var("LoaderEntryDefault", "g.conf")
    for args in (("list",), ("pin-golden", "g.conf"), ("trial", "b.conf"), ("status",)):
        code, _, err = host.cli(*args)
        assert "Traceback" not in err
        assert code == 0 or "bootguard: error:" in err, (args, err)
    assert sorted(os.listdir(outside)) == ["file"]
    assert set(os.listdir(host.root)) <= {"efivars", "esp", "outside", "state"}
    golden = host.esp / "EFI/bootguard/golden"
    for p in golden.iterdir() if golden.exists() else ():
        assert p.read_bytes() != b"secret"
