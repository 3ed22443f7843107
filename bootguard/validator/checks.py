"""One probe per check kind: a single attempt, bounded by `timeout`, answering pass or fail + why.

Probes never raise for an unhealthy system: a refused connection, a failed unit or a non-zero exit
is a `Probe(ok=False, …)`. External programs (systemctl, ping, commands, drop-in scripts) run only
through the subprocess seam, whose timeout kills the whole process group: a hung check cannot
outlive its attempt.
"""

from __future__ import annotations

import os
import socket

import attrs

from bootguard.errors import CommandError
from bootguard.seams import proc
from bootguard.validator import spec as s

# A check's output only feeds a one-line message: keep 64 KiB of head and tail, never 100 MB.
_MAX_OUTPUT = 65536


@attrs.frozen
class Probe:
    """The outcome of one attempt."""

    ok: bool
    message: str
    timed_out: bool = False

    @classmethod
    def passed(cls, message: str) -> Probe:
        return cls(True, message)

    @classmethod
    def failed(cls, message: str) -> Probe:
        return cls(False, message)

    @classmethod
    def timeout(cls, message: str) -> Probe:
        return cls(False, message, timed_out=True)


def probe(check: s.CheckSpec, timeout: float) -> Probe:
    """Run one attempt of `check` within `timeout` seconds."""
    t = check.target
    match t:
        case s.CommandTarget():
            return _command(t.argv, timeout)
        case s.ScriptTarget():
            argv = (t.interpreter, t.path) if t.interpreter else (t.path,)
            return _command(argv, timeout)
        case s.TcpTarget():
            return _tcp(t, timeout)
        case s.HttpTarget():
            return _http(t, timeout)
        case s.DnsTarget():
            return _dns(t)
        case s.PingTarget():
            return _ping(t, timeout)
        case s.UnitTarget():
            return _unit(t, timeout)
        case s.NoFailedUnitsTarget():
            return _no_failed_units(t, timeout)
        case s.PathTarget():
            return _path(t)
        case s.DiskTarget():
            return _disk(t)


def _last_line(*texts: str) -> str:
    for text in texts:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        if lines:
            return lines[-1][:300]
    return ""


def _command(argv: tuple[str, ...], timeout: float) -> Probe:
    try:
        done = proc.run(argv, check=False, timeout=timeout, new_session=True, max_output=_MAX_OUTPUT)
    except CommandError as exc:  # with check=False only a timeout raises; the seam killed the child
        return Probe.timeout(exc.message)
    name = os.path.basename(argv[-1] if len(argv) == 2 and argv[0] == "/bin/bash" else argv[0])
    tail = _last_line(done.stderr, done.stdout)
    if done.ok:
        return Probe.passed(tail or f"{name} exited 0")
    if done.returncode == 127:
        return Probe.failed(f"{name}: command not found")
    if done.returncode < 0:
        return Probe.failed(f"{name} was killed by signal {-done.returncode}")
    return Probe.failed(f"{name} exited {done.returncode}" + (f": {tail}" if tail else ""))


def _tcp(t: s.TcpTarget, timeout: float) -> Probe:
    try:
        with socket.create_connection((t.host, t.port), timeout=timeout):
            return Probe.passed(f"{t.host}:{t.port} accepts connections")
    except TimeoutError:
        return Probe.timeout(f"{t.host}:{t.port}: no answer within {timeout:g} s")
    except OSError as exc:
        return Probe.failed(f"{t.host}:{t.port}: {exc.strerror or exc}")


