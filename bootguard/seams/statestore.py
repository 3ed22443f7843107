"""The state directory: two state slots, an append-only event log and a lock.

Layout (`/var/lib/bootguard` by default)::

    state.a.json  state.b.json   two slots: an envelope line (CRC32 + length) then the state JSON
    events.jsonl                 one event per line, O_APPEND + fsync per event
    events.jsonl.1               the previous generation: the log rotates at MAX_LOG_BYTES (rename)
    lock                         flock(2) serialising writers

Why two slots: every write goes to the slot that does *not* hold the newest valid state, so
whatever a power cut does to the file being written (torn, zero-length, garbage), the other slot
still holds the last committed state. On load the valid slot with the highest `seq` wins; a
corrupt slot is reported as a warning, never silently treated as "no state" (boot counters must
not reset themselves). Each slot is itself replaced atomically (`fs.atomic_write`), so in practice
the fallback is only needed when a file system or disk misbehaves.

Safety: the directory is created 0700 and files 0600. Every file is opened with O_NOFOLLOW and
checked on the opened descriptor: a symlink, a non-regular file, a file owned by someone else
or writable by group/others is refused with a StateError naming it. Standard library only.
"""

from __future__ import annotations

import errno
import os
import stat

from bootguard.errors import EnvironmentProblem, ReadOnlyError, StateError
from bootguard.model._frozen import Frozen
from bootguard.model.events import Event, EventLog
from bootguard.model.state import State
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import BinaryIO

SLOTS = ("state.a.json", "state.b.json")
EVENTS = "events.jsonl"
LOCK = "lock"
ENVELOPE_VERSION = 1
MAX_STATE_BYTES = 4 << 20
MAX_EVENT_LINE = 64 << 10  # bytes, newline included; longer lines are skipped on read
MAX_LOG_BYTES = 4 << 20  # events.jsonl rotates to events.jsonl.1 beyond this (one old generation kept)
ROTATED = EVENTS + ".1"
_TAIL_CHUNK = 64 << 10
_TMP_PREFIXES = tuple(f".{name}.tmp." for name in SLOTS)
_RECOVERY_HINT = (
    "bootguard does not reset boot counters silently: restore the state files from a backup, or run "
    "`bootguard state reset` (keeps the bad files aside, starts from an empty state: re-pin golden)"
)


class LoadedState(Frozen):
    """The current state, the slot it came from (None: no state yet) and what was wrong on the way."""

    __slots__ = ("slot", "state", "warnings")

    state: State
    slot: str | None
    warnings: tuple[str, ...]

    def __init__(self, state: State, slot: str | None, warnings: tuple[str, ...] = ()) -> None:
        self._init(state=state, slot=slot, warnings=tuple(warnings))


class _Corrupt(Exception):
    """A slot that is torn or damaged: recoverable from the other slot."""


def encode_slot(state: State) -> bytes:
    """The bytes of a slot file: a JSON envelope line (payload CRC32 and length), then the payload."""
    import zlib

    from bootguard.model.jsoncodec import dumps

    payload = state.to_json().encode("utf-8")
    header = {"envelope": ENVELOPE_VERSION, "crc32": f"{zlib.crc32(payload):08x}", "length": len(payload)}
    return dumps(header, sort_keys=True).encode("ascii") + b"\n" + payload


def decode_slot(data: bytes, *, source: str) -> State:
    """Parse a slot file. `_Corrupt` for torn/damaged bytes; StateError for a foreign or future file."""
    import zlib

    from bootguard.model.jsoncodec import loads

    if not data:
        raise _Corrupt("is empty (zero length)")
    head, sep, payload = data.partition(b"\n")
    try:
        header = loads(head) if sep and len(head) < 256 else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or "envelope" not in header:
        _raise_if_foreign(data, source)
        raise _Corrupt("is not a bootguard state envelope (torn or garbage)")
    if header.get("envelope") != ENVELOPE_VERSION:
        raise StateError(
            f"{source}: state envelope version {header.get('envelope')!r} is not supported",
            hint="upgrade bootguard; a newer version wrote this file",
        )
    if header.get("length") != len(payload):
        raise _Corrupt(
            f"is truncated or padded ({len(payload)} payload bytes, envelope says {header.get('length')})"
        )
    if header.get("crc32") != f"{zlib.crc32(payload):08x}":
        raise _Corrupt("is corrupt (CRC mismatch)")
    # The CRC matched: these are exactly the bytes a writer meant, so anything wrong inside is a
    # foreign or newer writer, not damage. That is fatal, not a reason to fall back.
    return State.from_json(payload, source=source)


