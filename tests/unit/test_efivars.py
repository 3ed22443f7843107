"""efivarfs on real files: golden bytes, round trips, malformed variables, immutable flags, errno mapping."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.errors import EnvironmentProblem, NoEfiError, ParseError, ReadOnlyError
from bootguard.model.loader import LoaderVars
from bootguard.seams import efivars as ev
from bootguard.seams.efivars import LOADER_GUID, EfiVars
from bootguard.seams.proc import run

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def efi(tmp_path: Path) -> EfiVars:
    d = tmp_path / "efivars"
    d.mkdir()
    return EfiVars(d)


def put(efi: EfiVars, name: str, raw: bytes) -> Path:
    """Write a variable file by hand, exactly as efivarfs shows it."""
    path = efi.directory / f"{name}-{LOADER_GUID}"
    path.write_bytes(raw)
    return path


def utf16z(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def flags_of(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        value: int = struct.unpack("<i", fcntl.ioctl(fd, ev.FS_IOC_GETFLAGS, b"\0" * 4))[0]
        return value
    finally:
        os.close(fd)


def make_immutable(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, ev.FS_IOC_SETFLAGS, struct.pack("<i", flags_of(path) | ev.FS_IMMUTABLE_FL))
    finally:
        os.close(fd)


# -- format ----------------------------------------------------------------------------------


def test_write_str_golden_bytes(efi: EfiVars) -> None:
    """A string variable is the attribute word 0x7 LE, then UTF-16LE text, then a UTF-16 NUL."""
    efi.write_str("LoaderEntryDefault", "a.conf")
    raw = (efi.directory / f"LoaderEntryDefault-{LOADER_GUID}").read_bytes()
    assert raw == b"\x07\x00\x00\x00a\x00.\x00c\x00o\x00n\x00f\x00\x00\x00"


def test_write_volatile_attributes_and_non_ascii(efi: EfiVars) -> None:
    """Attributes are stored as given; non-ASCII text is real UTF-16 (a surrogate pair here)."""
    efi.write_str("LoaderEntryOneShot", "é🙂", attrs=ev.ATTRS_VOLATILE)
    raw = (efi.directory / f"LoaderEntryOneShot-{LOADER_GUID}").read_bytes()
    assert raw == b"\x06\x00\x00\x00\xe9\x00\x3d\xd8\x42\xde\x00\x00"
    assert efi.read_raw("LoaderEntryOneShot") == (6, raw[4:])
    assert efi.read_str("LoaderEntryOneShot") == "é🙂"


def test_reads_what_systemd_boot_writes(efi: EfiVars) -> None:
    """Hand-made variables in systemd-boot's layout read back as strings, a list and a u64."""
    put(efi, "LoaderBootCountPath", b"\x06\0\0\0" + utf16z("\\loader\\entries\\a+2-1.conf"))
    put(efi, "LoaderEntries", b"\x06\0\0\0" + utf16z("b.conf") + utf16z("a+2-1.conf"))
    put(efi, "LoaderFeatures", b"\x06\0\0\0" + struct.pack("<Q", 0x1F7F))
    assert efi.read_str("LoaderBootCountPath") == "\\loader\\entries\\a+2-1.conf"
    assert efi.read_str_list("LoaderEntries") == ("b.conf", "a+2-1.conf")
    assert efi.read_u64("LoaderFeatures") == 0x1F7F


def test_unset_variables_read_as_none(efi: EfiVars) -> None:
    """A variable that is not set is None, not an error."""
    assert efi.read_raw("LoaderEntryOneShot") is None
    assert efi.read_str("LoaderEntryOneShot") is None
    assert efi.read_str_list("LoaderEntries") is None
    assert efi.read_u64("LoaderFeatures") is None


