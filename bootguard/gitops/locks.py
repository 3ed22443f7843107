"""One lock for every GitOps run, so timer and manual runs of commit and upgrade never overlap.

A `flock(2)` on `<state-dir>/gitops.lock` (separate from the state store's `lock`, which guards
quick state writes and must never wait behind a 30-minute build). flock belongs to the open file
description, so a holder killed by SIGKILL releases it. The holder writes its pid, command and
start time into the file so that a second run can say who is busy. Standard library only.
"""

from __future__ import annotations

import errno
import os
import time

from bootguard.errors import EnvironmentProblem, StateError
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

LOCK_NAME = "gitops.lock"
DEFAULT_WAIT = 30.0
_POLL = 0.1


class GitopsLock:
    """`with GitopsLock(state_dir, "upgrade"):` holds the lock; EnvironmentProblem if it stays busy."""

    __slots__ = ("_fd", "path", "wait", "what")

    def __init__(self, state_dir: str | os.PathLike[str], what: str, *, wait: float | None = None) -> None:
        self.path = os.path.join(os.fspath(state_dir), LOCK_NAME)
        self.what = what
        self.wait = DEFAULT_WAIT if wait is None else wait
        self._fd: int | None = None

    def __enter__(self) -> GitopsLock:
        import fcntl

        fd = self._open()
        deadline = time.monotonic() + self.wait
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise EnvironmentProblem(
                            f"{self.path} is held by {_holder(fd)}; not starting bootguard {self.what}",
                            hint="wait for the other run to finish (timer and manual runs never overlap)",
                        ) from None
                    time.sleep(_POLL)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.what} {int(time.time())}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def _open(self) -> int:
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateError(f"{self.path} is a symbolic link; refusing to follow it") from exc
            raise EnvironmentProblem(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        problem = fs.private_file_problem(os.fstat(fd))
        if problem is not None:
            os.close(fd)
            raise StateError(
                f"{self.path} {problem}; refusing to use it", hint="remove it; bootguard recreates it"
            )
        return fd


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote ("PID COMMAND EPOCH")."""
    parts = os.pread(fd, 200, 0).decode("ascii", "replace").split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(parts[2])))
    return f"bootguard {parts[1]} (pid {parts[0]}, since {since})"