def _http(t: s.HttpTarget, timeout: float) -> Probe:
    import ssl
    import urllib.error
    import urllib.request

    context = ssl._create_unverified_context() if t.insecure else None
    request = urllib.request.Request(t.url, method="GET", headers={"User-Agent": "bootguard-validator"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except urllib.error.URLError as exc:
        return Probe.failed(f"GET {t.url}: {exc.reason}")
    except (OSError, ValueError) as exc:  # timeouts, resets, malformed URLs
        return Probe.failed(f"GET {t.url}: {exc}")
    expected = ", ".join(str(c) for c in t.expect)
    if status in t.expect:
        return Probe.passed(f"GET {t.url}: {status}")
    return Probe.failed(f"GET {t.url}: status {status}, expected {expected}")


def _dns(t: s.DnsTarget) -> Probe:
    # getaddrinfo has no timeout of its own; the runner abandons the attempt at its timeout.
    try:
        infos = socket.getaddrinfo(t.name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        return Probe.failed(f"{t.name} does not resolve: {exc.strerror}")
    except UnicodeError as exc:
        return Probe.failed(f"{t.name} is not a valid host name: {exc}")
    addresses = sorted({str(info[4][0]) for info in infos})
    return Probe.passed(f"{t.name} resolves to {', '.join(addresses[:4])}")


def _ping(t: s.PingTarget, timeout: float) -> Probe:
    wait = max(1, int(timeout))
    try:
        done = proc.run(["ping", "-c", "1", "-W", str(wait), "--", t.host], check=False, timeout=timeout + 1)
    except CommandError as exc:
        return Probe.timeout(exc.message)
    if done.ok:
        return Probe.passed(f"{t.host} answers ping")
    if done.returncode == 127:
        return Probe.failed("ping: command not found (install iputils-ping)")
    return Probe.failed(
        f"{t.host} does not answer ping" + (f": {_last_line(done.stderr)}" if done.stderr else "")
    )


def _unit(t: s.UnitTarget, timeout: float) -> Probe:
    try:
        done = proc.run(["systemctl", "is-active", "--", t.unit], check=False, timeout=timeout)
    except CommandError as exc:
        return Probe.timeout(exc.message)
    state = done.stdout.strip() or _last_line(done.stderr) or "unknown"
    if done.ok and state == "active":
        return Probe.passed(f"{t.unit} is active")
    return Probe.failed(f"{t.unit} is {state}")


def _no_failed_units(t: s.NoFailedUnitsTarget, timeout: float) -> Probe:
    argv = ["systemctl", "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager"]
    try:
        done = proc.run(argv, check=False, timeout=timeout)
    except CommandError as exc:
        return Probe.timeout(exc.message)
    if not done.ok:
        return Probe.failed(f"systemctl list-units failed: {_last_line(done.stderr) or done.returncode}")
    failed = []
    for line in done.stdout.splitlines():
        fields = line.split()
        # Older systemctl prefixes the unit with a "●" bullet even with --plain.
        if fields and fields[0] == "●":
            fields = fields[1:]
        if fields and fields[0] not in t.ignore:
            failed.append(fields[0])
    if failed:
        return Probe.failed(f"{len(failed)} failed unit(s): {', '.join(failed[:10])}")
    return Probe.passed("no failed units")


def _path(t: s.PathTarget) -> Probe:
    if os.path.exists(t.path):
        return Probe.passed(f"{t.path} exists")
    return Probe.failed(f"{t.path} does not exist")


def _disk(t: s.DiskTarget) -> Probe:
    try:
        st = os.statvfs(t.path)
    except OSError as exc:
        return Probe.failed(f"{t.path}: {exc.strerror}")
    free = st.f_bavail * st.f_frsize
    total = st.f_blocks * st.f_frsize
    free_mb = free / 2**20
    percent = 100.0 * free / total if total else 0.0
    what = f"{t.path}: {free_mb:.0f} MiB ({percent:.1f}%) free"
    if t.min_free_mb is not None and free_mb < t.min_free_mb:
        return Probe.failed(f"{what}, below {t.min_free_mb:g} MiB")
    if t.min_free_percent is not None and percent < t.min_free_percent:
        return Probe.failed(f"{what}, below {t.min_free_percent:g}%")
    return Probe.passed(what)
