"""The one subprocess seam: every external program (git, nix, bootctl, systemctl, …) runs through `run`.

argv lists only, never shell strings; stdin is /dev/null unless input is given; output is decoded
with surrogateescape so odd bytes never crash us. Tests patch `run` (or pass a fake runner) here
and nowhere else.

Three hostile behaviours are bounded here, for every caller:

- The end of a command is its exit, not the end of its output: a check that exits 0 while a
  background child keeps stdout open is done (its output is drained for at most `_DRAIN` more
  seconds), not timed out.
- Output is kept as head and tail (`max_output` bytes per stream), marked as truncated: a check
  that prints 100 MB costs a few hundred KiB, not 400 MB.
- With `new_session`, a timeout kills the whole session and process group, every descendant still
  linked to the command, and every process carrying the run's `BOOTGUARD_RUN` environment token —
  also a grandchild that left with `setsid` and was reparented. The caller becomes a child
  subreaper (prctl PR_SET_CHILD_SUBREAPER) so such orphans are reparented to us and reaped.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from bootguard.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_MAX_OUTPUT = 16 << 20  # bytes kept per stream unless the caller says otherwise
RUN_TOKEN_ENV = "BOOTGUARD_RUN"
# How long output is still read after the command exited (a background child may hold the pipe).
_DRAIN = 0.5
_CHUNK = 65536
_PR_SET_CHILD_SUBREAPER = 36


class Completed:
    """The result of a finished command."""

    __slots__ = ("argv", "returncode", "stderr", "stdout", "stdout_bytes", "truncated")

    def __init__(
        self,
        argv: tuple[str, ...],
        returncode: int,
        stdout: str,
        stderr: str,
        stdout_bytes: bytes | None = None,
        *,
        truncated: bool = False,
    ) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        # The exact bytes of stdout (no newline translation), for callers that read binary data.
        raw = stdout.encode("utf-8", "surrogateescape") if stdout_bytes is None else stdout_bytes
        self.stdout_bytes = raw
        self.truncated = truncated

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


class _Capture:
    """One output stream, kept as its first and last `limit / 2` bytes."""

    __slots__ = ("head", "limit", "tail", "total")

    def __init__(self, limit: int) -> None:
        self.limit = max(2, limit)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        half = self.limit // 2
        if len(self.head) < half:
            take = half - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.limit - half:
                del self.tail[: len(self.tail) - (self.limit - half)]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def value(self) -> bytes:
        if not self.truncated:
            return bytes(self.head + self.tail)
        cut = self.total - len(self.head) - len(self.tail)
        return bytes(self.head) + f"\n[… {cut} bytes of output truncated …]\n".encode() + bytes(self.tail)


def _text(data: bytes) -> str:
    """Decoded like text=True did: surrogateescape, universal newlines."""
    return data.decode("utf-8", "surrogateescape").replace("\r\n", "\n").replace("\r", "\n")


def _become_subreaper() -> None:
    """Orphaned descendants of our commands are reparented to us, not to init (Linux ≥ 3.4)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux, or no libc symbol: the group and token kills still apply


def _processes() -> list[tuple[int, int, int, int]]:
    """(pid, ppid, pgid, sid) of every visible process."""
    rows = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 4 and fields[0] != b"Z":
            rows.append((int(name), int(fields[1]), int(fields[2]), int(fields[3])))
    return rows


