"""The one subprocess seam: every external program (git, nix, bootctl, systemctl, …) runs through `run`.

argv lists only, never shell strings; stdin is /dev/null unless input is given; output is decoded
with surrogateescape so odd bytes never crash us. Tests patch `run` (or pass a fake runner) here
and nowhere else.
"""

from __future__ import annotations

import os
import signal
import subprocess

from bootguard.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class Completed:
    """The result of a finished command."""

    __slots__ = ("argv", "returncode", "stderr", "stdout")

    def __init__(self, argv: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __repr__(self) -> str:
        return f"Completed(argv={self.argv!r}, returncode={self.returncode})"


def _describe(argv: Sequence[str], returncode: int, stderr: str) -> str:
    name = os.path.basename(argv[0]) if argv else "?"
    if returncode == 127:
        return f"{name}: command not found"
    if returncode < 0:
        return f"{name} was killed by signal {-returncode}"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return f"{name} failed with exit status {returncode}" + (f": {last}" if last else "")


def _communicate(
    proc: subprocess.Popen[str], input: str | None, timeout: float | None, argv: tuple[str, ...], group: bool
) -> tuple[str, str]:
    try:
        return proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        # Kill the whole process group when asked: `sh -c 'a | b'` leaves grandchildren otherwise.
        if group:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.communicate()
        raise CommandError(f"{argv[0]} did not finish within {timeout:g} s", argv=argv) from exc


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    user: str | int | None = None,
    group: str | int | None = None,
    extra_groups: Sequence[str | int] | None = None,
    new_session: bool = False,
) -> Completed:
    """Run `argv`, capture its output, and raise `CommandError` on failure when `check`.

    `user`/`group`/`extra_groups` drop privileges for the child (e.g. git as a repository's owner:
    uid alone would leave root's gid and groups). `new_session` starts the command in its own
    session so that a timeout kills all its descendants.
    """
    args = tuple(str(a) for a in argv)
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="surrogateescape",
            user=user,
            group=group,
            extra_groups=list(extra_groups) if extra_groups is not None else None,
            start_new_session=new_session,
        )
    except FileNotFoundError as exc:
        if check:
            raise CommandError(f"{args[0]}: command not found", argv=args, returncode=127) from exc
        return Completed(args, 127, "", str(exc))
    stdout, stderr = _communicate(proc, input, timeout, args, new_session)
    done = Completed(args, proc.returncode, stdout, stderr)
    if check and not done.ok:
        raise CommandError(
            _describe(args, done.returncode, done.stderr),
            argv=args,
            returncode=done.returncode,
            stderr=done.stderr[-2000:],
        )
    return done