def test_empty_string_and_empty_list(efi: EfiVars) -> None:
    """A lone NUL is the empty string; an empty LoaderEntries is an empty list."""
    put(efi, "LoaderEntryDefault", b"\x07\0\0\0\0\0")
    put(efi, "LoaderEntries", b"\x06\0\0\0")
    assert efi.read_str("LoaderEntryDefault") == ""
    assert efi.read_str_list("LoaderEntries") == ()


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("LoaderEntryDefault", b"", "too short for the 4-byte attribute word"),
        ("LoaderEntryDefault", b"\x07\0\0", "too short for the 4-byte attribute word"),
        ("LoaderEntryDefault", b"\x07\0\0\0a\0b", "odd length 3"),
        ("LoaderEntryDefault", b"\x07\0\0\0a\0b\0", "not NUL-terminated"),
        ("LoaderEntryDefault", b"\x07\0\0\0", "no data"),
        ("LoaderEntryDefault", b"\x07\0\0\0a\0\0\0b\0\0\0", "expected one NUL-terminated string, found 2"),
        ("LoaderEntryDefault", b"\x07\0\0\0\x00\xd8\0\0", "invalid UTF-16LE"),
        ("LoaderEntries", b"\x06\0\0\0a\0\0\0\0\0", "empty string in a list"),
        ("LoaderEntries", b"\x06\0\0\0a\0", "not NUL-terminated"),
        ("LoaderFeatures", b"\x06\0\0\0\x01\0\0\0", "expected 8 bytes"),
    ],
    ids=[
        "empty-file", "short-attrs", "odd", "no-nul", "no-data", "two-strings", "lone-surrogate",
        "empty-list-item", "list-no-nul", "u64-short",
    ],
)  # fmt: skip
def test_malformed_variables_are_parse_errors(efi: EfiVars, name: str, raw: bytes, message: str) -> None:
    """Malformed data raises ParseError naming the variable and what is wrong."""
    put(efi, name, raw)
    read = {"LoaderEntries": efi.read_str_list, "LoaderFeatures": efi.read_u64}.get(name, efi.read_str)
    with pytest.raises(ParseError, match=f"^EFI variable {name}: .*{message}"):
        read(name)


def test_oversized_variable_is_refused(efi: EfiVars) -> None:
    """A file far larger than any firmware variable is not read into memory wholesale."""
    put(efi, "LoaderInfo", b"\x06\0\0\0" + b"a\0" * (ev.MAX_VARIABLE_BYTES // 2 + 8))
    with pytest.raises(ParseError, match="larger than"):
        efi.read_str("LoaderInfo")


@given(st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=40))
def test_string_codec_round_trips(text: str) -> None:
    """Any text without NUL encodes and decodes unchanged."""
    assert ev.decode_str(ev.encode_str(text), "X") == text


@given(st.lists(st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), min_size=1)))
def test_list_codec_round_trips(items: list[str]) -> None:
    """A run of NUL-terminated strings decodes to the same list."""
    assert ev.decode_str_list(b"".join(ev.encode_str(i) for i in items), "X") == tuple(items)


def test_nul_in_value_is_refused(efi: EfiVars) -> None:
    """A value with NUL would be cut by the firmware: refused before writing."""
    with pytest.raises(ParseError, match="NUL"):
        efi.write_str("LoaderEntryDefault", "a\0b")
    assert efi.read_raw("LoaderEntryDefault") is None


# -- writing ---------------------------------------------------------------------------------


def test_rewrite_with_a_shorter_value_leaves_no_tail(efi: EfiVars) -> None:
    """Rewriting replaces the whole value (efivarfs semantics) in a plain directory too."""
    efi.write_str("LoaderEntryDefault", "a-very-long-entry-name.conf")
    efi.write_str("LoaderEntryDefault", "b.conf")
    assert efi.read_str("LoaderEntryDefault") == "b.conf"


