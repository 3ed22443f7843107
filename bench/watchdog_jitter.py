"""Benchmark: keepalive jitter, RSS and CPU of the watchdog daemon, for both backends.

For each backend (cffi with its native pinger thread, pure Python) and each scenario (idle, and
both cores saturated by CPU hogs this script starts and stops), a daemon process runs the real
keepalive loop (`bootguard.services.keepalive.Keepalive`, SCHED_RR and mlockall where permitted)
at a 1 s interval for --duration seconds. Measured:
- the largest gap between consecutive pings (target ≤ interval + 50 ms under load);
- the daemon's RSS at the end (target ≤ 15 MB) and its CPU over the window (target ≤ 0.5 % of a core).

Pings go by default to a FIFO stand-in: the daemon pings by write(), this process timestamps each
write as it arrives (so the gap includes the receiver's wake-up). With --device the pings go to a
real watchdog instead (it gets armed and is disarmed at the end) and the gaps are the daemon's own
timestamps. Run `python3 c_ext/watchdog_build.py` first for the cffi figures.

Bounded and crash-free (issue 15): the whole run fits --budget seconds (runs are shortened to fit
and say so); a daemon that does not start, stop or answer in time is killed and its row says why;
a stand-in reader that went away (Broken pipe at the magic close) is reported, not a traceback.
"""

from __future__ import annotations

import argparse
import itertools
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # no pathlib: keep the child lean
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

RSS_TARGET_MB = 15.0
CPU_TARGET_PCT = 0.5
GAP_SLACK_S = 0.050
DRAIN_S = 10.0  # how long the receiver waits for the daemon's magic close after SIGTERM
STOP_S = 15.0  # how long the daemon gets to exit after SIGTERM before it is killed


# --------------------------------------------------------------------------- the daemon side


def serve(path: str, interval: float, timeout: int, stand_in: bool) -> int:
    """Child process: run the keepalive loop on `path` until SIGTERM, then print its own view.

    It imports no more than the daemon does (subprocess, tempfile live in the measuring side)."""
    import json

    from bootguard.seams.sdnotify import NullNotifySocket
    from bootguard.seams.watchdog import PingMode, WatchdogDevice
    from bootguard.services.keepalive import Keepalive, KeepaliveConfig, StopSignal

    stamps: list[float] = []

    class Measured(WatchdogDevice):
        """The real device class, timestamping Python-side pings; a FIFO has no ioctls to ask."""

        def keepalive(self) -> None:
            super().keepalive()
            stamps.append(time.monotonic())

        def get_timeout(self) -> int:
            return timeout if stand_in else super().get_timeout()

        def set_timeout(self, seconds: int) -> int:
            return seconds if stand_in else super().set_timeout(seconds)

    stop = StopSignal().install()
    mode = PingMode.WRITE if stand_in else PingMode.AUTO
    plain = WatchdogDevice.open(path, ping_mode=mode)
    device = Measured(plain.path, plain.fd, plain._ops, sysfs_path=plain.sysfs_path, ping_mode=mode)
    config = KeepaliveConfig(timeout=timeout, interval=interval, stall_limit=3 * interval)
    pinger_gap: list[int] = []
    original = device.start_pinger

    def start_pinger(*, interval: float, stall_limit: float) -> object:
        pinger = original(interval=interval, stall_limit=stall_limit)
        if pinger is not None:
            real_stop = pinger.stop

            def stop_and_record() -> None:
                pinger_gap.append(pinger.stats().max_gap_ns)
                real_stop()

            pinger.stop = stop_and_record  # type: ignore[method-assign]
        return pinger

    device.start_pinger = start_pinger  # type: ignore[assignment,method-assign]
    from bootguard.errors import BootguardError

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    keepalive = Keepalive(device, config, notifier=NullNotifySocket(), log=log)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    try:
        report = keepalive.run(stop)
    except (BootguardError, OSError) as exc:
        # e.g. Broken pipe at the magic close: the stand-in's reader went away first. A result, not a crash.
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        print(
            json.dumps({"error": str(exc), "pings": len(stamps), "own_max_gap": max(gaps) if gaps else None})
        )
        return 0
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    print(
        json.dumps(
            {
                "backend": report.backend,
                "realtime": report.realtime,
                "memory": report.memory,
                "pings": report.pings,
                "own_max_gap": (pinger_gap[0] / 1e9) if pinger_gap else (max(gaps) if gaps else None),
            }
        ),
        flush=True,
    )
    return 0


# --------------------------------------------------------------------------- the measuring side


