"""The state directory on real files: two-slot fallback, unsafe files, read-only mounts, the event log."""

from __future__ import annotations

import json
import os
import stat
import threading
import zlib
from typing import TYPE_CHECKING

import pytest

from bootguard.errors import ReadOnlyError, StateError
from bootguard.model.events import Event, EventKind, EventLog
from bootguard.model.state import AttemptKind, Golden, State
from bootguard.seams import statestore as ss
from bootguard.seams.proc import run
from bootguard.seams.statestore import StateStore, decode_slot, encode_slot

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

A, B = ss.SLOTS


def bump(state: State) -> State:
    return state.with_attempt("a.conf", AttemptKind.ATTEMPTED, None, 1.0)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "var" / "lib" / "bootguard")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A private tmpfs mount (so tests can remount it read-only: root ignores file modes)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=4m", "tmpfs", str(mnt)])
    try:
        yield mnt
    finally:
        run(["umount", "-l", str(mnt)])


def remount_ro(mnt: Path) -> None:
    run(["mount", "-o", "remount,ro", str(mnt)])


def two_writes(store: StateStore) -> tuple[State, State]:
    """seq 1 in slot a, seq 2 in slot b."""
    first = store.update(bump)
    second = store.update(bump)
    return first, second


# -- the basics ------------------------------------------------------------------------------


def test_missing_directory_loads_initial_without_creating_it(store: StateStore) -> None:
    """A host bootguard never ran on has the initial state; reading creates nothing."""
    loaded = store.load()
    assert (loaded.state, loaded.slot, loaded.warnings) == (State.initial(), None, ())
    assert not store.directory.exists()


def test_update_creates_private_directory_and_files(store: StateStore) -> None:
    """The first write creates missing parents, the directory 0700 and files 0600."""
    store.update(bump)
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    for name in (A, ss.LOCK):
        assert stat.S_IMODE((store.directory / name).stat().st_mode) == 0o600


def test_updates_alternate_slots_and_increment_seq(store: StateStore) -> None:
    """Each write goes to the slot not holding the newest state, with seq + 1."""
    first, second = two_writes(store)
    assert (first.seq, second.seq) == (1, 2)
    assert decode_slot((store.directory / A).read_bytes(), source=A).seq == 1
    assert decode_slot((store.directory / B).read_bytes(), source=B).seq == 2
    third = store.update(bump)
    assert decode_slot((store.directory / A).read_bytes(), source=A) == third
    assert store.load() == ss.LoadedState(third, A, ())


def test_seq_set_by_the_callback_is_ignored(store: StateStore) -> None:
    """The store owns seq: a callback cannot rewind it."""
    store.update(bump)
    assert store.update(lambda s: bump(s).evolve(seq=0)).seq == 2


def test_unchanged_state_is_not_written(store: StateStore) -> None:
    """An update that changes nothing leaves the files and seq alone."""
    store.update(bump)
    before = (store.directory / A).read_bytes()
    assert store.update(lambda s: s).seq == 1
    assert (store.directory / A).read_bytes() == before
    assert not (store.directory / B).exists()


def test_failing_callback_writes_nothing(store: StateStore) -> None:
    """An exception inside the update leaves the stored state as it was."""
    store.update(bump)

    def boom(state: State) -> State:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.update(boom)
    assert store.load().state.seq == 1


def test_concurrent_writers_are_serialised(store: StateStore) -> None:
    """Four threads doing 25 read-modify-writes each lose no update (flock on separate descriptors)."""
    store.update(bump)

    def work() -> None:
        for _ in range(25):
            store.update(bump)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = store.load().state
    assert state.seq == 101
    assert state.attempts_for("a.conf").boots == 101


def test_stale_temporaries_are_ignored_then_removed(store: StateStore) -> None:
    """A temp file left by a crashed write does not disturb load() and is cleaned by the next update."""
    store.update(bump)
    stale = store.directory / f".{B}.tmp.99999"
    stale.write_bytes(b"half a sta")
    assert store.load().state.seq == 1
    store.update(bump)
    assert not stale.exists()


# -- damage: fall back to the other slot -----------------------------------------------------


