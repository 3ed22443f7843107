"""Power cuts at every step of a state update and an event append: the state is the old or the new one.

A model of POSIX durability tracks what the code under test does in the state directory (file
content is durable once the file is fsynced; a create, rename or unlink once the directory is
fsynced; metadata changes land in order, as on a journaling file system). The code is "killed"
before each of its mutating system calls in turn (and at each named step of `fs.atomic_write`);
then every disk the power cut could leave behind is built for real (unsynced data lost, torn,
zero-filled or complete; any prefix of the unsynced directory changes) and `StateStore.load()`
must return exactly the old or the new state, the event log must parse with at most a torn last
line, and the next update must succeed and clean up.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bootguard.model.events import Event, EventKind
from bootguard.model.state import AttemptKind, State
from bootguard.seams import fs
from bootguard.seams.statestore import StateStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class Crash(BaseException):
    """The process dies here (BaseException: no `except Exception` in the code may swallow it)."""


class Disk:
    """Durability model of one directory, fed by intercepted os calls."""

    def __init__(self, directory: Path, crash_at: int | None) -> None:
        self.dir = os.path.abspath(directory)
        self.crash_at = crash_at
        self.dead = False
        self.ops = 0
        self.inodes = itertools.count()
        self.entries: dict[str, int] = {}
        self.data: dict[int, bytes] = {}
        for name in os.listdir(self.dir):
            ino = next(self.inodes)
            self.entries[name] = ino
            with open(os.path.join(self.dir, name), "rb") as f:
                self.data[ino] = f.read()
        self.durable_entries = dict(self.entries)
        self.durable_data = dict(self.data)
        self.pending: list[tuple[str, ...]] = []  # directory changes since the last directory fsync
        self.fds: dict[int, int | None] = {}  # fd -> inode, or None for the directory itself

    # -- interception ------------------------------------------------------------------------

    def _name(self, path: object) -> str | None:
        full = os.path.abspath(os.fsdecode(path))  # type: ignore[arg-type]
        if full == self.dir:
            return ""
        return os.path.basename(full) if os.path.dirname(full) == self.dir else None

    def _step(self) -> None:
        if self.dead:
            raise Crash
        if self.ops == self.crash_at:
            self.dead = True
            raise Crash
        self.ops += 1

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = {n: getattr(os, n) for n in ("open", "write", "fsync", "rename", "replace", "unlink", "close")}

        def open_(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
            name = self._name(path)
            if name is None:
                return real["open"](path, flags, mode, **kw)  # type: ignore[no-any-return]
            creates = bool(flags & os.O_CREAT) and name not in self.entries
            if creates or flags & os.O_TRUNC:
                self._step()
            fd: int = real["open"](path, flags, mode, **kw)
            if name == "":
                self.fds[fd] = None
                return fd
            if name not in self.entries:
                ino = next(self.inodes)
                self.entries[name] = ino
                self.data[ino] = b""
                self.pending.append(("link", name, str(ino)))
            if flags & os.O_TRUNC:
                self.data[self.entries[name]] = b""
            self.fds[fd] = self.entries[name]
            return fd

        def write(fd: int, buf: bytes) -> int:
            if fd not in self.fds:
                return real["write"](fd, buf)  # type: ignore[no-any-return]
            self._step()
            n: int = real["write"](fd, buf)
            ino = self.fds[fd]
            assert ino is not None
            self.data[ino] += bytes(buf[:n])  # all writes here are sequential or O_APPEND
            return n

        def fsync(fd: int) -> None:
            if fd not in self.fds:
                return real["fsync"](fd)  # type: ignore[no-any-return]
            self._step()
            real["fsync"](fd)
            ino = self.fds[fd]
            if ino is None:
                self.durable_entries = dict(self.entries)
                self.pending.clear()
            else:
                self.durable_data[ino] = self.data[ino]
            return None

        def rename(src: object, dst: object, **kw: object) -> None:
            s, d = self._name(src), self._name(dst)
            if s is None or d is None:
                return real["rename"](src, dst, **kw)  # type: ignore[no-any-return]
            self._step()
            real["rename"](src, dst, **kw)
            self.entries[d] = self.entries.pop(s)
            self.pending.append(("rename", s, d))
            return None

        def unlink(path: object, **kw: object) -> None:
            name = self._name(path)
            if name is None:
                return real["unlink"](path, **kw)  # type: ignore[no-any-return]
            self._step()
            real["unlink"](path, **kw)
            del self.entries[name]
            self.pending.append(("unlink", name))
            return None

        def close(fd: int) -> None:
            self.fds.pop(fd, None)  # closing is harmless even for a dead process (the kernel does it)
            return real["close"](fd)  # type: ignore[no-any-return]

        for name, fn in (("open", open_), ("write", write), ("fsync", fsync), ("rename", rename),
                         ("replace", rename), ("unlink", unlink), ("close", close)):  # fmt: skip
            monkeypatch.setattr(os, name, fn)

    # -- what a power cut can leave ----------------------------------------------------------

    def _namespaces(self) -> Iterator[dict[str, int]]:
        for cut in range(len(self.pending) + 1):
            entries = dict(self.durable_entries)
            for op in self.pending[:cut]:
                if op[0] == "link":
                    entries[op[1]] = int(op[2])
                elif op[0] == "rename":
                    entries[op[2]] = entries.pop(op[1])
                else:
                    entries.pop(op[1], None)
            yield entries

    def _contents(self, ino: int) -> list[bytes]:
        now, durable = self.data[ino], self.durable_data.get(ino, b"")
        if now == durable:
            return [now]
        if now.startswith(durable):  # appended: the synced part survives, the tail may not
            tail = now[len(durable) :]
            return [durable, durable + tail[: len(tail) // 2], durable + b"\0" * len(tail), now]
        return [durable, b"", now[: len(now) // 2], b"\0" * len(now), now]

    def worlds(self) -> Iterator[dict[str, bytes]]:
        """Every directory content the power cut may leave (deduplicated)."""
        seen: set[tuple[tuple[str, bytes], ...]] = set()
        for entries in self._namespaces():
            names = sorted(entries)
            for choice in itertools.product(*(self._contents(entries[n]) for n in names)):
                key = tuple(zip(names, choice, strict=True))
                if key not in seen:
                    seen.add(key)
                    yield dict(key)


# -- scenarios ---------------------------------------------------------------------------------


def bump(state: State) -> State:
    return state.with_attempt("a.conf", AttemptKind.FAILED, "watchdog", float(state.seq))


def event(n: int) -> Event:
    return Event.new(EventKind.COUNTED_FAILURE, f"event {n}", entry="a.conf", boot_id="b", clock=lambda: 1.0)


def prepare(directory: Path, writes: int) -> tuple[State, int]:
    """A state directory after `writes` committed updates and events; returns the state and event count."""
    directory.mkdir(mode=0o700)
    store = StateStore(directory)
    for n in range(writes):
        store.update(bump)
        store.append_event(event(n))
    return store.load().state, writes


def scenario(store: StateStore, done: list[str]) -> None:
    """The unit of work under test; `done` records which calls returned (and so promised durability)."""
    store.update(bump)
    done.append("update")
    store.append_event(event(99))
    done.append("event")


def check_world(
    world: dict[str, bytes], where: Path, *, old: State, new: State, old_events: int, done: list[str]
) -> None:
    where.mkdir(mode=0o700)
    for name, content in world.items():
        fd = os.open(where / name, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, content)
        os.close(fd)
    store = StateStore(where)
    loaded = store.load()
    # Old or new, never anything else; and once update() returned, only the new one.
    assert loaded.state in ((new,) if "update" in done else (old, new)), (
        f"{sorted(world)}: seq {loaded.state.seq}"
    )
    log = store.read_events()
    assert len(log.events) in ((old_events + 1,) if "event" in done else (old_events, old_events + 1))
    assert all("incomplete" in w for w in log.warnings), log.warnings
    assert len(log.warnings) <= 1
    # Recovery: the next update works from whatever was left, and the directory ends up clean.
    after = store.update(bump)
    assert after.seq == loaded.state.seq + 1
    assert store.load().warnings == ()
    assert not [n for n in os.listdir(where) if ".tmp." in n]


def run_crash(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writes: int,
    *,
    crash_at: int | None = None,
    step_hook: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """Prepare, crash before syscall `crash_at` or where `step_hook` raises, check every world.

    Returns (number of worlds checked, mutating syscalls done).
    """
    directory = tmp_path / "state"
    old, old_events = prepare(directory, writes)
    new = bump(old).evolve(seq=old.seq + 1)
    disk = Disk(directory, crash_at=crash_at)
    done: list[str] = []
    with monkeypatch.context() as m:
        disk.install(m)
        m.setattr(fs, "step_hook", step_hook)
        try:
            scenario(StateStore(directory), done)
        except Crash:
            pass
    count = 0
    for i, world in enumerate(disk.worlds()):
        check_world(world, tmp_path / f"world{i}", old=old, new=new, old_events=old_events, done=done)
        count += 1
    return count, disk.ops


def count_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writes: int) -> int:
    _, ops = run_crash(tmp_path / "dry", monkeypatch, writes)
    return ops


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory in /dev/shm: the model decides what is durable, so real fsyncs (seconds
    each on a busy disk) would only slow the thousands of simulated disks down."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="bootguard-powercut-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def base(mem: Path) -> Path:
    (mem / "dry").mkdir()
    return mem


# First write ever; one slot present (write the other); both present (overwrite the older one).
@pytest.mark.parametrize("writes", [0, 1, 2])
def test_power_cut_before_every_system_call(base: Path, monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Killed before each mutating syscall of update+append, then unsynced data lost: old or new state."""
    ops = count_ops(base, monkeypatch, writes)
    assert ops >= 7  # tmp open, write, fsync, rename, fsync-dir; event write, fsync (at least)
    total = 0
    for crash_at in range(ops + 1):
        here = base / f"crash{crash_at}"
        here.mkdir()
        worlds, _ = run_crash(here, monkeypatch, writes, crash_at=crash_at)
        total += worlds
    assert total > ops  # the model really produced alternative disks, not one per crash