def _raise_if_foreign(data: bytes, source: str) -> None:
    """A well-formed JSON document without our envelope was put there by someone: refuse, keep it."""
    from bootguard.model.jsoncodec import loads

    try:
        loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    raise StateError(
        f"{source}: not a bootguard state file (valid JSON without the bootguard envelope)",
        hint="move the foreign file out of the state directory",
    )


class StateStore:
    """The state directory of one host. Readers need no lock; writers take `lock`.

    Paths are kept as strings: `pathlib` (with fnmatch, re and urllib behind it) costs about 6 ms
    on the early-boot path, more than all of this module's work. `directory` and `events_path`
    still give `Path`s to the callers that like them.
    """

    __slots__ = ("_dir", "lock_timeout")

    def __init__(self, directory: str | os.PathLike[str], *, lock_timeout: float | None = None) -> None:
        self._dir = fs.clean_path(directory)
        self.lock_timeout = lock_timeout  # None: wait for other writers as long as it takes

    def __repr__(self) -> str:
        return f"StateStore({self._dir!r})"

    @property
    def directory(self) -> Path:
        from pathlib import Path

        return Path(self._dir)

    @property
    def events_path(self) -> Path:
        from pathlib import Path

        return Path(self._path(EVENTS))

    def _path(self, name: str) -> str:
        return os.path.join(self._dir, name)

    # -- state -----------------------------------------------------------------------------

    def load(self) -> LoadedState:
        """The newest valid state; StateError when no valid copy is left (never a silent reset)."""
        if not self._check_dir(create=False):
            return LoadedState(State.initial(), None)
        good: list[tuple[State, str]] = []
        bad: list[tuple[str, str]] = []
        for name in SLOTS:
            data = self._read_private(name, MAX_STATE_BYTES)
            if data is None:
                continue
            source = self._path(name)
            try:
                if len(data) > MAX_STATE_BYTES:
                    raise _Corrupt(f"is larger than {MAX_STATE_BYTES} bytes")
                good.append((decode_slot(data, source=source), name))
            except _Corrupt as exc:
                bad.append((name, str(exc)))
        if not good and not bad:
            return LoadedState(State.initial(), None)
        if not good:
            detail = "; ".join(f"{name} {why}" for name, why in bad)
            raise StateError(f"no valid state in {self._dir}: {detail}", hint=_RECOVERY_HINT)
        state, slot = max(good, key=lambda pair: pair[0].seq)
        warnings = [f"{name} {why}; using {slot} (seq {state.seq})" for name, why in bad]
        return LoadedState(state, slot, tuple(warnings))

    def update(self, fn: Callable[[State], State]) -> State:
        """Apply `fn` to the current state and store the result, serialised against other writers.

        The result gets `seq` = old seq + 1 and goes to the slot not holding the current state.
        When `fn` returns an equal state nothing is written (and seq stays).
        """
        self._check_dir(create=True)
        self._require_writable()
        try:
            with fs.FileLock(self._path(LOCK), timeout=self.lock_timeout):
                loaded = self.load()
                new = fn(loaded.state)
                if new == loaded.state:
                    return loaded.state
                new = new.evolve(seq=loaded.state.seq + 1)
                target = SLOTS[1] if loaded.slot == SLOTS[0] else SLOTS[0]
                self._remove_stale_temporaries()
                fs.atomic_write(self._path(target), encode_slot(new), mode=0o600)
                return new
        except fs.UnsafeFileError as exc:
            raise StateError(exc.message, hint="remove it; bootguard recreates its lock file") from exc
        except OSError as exc:
            raise self._os_error("update the state in", exc) from exc

    def reset(self, *, force: bool = False) -> list[str]:
        """Move both state slots aside (`NAME.bad-<UTC time>`, never deleted) and start from an empty state.

        The way out when no valid slot is left (the hint of that error names `bootguard state reset`).
        A valid state is refused unless `force`. Returns the new names of the moved files.
        """
        import time

        from bootguard.errors import RefusedError

        if not self._check_dir(create=False):
            return []
        self._require_writable()
        try:
            with fs.FileLock(self._path(LOCK)):
                try:
                    loaded = self.load()
                except StateError:
                    loaded = None
                if loaded is not None and loaded.slot is not None and not force:
                    raise RefusedError(
                        f"the state in {self._dir} is valid ({loaded.slot}, seq {loaded.state.seq}); "
                        "nothing to recover",
                        hint="--force moves it aside anyway (the golden pin and any trial are forgotten)",
                    )
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                moved = []
                for name in SLOTS:
                    path = self._path(name)
                    if os.path.lexists(path):
                        os.rename(path, f"{path}.bad-{stamp}")
                        moved.append(f"{path}.bad-{stamp}")
                fs.fsync_dir(self._dir)
        except fs.UnsafeFileError as exc:
            raise StateError(exc.message, hint="remove it; bootguard recreates its lock file") from exc
        except OSError as exc:
            raise self._os_error("reset the state in", exc) from exc
        return moved

    # -- events ----------------------------------------------------------------------------

    def append_event(self, event: Event) -> None:
        """Append one event durably (O_APPEND, one write, fsync)."""
        self._append(_event_line(event))

    def append_events(self, events: Sequence[Event]) -> None:
        """Append several events durably with one write and one fsync.

        The early-boot step logs its decision's events together: each fsync is a flash write on the
        host's disk (milliseconds on eMMC or SD cards), paid on every boot. A power cut keeps a prefix
        of the lines; a torn last line stays one bad line (see `_append`).
        """
        if events:
            self._append(b"".join(_event_line(e) for e in events))

    def _append(self, line: bytes) -> None:
        """Write `line` (one or more whole event lines) at the end of the log, then fsync."""
        self._check_dir(create=True)
        flags = (
            os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
        )
        path = self._path(EVENTS)
        try:
            if _size(path) + len(line) > MAX_LOG_BYTES:
                self._rotate(len(line))
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise self._os_error("append to", exc, path) from exc
        try:
            st = os.fstat(fd)
            self._refuse_unsafe(st, path)
            # A crash mid-append can leave a line without its newline; start on a fresh line
            # so that the torn line stays one bad line instead of spoiling this event too.
            if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                line = b"\n" + line
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise self._os_error("append to", exc, path) from exc
        finally:
            os.close(fd)
        if st.st_size == 0:
            fs.fsync_dir(self._dir)  # a newly created log must survive a power cut too

    def _rotate(self, incoming: int) -> None:
        """events.jsonl → events.jsonl.1 (one atomic rename, replacing the older generation).

        Under the state lock, taken without waiting: a concurrent writer rotates instead, and the
        size is checked again under the lock so that two appenders never rotate twice in a row.
        """
        import fcntl

        try:
            fd = os.open(self._path(LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return  # rotation is housekeeping: the append itself must not fail over it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return
        try:
            if _size(self._path(EVENTS)) + incoming > MAX_LOG_BYTES:
                os.replace(self._path(EVENTS), self._path(ROTATED))
                fs.fsync_dir(self._dir)
        finally:
            os.close(fd)

    def read_events(self, limit: int | None = None) -> EventLog:
        """The last `limit` events (all when None), oldest first; damage is reported, not fatal.

        With a limit only the end of the log is read (`status` and `events --limit 3` stay fast on a
        huge log); without one, the rotated generation comes first.
        """
        if not self._check_dir(create=False):
            return EventLog()
        events: list[Event] = []
        warnings: list[str] = []
        for name in (EVENTS, ROTATED):
            if limit is not None and len(events) >= limit:
                break
            want = None if limit is None else limit - len(events)
            got, warned = self._read_log(name, want)
            events[:0] = got
            warnings[:0] = warned
        if limit is not None:
            events = events[-limit:] if limit > 0 else []
        return EventLog(tuple(events), tuple(warnings))

    def _read_log(self, name: str, want: int | None) -> tuple[list[Event], list[str]]:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            raise self._os_error("read", exc, path) from exc
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            self._refuse_unsafe(st, path)
            if want is None:
                return _parse_event_lines(f, name)
            return _tail_events(fd, st.st_size, want, name)

    # -- safety ----------------------------------------------------------------------------

    def _check_dir(self, *, create: bool) -> bool:
        """True when the directory exists (created 0700 if asked); StateError when it is unsafe."""
        try:
            st = os.stat(self._dir)
        except FileNotFoundError:
            if not create:
                return False
            self._create_dir()
            st = os.stat(self._dir)
        except OSError as exc:
            raise self._os_error("use", exc, self._dir) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise StateError(f"state directory {self._dir} is not a directory")
        problem = _dir_problem(st)
        if problem:
            raise StateError(
                f"state directory {self._dir} {problem}",
                hint=f"chown root:root {self._dir} && chmod 0700 {self._dir}",
            )
        return True

    def _create_dir(self) -> None:
        try:
            os.makedirs(os.path.dirname(self._dir) or ".", mode=0o755, exist_ok=True)
            os.makedirs(self._dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise self._os_error("create", exc, self._dir) from exc

    def _require_writable(self) -> None:
        # access(2) reports EROFS for a read-only mount even to root, whose writes a mode never stops.
        if not os.access(self._dir, os.W_OK):
            raise ReadOnlyError(
                f"state directory {self._dir} is not writable (read-only file system or permissions)",
                hint="bootguard needs a writable /var/lib/bootguard; check the mount and the directory mode",
            )

    def _read_private(self, name: str, max_bytes: int) -> bytes | None:
        path = self._path(name)
        try:
            result = fs.read_nofollow(path, max_bytes=max_bytes)
        except OSError as exc:
            raise self._os_error("read", exc, path) from exc
        if result is None:
            return None
        data, st = result
        self._refuse_unsafe(st, path)
        return data

    def _refuse_unsafe(self, st: os.stat_result, path: str) -> None:
        problem = fs.private_file_problem(st)
        if problem:
            raise StateError(
                f"{path} {problem}; refusing to use it",
                hint="bootguard's state files are private: remove the file and check who put it there",
            )

    def _remove_stale_temporaries(self) -> None:
        """Delete temporaries of writes that crashed (we hold the lock: none is in progress)."""
        for name in os.listdir(self._dir):
            if name.startswith(_TMP_PREFIXES):
                try:
                    os.unlink(self._path(name))  # unlink never follows a symlink
                except FileNotFoundError:
                    pass

    def _os_error(self, verb: str, exc: OSError, path: str | None = None) -> Exception:
        where = exc.filename or (path if path is not None else self._dir)
        if exc.errno == errno.ELOOP:
            return StateError(f"{where} is a symbolic link; refusing to follow it", hint="remove it")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return ReadOnlyError(f"cannot {verb} {where}: {os.strerror(exc.errno)}")
        return EnvironmentProblem(f"cannot {verb} {where}: {exc.strerror or exc}")


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _tail_events(fd: int, size: int, want: int, name: str) -> tuple[list[Event], list[str]]:
    """The last `want` events of a log, reading backwards from its end in growing chunks."""
    import io

    if want <= 0:
        return [], []
    start, chunk = size, _TAIL_CHUNK
    while True:
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        if start > 0:
            data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""  # a partial first line
        events, warnings = _parse_event_lines(io.BytesIO(data), f"{name} (end)")
        if len(events) >= want or start == 0:
            return events[-want:], warnings
        chunk *= 4


def _dir_problem(st: os.stat_result) -> str | None:
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not {os.geteuid()}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _event_line(event: Event) -> bytes:
    """The log line of `event`, shrunk (message cut, data dropped) if it would exceed MAX_EVENT_LINE."""
    line = event.to_json().encode("utf-8") + b"\n"
    if len(line) <= MAX_EVENT_LINE:
        return line
    short = event.evolve(message=event.message[:4096], data={"truncated_from_bytes": len(line)})
    return short.to_json().encode("utf-8")[: MAX_EVENT_LINE - 1] + b"\n"


def _parse_event_lines(f: BinaryIO, name: str) -> tuple[list[Event], list[str]]:
    """Parse a log stream; a torn last line and corrupt or overlong lines become warnings."""
    readline = f.readline
    events: list[Event] = []
    warnings: list[str] = []
    number = 0
    while True:
        raw: bytes = readline(MAX_EVENT_LINE + 1)
        if not raw:
            break
        number += 1
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_EVENT_LINE:
                warnings.append(f"{name} line {number} is longer than {MAX_EVENT_LINE} bytes; skipped")
                while raw and not raw.endswith(b"\n"):
                    raw = readline(MAX_EVENT_LINE + 1)
                continue
            warnings.append(f"{name} line {number} is incomplete (torn write, {len(raw)} bytes); ignored")
            break
        if not raw.strip():
            continue
        try:
            events.append(Event.from_json(raw, source=f"{name} line {number}"))
        except StateError as exc:
            warnings.append(f"{exc.message}; skipped")
    return events, warnings