def _proc_cpu_seconds(pid: int) -> float:
    """CPU time of all threads of `pid` in ns resolution (schedstat), not in 10 ms clock ticks."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:  # the daemon is gone (it failed to start): no figure, no crash
        return float("nan")
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return total / 1e9


def _proc_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def _read(fd: int) -> bytes | None:
    """What the FIFO holds now (b"" at EOF), None when nothing is there yet (non-blocking reader)."""
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return None


def _receive(fd: int, until: float) -> list[float]:
    """Timestamps of ping writes arriving on the FIFO until `until` (monotonic)."""
    stamps: list[float] = []
    while (left := until - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        data = _read(fd)
        if data is None:
            continue
        if not data:
            break
        now = time.monotonic()
        stamps.extend(now for b in data if b == 0)
    return stamps


def _discard_pending(fd: int) -> None:
    while select.select([fd], [], [], 0)[0] and _read(fd):
        pass


def _python(no_site: bool) -> tuple[list[str], dict[str, str]]:
    """Interpreter argv and environment for children; with no_site, site-packages is put on the
    path directly so no .pth file runs (what this machine's .pth files import inflates every RSS)."""
    import sysconfig

    paths = [ROOT]
    if no_site:
        paths += [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return [sys.executable, *(["-S"] if no_site else [])], env


def _baseline_rss(no_site: bool) -> float:
    """RSS of a bare interpreter started the same way, sleeping: what the daemon adds is the rest."""
    import subprocess

    argv, env = _python(no_site)
    proc = subprocess.Popen([*argv, "-c", "import time; time.sleep(30)"], env=env)
    try:
        time.sleep(1.0)
        return _proc_rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def _drain_until_eof(fd: int, limit: float) -> bytes:
    out = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = _read(fd)
            if chunk is None:
                continue
            if not chunk:
                break
            out += chunk
    return out


def measure(backend: str, load: bool, args: argparse.Namespace) -> dict[str, object]:
    import json
    import subprocess
    import tempfile

    python, env = _python(args.no_site)
    env.pop("BOOTGUARD_REQUIRE_NATIVE", None)
    if backend == "python":
        env["BOOTGUARD_NO_NATIVE"] = "1"
    else:
        env["BOOTGUARD_REQUIRE_NATIVE"] = "1"
        env.pop("BOOTGUARD_NO_NATIVE", None)
    with tempfile.TemporaryDirectory() as tmp:
        target = args.device or os.path.join(tmp, "watchdog-stand-in")
        if not args.device:
            os.mkfifo(target)
        argv = [*python, __file__, "--serve", target, "--interval", str(args.interval)]
        argv += ["--timeout", str(args.timeout)] + ([] if args.device else ["--stand-in"])
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        # Non-blocking: a daemon that dies before opening the FIFO must not hang this open(); the
        # receiver's own write end keeps the FIFO from reading as EOF until the daemon is there.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK) if not args.device else -1
        keep = os.open(target, os.O_WRONLY | os.O_NONBLOCK) if fd >= 0 else -1
        hogs: list[subprocess.Popen[bytes]] = []
        try:
            time.sleep(args.interval * 1.5)  # start-up (imports, mlockall) is not steady state
            hogs = _start_hogs(os.cpu_count() or 2) if load else []
            if fd >= 0:
                _discard_pending(fd)  # start-up pings queued in the FIFO are not part of the window
            cpu0, t0 = _proc_cpu_seconds(child.pid), time.monotonic()
            if fd >= 0:
                stamps = _receive(fd, t0 + args.duration)
            else:
                time.sleep(args.duration)
                stamps = []
            cpu = (_proc_cpu_seconds(child.pid) - cpu0) / (time.monotonic() - t0) * 100
            rss = _proc_rss_mb(child.pid)
        finally:
            _stop(hogs)
            if keep >= 0:
                os.close(keep)
            if args.drain < 0 and fd >= 0:  # tests: the reader goes away first, pings then hit EPIPE
                os.close(fd)
                fd = -1
                time.sleep(2 * args.interval)
            child.send_signal(signal.SIGTERM)
        tail = _drain_until_eof(fd, args.drain) if fd >= 0 else b""
        try:
            out, _ = child.communicate(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
            out += "\n" + json.dumps(
                {"error": f"the daemon did not stop within {STOP_S:g} s of SIGTERM; killed"}
            )
        if fd >= 0:
            os.close(fd)
    try:
        own = (
            json.loads(out.strip().splitlines()[-1])
            if out.strip()
            else {"error": "the daemon printed no report"}
        )
    except ValueError:
        own = {"error": "the daemon's report is not JSON"}
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "backend": backend,
        "scenario": "2 CPU hogs" if load else "idle",
        "pings": len(stamps) if not args.device else own.get("pings"),
        "max_gap": max(gaps) if gaps else None,
        "own_max_gap": own.get("own_max_gap"),
        "rss_mb": rss,
        "cpu_pct": cpu,
        "disarmed": tail.endswith(b"V") if tail else None,
        "realtime": own.get("realtime"),
        "memory": own.get("memory"),
        "error": own.get("error"),
    }


def _fmt_gap(value: object) -> str:
    return f"{float(value) * 1000:8.1f}" if isinstance(value, float) else "       -"


def _print(rows: list[dict[str, object]], args: argparse.Namespace) -> bool:
    where = args.device or "a FIFO stand-in (daemon pings by write; gaps timestamped on arrival)"
    print(f"keepalive jitter: {args.duration:g} s per run at {args.interval:g} s interval; pings to {where}")
    print(
        f"targets: max gap ≤ interval + {GAP_SLACK_S * 1000:.0f} ms, RSS ≤ {RSS_TARGET_MB:g} MB, "
        f"CPU ≤ {CPU_TARGET_PCT:g} % of a core"
    )
    base = _baseline_rss(args.no_site)
    print(
        f"interpreter{' (-S)' if args.no_site else ''}: a bare `python3 -c sleep` has RSS {base:.1f} MB here"
    )
    print(
        f"{'backend':8} {'scenario':11} {'pings':>5} {'max gap ms':>10} {'own gap ms':>10} "
        f"{'RSS MB':>7} {'+interp':>7} {'CPU %':>6}  ok"
    )
    all_ok = True
    for r in rows:
        gap = r["max_gap"] if r["max_gap"] is not None else r["own_max_gap"]
        ok = (
            isinstance(gap, float)
            and gap <= args.interval + GAP_SLACK_S
            and float(str(r["rss_mb"])) <= RSS_TARGET_MB
            and float(str(r["cpu_pct"])) <= CPU_TARGET_PCT
        )
        all_ok = all_ok and ok
        if r.get("error"):
            print(f"{r['backend']:8} {r['scenario']:11} failed: {r['error']}")
            continue
        print(
            f"{r['backend']:8} {r['scenario']:11} {r['pings']!s:>5} {_fmt_gap(r['max_gap']):>10} "
            f"{_fmt_gap(r['own_max_gap']):>10} {float(str(r['rss_mb'])):7.1f} "
            f"{float(str(r['rss_mb'])) - base:+7.1f} {float(str(r['cpu_pct'])):6.3f}  "
            f"{'yes' if ok else 'NO'}"
        )
    for r in [r for r in rows if r.get("realtime")][:1]:
        print(f"daemon: {r['realtime']}; memory {r['memory']}")
    print(
        f"magic close seen at the end of every stand-in run: {all(r['disarmed'] is not False for r in rows)}"
    )
    return all_ok


def _native_available() -> bool:
    import subprocess

    probe = subprocess.run(
        [sys.executable, "-c", "import bootguard._native_wd"],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run (default 60)")
    ap.add_argument("--interval", type=float, default=1.0, help="ping interval (default 1 s)")
    ap.add_argument("--timeout", type=int, default=10, help="watchdog timeout to set (default 10 s)")
    ap.add_argument("--device", help="ping a real watchdog device instead of the FIFO stand-in")
    ap.add_argument("--backends", default="cffi,python", help="comma-separated (default cffi,python)")
    # A host runs the daemon from its packaged interpreter; this sandbox's site-packages carries .pth
    # hooks that import several MB into every interpreter (13.3 vs 8.2 MB bare), so by default the
    # daemon and its baseline start with -S and site-packages on PYTHONPATH; --site measures with them.
    ap.add_argument(
        "--site", dest="no_site", action="store_false", help="run the .pth hooks of site-packages too"
    )
    ap.add_argument("--no-site", dest="no_site", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--budget", type=float, default=170.0, help="seconds for the whole benchmark (default 170)"
    )
    ap.add_argument("--serve", metavar="PATH", help=argparse.SUPPRESS)
    ap.add_argument("--drain", type=float, default=DRAIN_S, help=argparse.SUPPRESS)  # tests: < 0 = EPIPE
    ap.add_argument("--stand-in", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve, args.interval, args.timeout, args.stand_in)
    backends = [b for b in args.backends.split(",") if b]
    if "cffi" in backends and not _native_available():
        print(
            "cffi backend not built (python3 c_ext/watchdog_build.py): measuring python only", file=sys.stderr
        )
        backends.remove("cffi")
    try:
        # RESET_ON_FORK: the hogs and the daemon start as normal tasks (RT hogs would starve everything).
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(20))
        print("receiver: SCHED_FIFO 20 (so its own wake-up does not count as daemon jitter)")
    except PermissionError:
        print("receiver: normal priority (SCHED_FIFO not permitted): gaps include its wake-up latency")
    runs = 2 * len(backends)
    # Per run: start-up (1.5 intervals), the window, the drain and the stop; plus the baseline probe.
    overhead = 1.5 * args.interval + 2.0
    fits = (args.budget - 2.0) / max(runs, 1) - overhead
    if fits < args.duration:
        fitted = max(3 * args.interval, fits)
        print(f"budget {args.budget:g} s: each run shortened from {args.duration:g} s to {fitted:.1f} s")
        args.duration = fitted
    deadline = time.monotonic() + args.budget
    rows = []
    for backend in backends:
        for load in (False, True):
            if time.monotonic() + args.duration + overhead > deadline:
                rows.append(_skipped(backend, load, f"skipped: the {args.budget:g} s budget is spent"))
                continue
            rows.append(measure(backend, load, args))
    return 0 if _print(rows, args) else 1


def _skipped(backend: str, load: bool, why: str) -> dict[str, object]:
    return {
        "backend": backend,
        "scenario": "2 CPU hogs" if load else "idle",
        "pings": 0,
        "max_gap": None,
        "own_max_gap": None,
        "rss_mb": float("nan"),
        "cpu_pct": float("nan"),
        "disarmed": None,
        "realtime": None,
        "memory": None,
        "error": why,
    }


if __name__ == "__main__":
    sys.exit(main())
