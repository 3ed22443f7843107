"""One lock for every GitOps run, so timer and manual runs of commit and upgrade never overlap.

Two `flock(2)`s, taken in this order (so two runs never wait on each other crosswise):

- `<state-dir>/gitops.lock` (separate from the state store's `lock`, which guards quick state
  writes and must never wait behind a 30-minute build): runs sharing a state directory share
  gitops.json. The holder writes its pid, command and start time into it, so that a second run
  can say who is busy.
- the repository's work-tree directory itself: two runs on one repository with different state
  directories (a second unit, a manual `--state-dir`) must not interleave resets, rebases and
  commits. A directory lock needs no file inside the user's repository.

flock belongs to the open file description, so a holder killed by SIGKILL releases both.
Standard library only.
"""

from __future__ import annotations

import errno
import os
import time

from bootguard.errors import EnvironmentProblem, StateError
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

LOCK_NAME = "gitops.lock"
DEFAULT_WAIT = 30.0
_POLL = 0.1


class GitopsLock:
    """`with GitopsLock(state_dir, "upgrade"):` holds the lock; EnvironmentProblem if it stays busy."""

    __slots__ = ("_fd", "_repo_fd", "path", "repo", "wait", "what")

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        what: str,
        *,
        wait: float | None = None,
        repo: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = os.path.join(os.fspath(state_dir), LOCK_NAME)
        self.repo = os.path.realpath(os.fspath(repo)) if repo is not None else None
        self.what = what
        self.wait = DEFAULT_WAIT if wait is None else wait
        self._fd: int | None = None
        self._repo_fd: int | None = None

    def __enter__(self) -> GitopsLock:
        fd = self._open()
        deadline = time.monotonic() + self.wait
        try:
            _flock(fd, deadline, lambda: f"{self.path} is held by {_holder(fd)}", self.what)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.what} {int(time.time())}\n".encode(), 0)
            if self.repo is not None:
                self._repo_fd = _open_dir(self.repo)
                if self._repo_fd is not None:
                    _flock(
                        self._repo_fd,
                        deadline,
                        lambda: f"repository {self.repo} is in use by another bootguard run",
                        self.what,
                    )
        except BaseException:
            os.close(fd)
            if self._repo_fd is not None:
                os.close(self._repo_fd)
                self._repo_fd = None
            raise
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for fd in (self._repo_fd, self._fd):
            if fd is not None:
                os.close(fd)  # closing the only descriptor releases the flock
        self._fd = self._repo_fd = None

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


def _flock(fd: int, deadline: float, busy: Callable[[], str], what: str) -> None:
    import fcntl

    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise EnvironmentProblem(
                    f"{busy()}; not starting bootguard {what}",
                    hint="wait for the other run to finish (timer and manual runs never overlap)",
                ) from None
            time.sleep(_POLL)


def _open_dir(path: str) -> int | None:
    """A descriptor of the repository directory to flock; None if it is missing (git reports that)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise EnvironmentProblem(f"cannot open {path} to lock it: {exc.strerror or exc}") from exc


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote ("PID COMMAND EPOCH")."""
    parts = os.pread(fd, 200, 0).decode("ascii", "replace").split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(parts[2])))
    return f"bootguard {parts[1]} (pid {parts[0]}, since {since})"
