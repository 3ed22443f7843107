"""File-system seam: atomic writes, directory fsync, syncfs, no-replace renames, locks, safe reads.

The write sequence is the one systemd and every careful tool use: a temporary file in the same
directory, write, fsync, rename over the target, fsync the directory. Each step is a named point
that tests can fail on (see `tests/unit/test_powercut.py`), so a power cut after any step leaves the
old or the new content, never anything else. Standard library only (early boot).
"""

from __future__ import annotations

import errno
import os
import stat

from bootguard.errors import BootguardError, ReadOnlyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Callable

# Test hook: called with the name of each step of `atomic_write` just before it runs.
# Production code leaves it None. Tests raise from it to simulate a crash at that point.
step_hook: Callable[[str], None] | None = None

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _libc() -> ctypes.CDLL:
    # ctypes is imported only when a rename or syncfs needs it: it is costly on the early-boot path.
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


def clean_path(path: str | os.PathLike[str]) -> str:
    """`str(Path(path))` without importing pathlib (≈6 ms at early boot, see issue 5).

    The same normalisation: doubled slashes, trailing slashes and "." parts go, ".." stays (unlike
    os.path.normpath), a leading "//" is kept as POSIX allows, and the empty path is ".".
    """
    text = os.fspath(path)
    if text.startswith("/"):
        root = "//" if text.startswith("//") and not text.startswith("///") else "/"
    else:
        root = ""
    return root + "/".join(p for p in text.split("/") if p not in ("", ".")) or "."


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that a rename or create inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # FAT and some FUSE file systems reject fsync on directories; the syncfs that follows
        # ESP changes covers them.
        if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def syncfs(path: str | os.PathLike[str]) -> None:
    """syncfs(2) the file system holding `path` (the ESP's FAT needs it for renames to persist)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = _libc()
        if libc.syncfs(fd) != 0:
            err = _errno()
            raise OSError(err, os.strerror(err), str(path))
    except AttributeError:  # no syncfs symbol (non-glibc): fall back to a global sync
        os.sync()
    finally:
        os.close(fd)


def rename_noreplace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rename `src` to `dst`, failing with FileExistsError if `dst` exists (renameat2 NOREPLACE).

    Falls back to link-free check-then-rename where renameat2 is unsupported (vfat supports it
    since Linux 6.0; older kernels return EINVAL), which is what systemd-bless-boot does too.
    """
    libc = _libc()
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        rc = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = _errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), os.fsdecode(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(dst))
    os.rename(src, dst)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically and durably."""
    target = clean_path(path)  # strings, not pathlib: the state store calls this at early boot
    directory, _, name = target.rpartition("/")
    directory = directory or ("/" if target.startswith("/") else ".")
    tmp = os.path.join(directory, f".{name}.tmp.{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        _step("open")
        fd = os.open(tmp, flags, mode)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise ReadOnlyError(f"cannot write {target}: the file system is read-only") from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise BootguardError(f"cannot write {target}: permission denied") from exc
        raise
    try:
        _step("write")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        _step("fsync")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    _step("rename")
    os.rename(tmp, target)
    _step("fsync-dir")
    fsync_dir(directory)
    _step("done")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_nofollow(path: str | os.PathLike[str], *, max_bytes: int) -> tuple[bytes, os.stat_result] | None:
    """Read a file without following a symlink at its last component; None when it does not exist.

    Returns the content and the `fstat` of the opened file, so that callers check ownership and
    mode on the very file they read (no check-then-open race). O_NONBLOCK keeps a planted FIFO
    from hanging us; anything that is not a regular file is returned unread (empty content) for
    the caller to reject by its stat. A symlink raises OSError(ELOOP). Reads at most
    `max_bytes + 1` bytes so callers can tell "too large" apart.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b"", st
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def private_file_problem(st: os.stat_result) -> str | None:
    """Why a file is unsafe to trust as private state, or None when it is fine.

    Private state must be a regular file owned by us and not writable by anyone else: otherwise
    another user could forge boot counters or the golden generation.
    """
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not {os.geteuid()}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


class FileLock:
    """An exclusive `flock` on a lock file, held for the duration of a `with` block.

    flock (not fcntl record locks) because it belongs to the open file description, so it is
    released when the holder dies, even by SIGKILL, and it is not dropped when some other code
    in the same process closes an unrelated descriptor for the same file.
    """

    __slots__ = ("_fd", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        import fcntl

        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
        fd = os.open(self.path, flags, 0o600)
        try:
            problem = private_file_problem(os.fstat(fd))
            if problem is not None:
                raise UnsafeFileError(self.path, problem)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


class UnsafeFileError(BootguardError):
    """A file that must be private is a symlink, not regular, foreign-owned or writable by others."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}; refusing to use it")
        self.path = path
        self.problem = problem


def copy_durably(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, mode: int = 0o644) -> None:
    """Copy a file to `dst` atomically (temp file, fsync, rename, directory fsync)."""
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fsdecode(src))
        copy_fd_durably(fd, dst, mode=mode)
    finally:
        os.close(fd)


def copy_fd_durably(src_fd: int, dst: str | os.PathLike[str], *, mode: int = 0o644) -> None:
    """Copy the open file `src_fd` to `dst` atomically, with exactly `mode` whatever the umask.

    On any failure (ENOSPC mid-copy included) the temporary file is removed: no partial copy stays.
    """
    dst = os.fspath(dst)
    tmp = f"{dst}.tmp.{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(tmp, flags, mode)
    try:
        os.fchmod(out, mode)  # the umask may have narrowed or (umask 000) nothing to narrow: be exact
        offset = 0
        while True:
            chunk = os.pread(src_fd, 1 << 20, offset)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
            offset += len(chunk)
        os.fsync(out)
    except BaseException:
        os.close(out)
        _unlink_quietly(tmp)
        raise
    os.close(out)
    try:
        os.replace(tmp, dst)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(dst) or ".")