def _flip_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_flip_payload_byte, "CRC mismatch"),
        (lambda p: p.write_bytes(p.read_bytes()[:60]), "truncated"),
        (lambda p: p.write_bytes(p.read_bytes()[:20]), "torn or garbage"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(bytes(range(256)) * 3), "torn or garbage"),
        (lambda p: p.write_bytes(b"\0" * 4096), "torn or garbage"),
    ],
    ids=["crc", "truncated-payload", "torn-header", "zero-length", "binary", "zeros"],
)
def test_damaged_newest_slot_falls_back_with_a_warning(store: StateStore, damage: object, why: str) -> None:
    """A torn or corrupt newest slot means the other slot's state is used, and the user is told."""
    first, _ = two_writes(store)
    damage(store.directory / B)  # type: ignore[operator]
    loaded = store.load()
    assert loaded.state == first
    assert loaded.slot == A
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith(f"{B} ")
    assert why in loaded.warnings[0]
    assert loaded.warnings[0].endswith(f"; using {A} (seq 1)")


def test_next_update_heals_the_damaged_slot(store: StateStore) -> None:
    """After a fallback the next write overwrites the damaged slot and the warning disappears."""
    two_writes(store)
    _flip_payload_byte(store.directory / B)
    healed = store.update(bump)
    assert healed.seq == 2
    assert store.load() == ss.LoadedState(healed, B, ())


def test_both_slots_damaged_is_an_error_not_a_reset(store: StateStore) -> None:
    """With no valid copy left, load() refuses (with a hint) instead of starting from zero counters."""
    two_writes(store)
    _flip_payload_byte(store.directory / A)
    (store.directory / B).write_bytes(b"")
    with pytest.raises(
        StateError, match=r"no valid state in .*state\.a\.json is corrupt.*state\.b\.json is empty"
    ) as e:
        store.load()
    assert e.value.hint and "reset" in e.value.hint
    with pytest.raises(StateError):
        store.update(bump)


def test_only_slot_damaged_is_an_error(store: StateStore) -> None:
    """A single slot that is corrupt is not mistaken for an empty directory."""
    store.update(bump)
    (store.directory / A).write_bytes(b'{"crc32": ')
    with pytest.raises(StateError, match="no valid state"):
        store.load()


def test_foreign_json_is_refused_even_with_a_valid_other_slot(store: StateStore) -> None:
    """A JSON file someone put in a slot is named and never overwritten by a fallback write."""
    two_writes(store)
    (store.directory / B).write_text('{"hello": "world"}')
    with pytest.raises(StateError, match=r"state\.b\.json: not a bootguard state file"):
        store.load()
    with pytest.raises(StateError):
        store.update(bump)
    assert (store.directory / B).read_text() == '{"hello": "world"}'


