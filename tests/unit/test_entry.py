"""BootEntry: Type #1 parsing as systemd-boot reads it, Type #2 by name, ids per IdScheme, counter state."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootguard.model.entry import (
    MAX_ENTRY_BYTES,
    BootEntry,
    EntryStatus,
    EntryType,
    IdScheme,
    LoaderKind,
    Partition,
    parse_key_values,
)

# The shared CI machine is often loaded: no per-example deadline, a bounded example count.
_RELAXED = settings(deadline=None, max_examples=150)

NIXOS_ENTRY = b"""\
# Generated file, all changes will be lost on nixos-rebuild!

title NixOS
version Generation 42 NixOS 24.05, Linux Kernel 6.6.1, Built on 2024-01-01
linux /efi/nixos/abc-linux-6.6.1-bzImage.efi
initrd /efi/nixos/def-initrd-linux-6.6.1-initrd.efi
options init=/nix/store/xyz-nixos-system/init loglevel=4
options quiet
machine-id 0123456789abcdef0123456789abcdef
sort-key nixos
"""


def _entry(data: bytes, name: str = "nixos-generation-42.conf") -> BootEntry:
    return BootEntry.from_conf(f"loader/entries/{name}", data, Partition.ESP)


def test_parses_a_nixos_entry() -> None:
    """A generated NixOS entry gives its fields, accumulated options and no problems."""
    e = _entry(NIXOS_ENTRY)
    assert e.title == "NixOS"
    assert e.version is not None
    assert e.version.startswith("Generation 42 ")
    assert e.linux == "/efi/nixos/abc-linux-6.6.1-bzImage.efi"
    assert e.initrd == ("/efi/nixos/def-initrd-linux-6.6.1-initrd.efi",)
    assert e.options == ("init=/nix/store/xyz-nixos-system/init loglevel=4", "quiet")
    assert e.cmdline == "init=/nix/store/xyz-nixos-system/init loglevel=4 quiet"
    assert (e.machine_id, e.sort_key, e.loader_kind) == (
        "0123456789abcdef0123456789abcdef",
        "nixos",
        LoaderKind.LINUX,
    )
    assert (e.type, e.partition, e.directory) == (EntryType.TYPE1, Partition.ESP, "loader/entries")
    assert e.problems == ()
    assert e.loadable


def test_line_rules_match_systemd_boot() -> None:
    """systemd's line_get_key_value vector: CR ends lines, '#' only at line start, quotes stripped."""
    problems: list[str] = []
    data = b'this parser\n\t\t\t# is\t\r  also\tused  \r\nfor "the conf"\nformat\t !!'
    pairs = [(k, v) for _, k, v in parse_key_values(data, problems)]
    assert pairs == [("this", "parser"), ("also", "used"), ("for", "the conf"), ("format", "!!")]
    assert problems == []


def test_repeated_keys_last_wins_initrds_accumulate() -> None:
    """A later title replaces an earlier one; initrd lines are kept in order; a lone quote unquotes to ''."""
    e = _entry(b"title one\ntitle 'two words'\nlinux /k\ninitrd /a\ninitrd /b\nsort-key \"\n")
    assert (e.title, e.initrd, e.sort_key) == ("two words", ("/a", "/b"), "")


def test_entry_without_loader_line_is_listed_but_flagged() -> None:
    """No linux/efi/uki line: the entry exists for bootguard, flagged; systemd-boot would not list it."""
    e = _entry(b"title only a title\n")
    assert not e.loadable
    assert e.loader_kind is None
    assert any("no linux, efi or uki line" in p for p in e.problems)


def test_conflicting_loader_lines_drop_the_entry() -> None:
    """linux followed by efi is LOADER_BAD for systemd-boot: not loadable, later lines unread."""
    e = _entry(b"linux /k\nefi /x.efi\ntitle late\n")
    assert not e.loadable
    assert e.title is None
    assert any("conflicts" in p for p in e.problems)


def test_junk_becomes_problems_not_errors() -> None:
    """Invalid UTF-8, lines without values, unknown keys and a NUL byte are reported, never raised."""
    e = _entry(b"title caf\xe9\nlinux /k\njustakey\nfrobnicate yes\noptions a\x00options hidden\n")
    assert e.title == "caf\ufffd"
    assert e.options == ("a",)
    text = " | ".join(e.problems)
    for fragment in ("invalid UTF-8", "has no value", "unknown key 'frobnicate'", "NUL byte"):
        assert fragment in text
    assert e.loadable


def test_oversized_data_is_cut_and_flagged() -> None:
    """Data beyond MAX_ENTRY_BYTES is not parsed and the entry says so."""
    e = _entry(b"linux /k\n" + b"#" * MAX_ENTRY_BYTES + b"\ntitle beyond\n")
    assert e.title is None
    assert any(str(MAX_ENTRY_BYTES) in p for p in e.problems)


