"""The early-boot step's view reads entry files only when their contents are used (issue 13)."""

from __future__ import annotations

import os
from pathlib import Path

from bootguard.model.entry import BootEntry, Partition
from bootguard.seams import esp
from bootguard.seams.watchdog_sysfs import reset_seen


def _esp(tmp_path: Path) -> esp.PartitionRoot:
    entries = tmp_path / "loader/entries"
    entries.mkdir(parents=True)
    (entries / "a+2-1.conf").write_text("title A\nversion 1\nlinux /k\noptions x\n")
    (entries / "b.conf").write_text("title B\nbogus line\n")  # problems: unknown key, no loader line
    (entries / "big.conf").write_bytes(b"title X\n" * 10_000)  # larger than MAX_ENTRY_BYTES
    (entries / "link.conf").symlink_to("a+2-1.conf")  # never an entry
    os.mkfifo(entries / "fifo.conf")  # never an entry, never read
    (entries / "dir.conf").mkdir()
    return esp.PartitionRoot(Partition.ESP, str(tmp_path))


def test_lazy_scan_lists_the_same_entries_as_the_eager_one(tmp_path: Path) -> None:
    part = _esp(tmp_path)
    lazy, eager = esp.scan(part, lazy=True), esp.scan(part)
    assert [e.filename for e in eager] == ["a+2-1.conf", "b.conf", "big.conf"]
    assert lazy == eager
    assert [e.problems for e in lazy] == [e.problems for e in eager]
    assert lazy[0] == BootEntry.from_conf(
        "loader/entries/a+2-1.conf", (tmp_path / "loader/entries/a+2-1.conf").read_bytes(), Partition.ESP
    )


def test_a_lazy_entry_is_read_on_first_use_of_its_contents(tmp_path: Path) -> None:
    part = _esp(tmp_path)
    entry = esp.scan(part, lazy=True)[0]
    assert (entry.filename, entry.tries_left, entry.tries_done) == ("a+2-1.conf", 2, 1)  # the name only
    (tmp_path / "loader/entries/a+2-1.conf").write_text("title changed\nlinux /k\n")
    assert entry.title == "changed"  # read now, not at the scan
    assert entry.options == ()


def test_an_entry_unreadable_when_used_says_so(tmp_path: Path) -> None:
    part = _esp(tmp_path)
    entry = esp.scan(part, lazy=True)[1]
    (tmp_path / "loader/entries/b.conf").unlink()
    assert entry.title is None
    assert entry.problems[-1].startswith("cannot read it:")


def test_reset_seen_reads_bootstatus_alone(tmp_path: Path) -> None:
    assert reset_seen(str(tmp_path / "missing")) is False
    for name, status in (("watchdog0", "0"), ("watchdog1", "32"), ("other", "32")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "bootstatus").write_text(status + "\n")
    assert reset_seen(str(tmp_path)) is True
    (tmp_path / "watchdog1/bootstatus").write_text("0\n")
    assert reset_seen(str(tmp_path)) is False