def test_future_version_is_refused(store: StateStore) -> None:
    """A slot written by a newer format version (valid CRC) is an error naming the file."""
    two_writes(store)
    doc = json.loads(State.initial().to_json())
    doc.update(version=2, seq=3)
    payload = json.dumps(doc).encode()
    header = {"envelope": 1, "crc32": f"{zlib.crc32(payload):08x}", "length": len(payload)}
    (store.directory / A).write_bytes(json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(StateError, match=r"state\.a\.json: state format version 2 is newer"):
        store.load()


def test_future_envelope_is_refused(store: StateStore) -> None:
    """An envelope version we do not know is not treated as damage."""
    store.update(bump)
    data = (store.directory / A).read_bytes().replace(b'"envelope": 1', b'"envelope": 9', 1)
    (store.directory / A).write_bytes(data)
    with pytest.raises(StateError, match="envelope version 9"):
        store.load()


def test_envelope_round_trip() -> None:
    """encode_slot/decode_slot are inverse; the header carries length and CRC32."""
    s = State.initial().with_golden(Golden("g", "g.conf", None, 5.0)).evolve(seq=9)
    data = encode_slot(s)
    header = json.loads(data.split(b"\n", 1)[0])
    assert header["length"] == len(data.split(b"\n", 1)[1])
    assert decode_slot(data, source="x") == s


# -- unsafe files ----------------------------------------------------------------------------


def test_planted_symlink_slot_is_refused_and_not_followed(store: StateStore, tmp_path: Path) -> None:
    """A symlink in place of a slot is an error naming it; its target is neither read nor written."""
    store.update(bump)
    target = tmp_path / "elsewhere"
    target.write_bytes(encode_slot(State.initial().evolve(seq=50)))
    (store.directory / B).symlink_to(target)
    with pytest.raises(StateError, match=r"state\.b\.json is a symbolic link"):
        store.load()
    with pytest.raises(StateError, match="symbolic link"):
        store.update(bump)
    assert decode_slot(target.read_bytes(), source="t").seq == 50


@pytest.mark.parametrize("name", [ss.LOCK, ss.EVENTS])
def test_planted_symlink_lock_or_log_is_refused(store: StateStore, tmp_path: Path, name: str) -> None:
    """Symlinks in place of the lock or the event log are refused, the target stays untouched."""
    store.update(bump)
    target = tmp_path / "victim"
    target.write_text("precious")
    (store.directory / name).unlink(missing_ok=True)
    (store.directory / name).symlink_to(target)
    write: Callable[[], object] = (
        (lambda: store.update(bump))
        if name == ss.LOCK
        else (lambda: store.append_event(Event.new(EventKind.ARMED, "x", boot_id="b")))
    )
    with pytest.raises(StateError, match=f"{name} is a symbolic link"):
        write()
    if name == ss.EVENTS:
        with pytest.raises(StateError, match="symbolic link"):
            store.read_events()
    assert target.read_text() == "precious"


def test_fifo_is_refused_without_hanging(store: StateStore) -> None:
    """A FIFO planted as a slot is reported as not a regular file (O_NONBLOCK: no hang)."""
    store.update(bump)
    os.mkfifo(store.directory / B)
    with pytest.raises(StateError, match=r"state\.b\.json is not a regular file"):
        store.load()


def test_file_owned_by_another_user_is_refused(store: StateStore) -> None:
    """A slot owned by another uid could be forged counters: refused, naming the file and uid."""
    store.update(bump)
    os.chown(store.directory / A, 65534, 65534)
    with pytest.raises(StateError, match=r"state\.a\.json is owned by uid 65534"):
        store.load()


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_file_writable_by_others_is_refused(store: StateStore, mode: int) -> None:
    """A slot writable by group or others is refused, whatever its content."""
    store.update(bump)
    os.chmod(store.directory / A, mode)
    with pytest.raises(StateError, match="writable by group or others"):
        store.load()


def test_world_writable_event_log_is_refused(store: StateStore) -> None:
    """The event log gets the same ownership and mode checks as the state."""
    store.append_event(Event.new(EventKind.ARMED, "x", boot_id="b"))
    os.chmod(store.events_path, 0o666)
    with pytest.raises(StateError, match=r"events\.jsonl is writable by group or others"):
        store.read_events()
    with pytest.raises(StateError, match="writable by group or others"):
        store.append_event(Event.new(EventKind.ARMED, "x", boot_id="b"))


def test_unsafe_directory_is_refused(store: StateStore) -> None:
    """A state directory others can write to is refused with a chmod hint."""
    store.update(bump)
    os.chmod(store.directory, 0o777)
    with pytest.raises(StateError, match=r"state directory .* is writable by group or others") as e:
        store.load()
    assert e.value.hint and "chmod 0700" in e.value.hint


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """A regular file where the directory should be is an error, not a crash."""
    (tmp_path / "sd").write_text("")
    with pytest.raises(StateError, match="is not a directory"):
        StateStore(tmp_path / "sd").load()


# -- read-only -------------------------------------------------------------------------------


def test_read_only_mount_refuses_writes_but_still_loads(tmpfs: Path) -> None:
    """On a read-only mount (a real one: root ignores modes) load works and writes raise ReadOnlyError."""
    store = StateStore(tmpfs)
    first = store.update(bump)
    store.append_event(Event.new(EventKind.ARMED, "x", boot_id="b"))
    remount_ro(tmpfs)
    assert store.load().state == first
    assert len(store.read_events().events) == 1
    with pytest.raises(ReadOnlyError, match=f"state directory {tmpfs} is not writable"):
        store.update(bump)
    with pytest.raises(ReadOnlyError, match=r"cannot append to .*events\.jsonl"):
        store.append_event(Event.new(EventKind.ARMED, "y", boot_id="b"))


def test_missing_directory_on_read_only_mount(tmpfs: Path) -> None:
    """Creating the state directory on a read-only file system is a ReadOnlyError naming it."""
    remount_ro(tmpfs)
    store = StateStore(tmpfs / "bootguard")
    assert store.load().state == State.initial()
    with pytest.raises(ReadOnlyError, match=r"cannot create .*bootguard: Read-only file system"):
        store.update(bump)


# -- event log -------------------------------------------------------------------------------


def ev(i: int) -> Event:
    return Event.new(
        EventKind.BOOT_ATTEMPTED, f"boot {i}", entry="a.conf", boot_id="b", clock=lambda: float(i)
    )


def test_events_round_trip_in_order_with_limit(store: StateStore) -> None:
    """Appended events read back oldest first; limit keeps the newest."""
    for i in range(5):
        store.append_event(ev(i))
    assert [e.message for e in store.read_events().events] == [f"boot {i}" for i in range(5)]
    assert [e.message for e in store.read_events(limit=2).events] == ["boot 3", "boot 4"]
    assert store.read_events(limit=0).events == ()
    assert stat.S_IMODE(store.events_path.stat().st_mode) == 0o600


def test_missing_log_reads_empty(store: StateStore) -> None:
    """No log yet means no events and no warnings."""
    assert store.read_events() == EventLog()


def test_torn_last_line_is_a_warning(store: StateStore) -> None:
    """A crash mid-append leaves a torn last line: the others are read and the user is warned."""
    store.append_event(ev(0))
    with open(store.events_path, "ab") as f:
        f.write(ev(1).to_json().encode()[:30])
    log = store.read_events()
    assert [e.message for e in log.events] == ["boot 0"]
    assert log.warnings == ("events.jsonl line 2 is incomplete (torn write, 30 bytes); ignored",)


def test_append_after_a_torn_line_starts_a_new_line(store: StateStore) -> None:
    """The event after a torn line is intact; the torn one becomes a reported bad line."""
    store.append_event(ev(0))
    with open(store.events_path, "ab") as f:
        f.write(b'{"kind": "bles')
    store.append_event(ev(2))
    log = store.read_events()
    assert [e.message for e in log.events] == ["boot 0", "boot 2"]
    assert len(log.warnings) == 1
    assert log.warnings[0].startswith("events.jsonl line 2: not valid JSON")


def test_corrupt_middle_line_is_skipped_naming_its_number(store: StateStore) -> None:
    """A damaged line in the middle is reported with its line number; the rest is kept."""
    store.append_event(ev(0))
    with open(store.events_path, "ab") as f:
        f.write(b'{"kind": "nonsense", "time": 1, "message": "x"}\n\n\xff\xfe junk\n')
    store.append_event(ev(3))
    log = store.read_events()
    assert [e.message for e in log.events] == ["boot 0", "boot 3"]
    assert log.warnings[0] == "events.jsonl line 2: unknown event kind 'nonsense'; skipped"
    assert log.warnings[1].startswith("events.jsonl line 4: not valid JSON")


def test_overlong_line_is_skipped(store: StateStore) -> None:
    """A line over MAX_EVENT_LINE is skipped with a warning without reading it into one string."""
    store.append_event(ev(0))
    with open(store.events_path, "ab") as f:
        f.write(b"x" * (ss.MAX_EVENT_LINE * 3) + b"\n")
    store.append_event(ev(2))
    log = store.read_events()
    assert [e.message for e in log.events] == ["boot 0", "boot 2"]
    assert log.warnings == (f"events.jsonl line 2 is longer than {ss.MAX_EVENT_LINE} bytes; skipped",)


def test_huge_event_is_shrunk_not_lost(store: StateStore) -> None:
    """An event too large for one line is stored shortened, marked truncated, and still parses."""
    big = Event.new(EventKind.CHECK_FAILED, "m" * 10_000, data={"out": "y" * 200_000}, boot_id="b")
    store.append_event(big)
    (e,) = store.read_events().events
    assert e.kind is EventKind.CHECK_FAILED
    assert e.message == "m" * 4096
    assert e.data["truncated_from_bytes"] > ss.MAX_EVENT_LINE
    assert store.events_path.stat().st_size <= ss.MAX_EVENT_LINE


def test_append_events_writes_them_in_order_with_one_fsync(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A boot's events go to the log together: in order, after a torn line, with one fsync."""
    store.append_event(ev(0))
    with open(store.events_path, "ab") as f:
        f.write(b'{"kind": "bles')
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.append_events([ev(2), ev(3), ev(4)])
    store.append_events([])  # nothing to log: nothing written, nothing synced
    monkeypatch.undo()
    assert len(synced) == 1
    log = store.read_events()
    assert [e.message for e in log.events] == ["boot 0", "boot 2", "boot 3", "boot 4"]
    assert len(log.warnings) == 1 and log.warnings[0].startswith("events.jsonl line 2: not valid JSON")


class PowerCut(BaseException):
    """The power goes mid-write."""


def test_append_events_cut_mid_write_keeps_the_whole_lines(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut inside append_events' one write keeps a prefix: its whole lines read back, the torn
    one is reported."""
    store.append_events([ev(0)])
    real_write = os.write

    def write_then_cut(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[: len(data) - 5])  # what reached the disk before the cut
        raise PowerCut

    monkeypatch.setattr(os, "write", write_then_cut)
    with pytest.raises(PowerCut):
        store.append_events([ev(1), ev(2)])
    monkeypatch.undo()
    log = store.read_events()
    assert [e.message for e in log.events] == ["boot 0", "boot 1"]
    assert len(log.warnings) == 1 and "incomplete" in log.warnings[0]