def test_write_is_one_write_call(efi: EfiVars, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attribute word and the data go to the kernel in a single write(2)."""
    calls: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        calls.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    efi.write_str("LoaderEntryOneShot", "x.conf")
    assert calls == [b"\x07\0\0\0" + utf16z("x.conf")]


def test_delete(efi: EfiVars) -> None:
    """delete removes a set variable and reports whether there was one."""
    efi.write_str("LoaderEntryOneShot", "x.conf")
    assert efi.delete("LoaderEntryOneShot") is True
    assert efi.read_raw("LoaderEntryOneShot") is None
    assert efi.delete("LoaderEntryOneShot") is False


def test_immutable_variable_is_rewritten_and_stays_immutable(efi: EfiVars) -> None:
    """An immutable variable (as efivarfs creates them) is unprotected for the write, re-protected after."""
    path = put(efi, "LoaderEntryDefault", b"\x07\0\0\0" + utf16z("old.conf"))
    make_immutable(path)
    efi.write_str("LoaderEntryDefault", "new.conf")
    assert efi.read_str("LoaderEntryDefault") == "new.conf"
    assert flags_of(path) & ev.FS_IMMUTABLE_FL
    with pytest.raises(PermissionError):  # proves the flag really protects the file
        path.write_bytes(b"x")
    efi.delete("LoaderEntryDefault")  # also clears the flag, so tmp_path can be removed


def test_immutable_variable_is_deleted(efi: EfiVars) -> None:
    """Deleting an immutable variable clears the flag first (chattr -i), as efivarfs needs."""
    path = put(efi, "LoaderEntryOneShot", b"\x07\0\0\0" + utf16z("x.conf"))
    make_immutable(path)
    assert efi.delete("LoaderEntryOneShot") is True
    assert not path.exists()


def test_file_system_without_inode_flags_is_tolerated(efi: EfiVars, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOTTY from FS_IOC_GETFLAGS (no inode flags on that file system) is not an error."""

    def no_flags(fd: int, request: int, arg: bytes = b"") -> bytes:
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    efi.write_str("LoaderEntryDefault", "a.conf")
    monkeypatch.setattr(fcntl, "ioctl", no_flags)
    efi.write_str("LoaderEntryDefault", "b.conf")
    assert efi.read_str("LoaderEntryDefault") == "b.conf"
    assert efi.delete("LoaderEntryDefault")


def test_immutable_that_cannot_be_cleared_is_a_clear_error(
    efi: EfiVars, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the flag cannot be cleared, the EPERM of the write becomes an EnvironmentProblem with a hint."""
    path = put(efi, "LoaderEntryDefault", b"\x07\0\0\0" + utf16z("old.conf"))
    make_immutable(path)
    real_ioctl = fcntl.ioctl

    def blind(fd: int, request: int, arg: bytes = b"") -> bytes:
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    monkeypatch.setattr(fcntl, "ioctl", blind)
    try:
        with pytest.raises(
            EnvironmentProblem, match=r"cannot write EFI variable LoaderEntryDefault .*permission"
        ) as e:
            efi.write_str("LoaderEntryDefault", "new.conf")
        assert e.value.hint and "chattr" in e.value.hint
    finally:
        monkeypatch.setattr(fcntl, "ioctl", real_ioctl)
        efi.delete("LoaderEntryDefault")


def test_symlink_is_not_followed(efi: EfiVars, tmp_path: Path) -> None:
    """A symlink in the variable directory is refused for reading and writing."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"\x07\0\0\0" + utf16z("x"))
    (efi.directory / f"LoaderEntryDefault-{LOADER_GUID}").symlink_to(victim)
    with pytest.raises(EnvironmentProblem, match="symbolic link"):
        efi.read_str("LoaderEntryDefault")
    with pytest.raises(EnvironmentProblem, match="symbolic link"):
        efi.write_str("LoaderEntryDefault", "y")
    assert victim.read_bytes() == b"\x07\0\0\0" + utf16z("x")


# -- environment -----------------------------------------------------------------------------


def test_missing_efivarfs(tmp_path: Path) -> None:
    """Without the directory available() is False; require(), writes and snapshot raise NoEfiError."""
    efi = EfiVars(tmp_path / "nope")
    assert not efi.available()
    with pytest.raises(NoEfiError, match="is missing: not an EFI boot or efivarfs not mounted") as e:
        efi.require()
    assert e.value.hint and "mount -t efivarfs" in e.value.hint
    with pytest.raises(NoEfiError):
        efi.write_str("LoaderEntryDefault", "a")
    with pytest.raises(NoEfiError):
        efi.snapshot()


@pytest.fixture
def ro_efivars(tmp_path: Path) -> Iterator[EfiVars]:
    """A tmpfs with one variable, remounted read-only (as efivarfs is mounted on many distributions)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)])
    try:
        efi = EfiVars(mnt)
        efi.write_str("LoaderEntryDefault", "a.conf")
        run(["mount", "-o", "remount,ro", str(mnt)])
        yield efi
    finally:
        run(["umount", "-l", str(mnt)])


def test_read_only_efivarfs(ro_efivars: EfiVars) -> None:
    """On a read-only mount reads work; writes and deletes raise ReadOnlyError naming the variable."""
    assert ro_efivars.read_str("LoaderEntryDefault") == "a.conf"
    with pytest.raises(
        ReadOnlyError, match=r"cannot write EFI variable LoaderEntryDefault: .* read-only"
    ) as e:
        ro_efivars.write_str("LoaderEntryDefault", "b.conf")
    assert e.value.hint and "remount,rw" in e.value.hint
    with pytest.raises(ReadOnlyError, match="LoaderEntryOneShot"):
        ro_efivars.write_str("LoaderEntryOneShot", "b.conf")
    with pytest.raises(ReadOnlyError, match="cannot delete EFI variable LoaderEntryDefault"):
        ro_efivars.delete("LoaderEntryDefault")


# -- snapshot --------------------------------------------------------------------------------


def test_snapshot_of_a_booted_system(efi: EfiVars) -> None:
    """snapshot() collects every loader variable into LoaderVars; absent ones stay None/()."""
    vol = b"\x06\0\0\0"
    put(efi, "LoaderBootCountPath", vol + utf16z("\\loader\\entries\\a+2-1.conf"))
    put(efi, "LoaderEntrySelected", vol + utf16z("a+3.conf"))
    put(efi, "LoaderEntries", vol + utf16z("a+3.conf") + utf16z("b.conf"))
    put(efi, "LoaderEntryDefault", b"\x07\0\0\0" + utf16z("b.conf"))
    put(efi, "LoaderInfo", vol + utf16z("systemd-boot 252.39-1~deb12u2"))
    put(efi, "LoaderFeatures", vol + struct.pack("<Q", 1 << 4))
    put(efi, "LoaderDevicePartUUID", vol + utf16z("0F2B7A74-8C0A-4D47-9E1B-1C9A7D1E2B3C"))
    assert efi.snapshot() == LoaderVars(
        boot_count_path="\\loader\\entries\\a+2-1.conf",
        entry_selected="a+3.conf",
        entries=("a+3.conf", "b.conf"),
        entry_default="b.conf",
        info="systemd-boot 252.39-1~deb12u2",
        features=16,
        device_part_uuid="0F2B7A74-8C0A-4D47-9E1B-1C9A7D1E2B3C",
    )


def test_snapshot_of_an_empty_directory(efi: EfiVars) -> None:
    """With no loader variables set the snapshot equals LoaderVars.empty()."""
    assert efi.snapshot() == LoaderVars.empty()


def test_snapshot_ignores_other_vendors(efi: EfiVars) -> None:
    """A variable of the same name under another GUID is not a loader variable."""
    (efi.directory / "LoaderEntryDefault-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(
        b"\x07\0\0\0" + utf16z("x")
    )
    assert efi.snapshot().entry_default is None