def _has_token(pid: int, token: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return token in f.read().split(b"\0")
    except OSError:
        return False


def _kill_all(leader: int, token: str) -> None:
    """SIGKILL the command's session, group, descendants and every process carrying its token."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(leader, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    me = os.getpid()
    marker = f"{RUN_TOKEN_ENV}={token}".encode()
    for _round in range(3):  # a fork racing the first round is caught by the next
        rows = _processes()
        children: dict[int, list[int]] = {}
        for pid, ppid, _pgid, _sid in rows:
            children.setdefault(ppid, []).append(pid)
        doomed = {pid for pid, _ppid, pgid, sid in rows if leader in (pgid, sid)}
        doomed |= {pid for pid, _p, _g, _s in rows if pid != me and _has_token(pid, marker)}
        stack = [leader, *doomed]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in doomed:
                    doomed.add(child)
                    stack.append(child)
        doomed.discard(me)
        if not doomed:
            return
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap(doomed - {leader}, me)


def _reap(killed: set[int], me: int) -> None:
    """Reap killed orphans reparented to us (we are their subreaper); only ours: a sibling
    command's leader is waited for by its own Popen."""
    time.sleep(0.01)
    for pid in killed:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            if ppid == me:
                os.waitpid(pid, os.WNOHANG)
        except (OSError, ValueError, IndexError):
            continue


def _pump(
    proc: subprocess.Popen[bytes], input: bytes | None, timeout: float | None, limit: int
) -> tuple[_Capture, _Capture, bool]:
    """Feed stdin, collect output, until the process exits (then drain briefly) or the timeout."""
    out, err = _Capture(limit), _Capture(limit)
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    pending = memoryview(input) if input is not None else None
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE, None)
    end = None if timeout is None else time.monotonic() + timeout
    exited_at: float | None = None
    try:
        while sel.get_map():
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= _DRAIN:
                break  # exited; whoever still holds the pipe is not waited for
            if exited_at is None and end is not None and now >= end:
                return out, err, True
            wait = 0.05 if exited_at is None else _DRAIN - (now - exited_at)
            if end is not None and exited_at is None:
                wait = min(wait, max(0.0, end - now))
            for key, _mask in sel.select(wait):
                if key.data is None:  # stdin
                    assert pending is not None and proc.stdin is not None
                    try:
                        sent = os.write(proc.stdin.fileno(), pending[:_CHUNK])
                    except (BrokenPipeError, BlockingIOError) as exc:
                        sent = 0 if isinstance(exc, BlockingIOError) else len(pending)
                    pending = pending[sent:]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if chunk:
                    key.data.add(chunk)
                else:
                    sel.unregister(key.fileobj)
    finally:
        sel.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
    return out, err, False


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
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> Completed:
    """Run `argv`, capture its output, and raise `CommandError` on failure when `check`.

    `user`/`group`/`extra_groups` drop privileges for the child (e.g. git as a repository's owner:
    uid alone would leave root's gid and groups). `new_session` starts the command in its own
    session so that a timeout kills all its descendants. At most `max_output` bytes of each
    stream are kept (head and tail; `Completed.truncated` says when some were dropped).
    """
    args = tuple(str(a) for a in argv)
    child_env = dict(os.environ if env is None else env)
    token = ""
    if new_session:
        _become_subreaper()
        token = f"{os.getpid()}-{time.monotonic_ns()}-{id(args)}"
        child_env[RUN_TOKEN_ENV] = token
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=child_env if (env is not None or new_session) else None,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            user=user,
            group=group,
            extra_groups=list(extra_groups) if extra_groups is not None else None,
            start_new_session=new_session,
        )
    except FileNotFoundError as exc:
        if check:
            raise CommandError(f"{args[0]}: command not found", argv=args, returncode=127) from exc
        return Completed(args, 127, "", str(exc))
    try:
        data = input.encode("utf-8", "surrogateescape") if input is not None else None
        out, err, timed_out = _pump(proc, data, timeout, max_output)
    except BaseException:
        _stop(proc, new_session, token)
        raise
    if timed_out:
        _stop(proc, new_session, token)
        assert timeout is not None
        raise CommandError(f"{args[0]} did not finish within {timeout:g} s", argv=args)
    proc.wait()
    raw_out = out.value()
    done = Completed(
        args,
        proc.returncode,
        _text(raw_out),
        _text(err.value()),
        raw_out,
        truncated=out.truncated or err.truncated,
    )
    if check and not done.ok:
        raise CommandError(
            _describe(args, done.returncode, done.stderr),
            argv=args,
            returncode=done.returncode,
            stderr=done.stderr[-2000:],
        )
    return done


def _stop(proc: subprocess.Popen[bytes], group: bool, token: str) -> None:
    """Kill the command (and with `group` everything it started) and reap it."""
    if group:
        _kill_all(proc.pid, token)
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()