def test_problem_list_is_bounded() -> None:
    """Thousands of junk lines yield a bounded problem list."""
    e = _entry(b"linux /k\n" + b"junk\n" * 5000)
    assert len(e.problems) <= 20
    assert e.problems[-1] == "further problems not shown"


@pytest.mark.parametrize("name", ["auto-windows.conf", "AUTO-x.conf", ".hidden.conf", "notes.txt"])
def test_names_systemd_boot_skips_are_not_loadable(name: str) -> None:
    """systemd-boot ignores dot files, auto-* names and non-.conf names; bootguard flags them."""
    e = _entry(b"linux /k\n", name)
    assert not e.loadable
    assert e.problems


def test_uki_entry_by_file_name() -> None:
    """A Type #2 UKI is known by its name: counter parsed against .efi, loadable, no text fields."""
    e = BootEntry.from_uki("EFI/Linux/Linux-6.1+2-1.EFI", Partition.XBOOTLDR)
    assert (e.type, e.loader_kind, e.partition) == (EntryType.TYPE2, LoaderKind.TYPE2, Partition.XBOOTLDR)
    assert (e.tries_left, e.tries_done, e.status) == (2, 1, EntryStatus.INDETERMINATE)
    assert e.next_boot_path() == "EFI/Linux/Linux-6.1+1-2.efi"
    assert e.id(IdScheme.STRIPPED_KEEP_CASE) == "Linux-6.1.efi"
    assert e.loadable
    assert e.title is None


# (file name, COUNTER_KEPT id, STRIPPED_KEEP_CASE id, STRIPPED_LOWER id): vm-harness.md version table
ID_ROWS = [
    ("bg-2.0+1-1.conf", "bg-2.0+1-1.conf", "bg-2.0.conf", "bg-2.0.conf"),
    ("bg-1.0.conf", "bg-1.0.conf", "bg-1.0.conf", "bg-1.0.conf"),
    ("A+3.CONF", "a+3.conf", "A.conf", "a.conf"),
    ("Mixed-Case.conf", "mixed-case.conf", "Mixed-Case.conf", "mixed-case.conf"),
    ("h+1+2.conf", "h+1+2.conf", "h+1.conf", "h+1.conf"),
    ("a+3x.conf", "a+3x.conf", "a+3x.conf", "a+3x.conf"),
]


@pytest.mark.parametrize(("filename", "kept", "keep_case", "lower"), ID_ROWS)
def test_ids_per_scheme(filename: str, kept: str, keep_case: str, lower: str) -> None:
    """Ids keep or strip the counter and fold case as the three systemd-boot generations do."""
    e = _entry(b"linux /k\n", filename)
    assert e.id(IdScheme.COUNTER_KEPT) == kept
    assert e.id(IdScheme.STRIPPED_KEEP_CASE) == keep_case
    assert e.id(IdScheme.STRIPPED_LOWER) == lower


@pytest.mark.parametrize(
    ("filename", "status", "left", "done"),
    [
        ("a.conf", EntryStatus.GOOD, None, None),
        ("a+2.conf", EntryStatus.INDETERMINATE, 2, 0),
        ("a+1-1.conf", EntryStatus.INDETERMINATE, 1, 1),
        ("a+0-2.conf", EntryStatus.BAD, 0, 2),
    ],
)
def test_status_from_counter(filename: str, status: EntryStatus, left: int | None, done: int | None) -> None:
    """Uncounted is good, counted with tries left is indeterminate, no tries left is bad."""
    e = _entry(b"linux /k\n", filename)
    assert (e.status, e.tries_left, e.tries_done) == (status, left, done)
    assert (e.counter is None) is (left is None)


def test_renamed_entry_keeps_contents() -> None:
    """After systemd-boot's rename the entry has the new name and counter and the same contents."""
    e = _entry(NIXOS_ENTRY, "nixos-generation-42+2.conf")
    nxt = e.next_boot_path()
    assert nxt == "loader/entries/nixos-generation-42+1-1.conf"
    moved = e.renamed(nxt.rpartition("/")[2])
    assert (moved.path, moved.tries_left, moved.tries_done) == (nxt, 1, 1)
    assert (moved.title, moved.options) == (e.title, e.options)
    assert _entry(NIXOS_ENTRY).next_boot_path() is None


@_RELAXED
@given(st.binary(max_size=400))
def test_any_bytes_parse(data: bytes) -> None:
    """Arbitrary bytes never raise; every problem is a one-line sentence."""
    e = _entry(data)
    assert all("\n" not in p for p in e.problems)
    assert isinstance(e.loadable, bool)


@_RELAXED
@given(st.text(st.characters(exclude_categories=()), min_size=1, max_size=30))
def test_any_file_name(name: str) -> None:
    """Arbitrary file names (surrogates included) give entries with ids under every scheme."""
    for e in (
        _entry(b"linux /k\n", name.replace("/", "_")),
        BootEntry.from_uki(f"EFI/Linux/{name}", Partition.ESP),
    ):
        for scheme in IdScheme:
            assert isinstance(e.id(scheme), str)
        assert e.status in EntryStatus