ATOMIC_WRITE_STEPS = ["open", "write", "fsync", "rename", "fsync-dir", "done"]


@pytest.mark.parametrize("step", ATOMIC_WRITE_STEPS)
@pytest.mark.parametrize("writes", [0, 2])
def test_power_cut_at_each_atomic_write_step(
    mem: Path, monkeypatch: pytest.MonkeyPatch, step: str, writes: int
) -> None:
    """A crash at each named step of fs.atomic_write (fs.step_hook), then power loss: old or new state."""
    seen: list[str] = []

    def hook(name: str) -> None:
        seen.append(name)
        if name == step:
            raise Crash

    worlds, _ = run_crash(mem, monkeypatch, writes, step_hook=hook)
    assert seen[-1] == step
    assert worlds >= 1


def test_step_names_match_atomic_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps tested above are exactly the steps atomic_write announces, in order."""
    seen: list[str] = []
    monkeypatch.setattr(fs, "step_hook", seen.append)
    fs.atomic_write(tmp_path / "f", b"x")
    assert seen == ATOMIC_WRITE_STEPS


def test_model_loses_unsynced_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanity check of the model: a write without fsync can vanish, be torn or survive."""
    (tmp_path / "d").mkdir()
    disk = Disk(tmp_path / "d", crash_at=None)
    with monkeypatch.context() as m:
        disk.install(m)
        fd = os.open(tmp_path / "d" / "f", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"abcd")
        os.close(fd)
    worlds = list(disk.worlds())
    assert {} in worlds  # the create itself was not durable
    assert {"f": b""} in worlds and {"f": b"ab"} in worlds and {"f": b"abcd"} in worlds
