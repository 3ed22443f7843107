"""Category "EFI variables" (issue 15.2): a malformed unneeded variable never refuses a good boot."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootguard.errors import BootguardError
from bootguard.seams import efivars
from tests.hosttree import GUID

if TYPE_CHECKING:
    from tests.hosttree import HostTree

UNNEEDED = (
    "LoaderInfo",
    "LoaderFeatures",
    "LoaderEntries",
    "LoaderEntryDefault",
    "LoaderEntrySelected",
    "LoaderEntryOneShot",
)
MALFORMED = {
    "empty": b"",
    "odd length": b"a\0b",
    "no NUL": "abc".encode("utf-16-le"),
    "lone surrogate": b"\x00\xd8a\x00\x00\x00",
    "huge": b"a\0" * (efivars.MAX_VARIABLE_BYTES // 2 + 8),
    "too short for attributes": None,
}


def _plant(host: HostTree, name: str, kind: str) -> None:
    path = host.efivars / f"{name}-{GUID}"
    path.unlink(missing_ok=True)
    if kind == "directory":
        path.mkdir()
        return
    data = MALFORMED[kind]
    path.write_bytes(b"\x06\0" if data is None else struct.pack("<I", 6) + data)


@pytest.mark.parametrize("kind", [*MALFORMED, "directory"])
@pytest.mark.parametrize("name", UNNEEDED)
def test_mark_good_blesses_despite_a_malformed_unneeded_variable(
    host: HostTree, name: str, kind: str
) -> None:
    host.add_entry("a+1-1.conf")
    host.booted("a+1-1.conf")
    _plant(host, name, kind)
    code, _out, err = host.cli("mark", "good")
    assert code == 0, err
    assert "Traceback" not in err
    assert host.entries() == ["a.conf"]
    if (name, kind) != ("LoaderEntries", "empty"):  # an empty list is valid
        assert f"warning: EFI variable {name}" in err or f"{name}-" in err


def test_malformed_boot_count_path_is_a_clear_error(host: HostTree) -> None:
    host.add_entry("a+1-1.conf")
    host.booted("a+1-1.conf")
    _plant(host, "LoaderBootCountPath", "odd length")
    code, _, err = host.cli("mark", "good")
    assert code != 0 and "bootguard: error:" in err and "Traceback" not in err
    assert host.entries() == ["a+1-1.conf"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64), name=st.sampled_from([*UNNEEDED, "LoaderBootCountPath"]))
def test_snapshot_never_crashes_on_any_bytes(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes, name: str
) -> None:
    d = tmp_path_factory.mktemp("ev")
    (d / f"{name}-{GUID}").write_bytes(raw)
    try:
        snap = efivars.EfiVars(d).snapshot()
    except BootguardError:
        assert name == "LoaderBootCountPath"  # only the one variable the verdict needs may fail
        return
    assert isinstance(snap.warnings, tuple)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30).filter(lambda s: "\0" not in s))
def test_string_round_trip(value: str) -> None:
    try:
        encoded = efivars.encode_str(value)
    except UnicodeEncodeError:
        return  # lone surrogates cannot be written
    assert efivars.decode_str(encoded, "X") == value if value else True


def test_unreadable_variable_directory_tolerated(host: HostTree) -> None:
    host.add_entry("a+1-1.conf")
    host.booted("a+1-1.conf")
    os.remove(host.efivars / f"LoaderInfo-{GUID}")
    (host.efivars / f"LoaderInfo-{GUID}").mkdir()
    code, _, err = host.cli("list")
    assert code == 0 and "Traceback" not in err
