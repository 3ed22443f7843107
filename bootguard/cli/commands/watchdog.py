"""`bootguard watchdog info|run`: inspect the hardware watchdog (from sysfs) or keep it fed."""

from __future__ import annotations

import argparse
import os
import sys

from bootguard.errors import NotFoundError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context
    from bootguard.seams.watchdog import WatchdogInfo

NAME = "watchdog"
HELP = "show the hardware watchdog (info) or keep it fed until stopped (run)"


def configure(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    info = verbs.add_parser("info", help="what sysfs says about each watchdog (never opens, never arms)")
    info.add_argument("--device", metavar="PATH", help="only this device node (e.g. /dev/watchdog0)")
    info.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    info.add_argument("--sysfs-root", metavar="DIR", default=None, help=argparse.SUPPRESS)
    info.add_argument("--dev-root", metavar="DIR", default=None, help=argparse.SUPPRESS)

    run_ = verbs.add_parser("run", help="open the watchdog and ping it until SIGTERM (keepalive daemon)")
    run_.add_argument(
        "--device", metavar="PATH", default="/dev/watchdog0", help="device node (default %(default)s)"
    )
    run_.add_argument(
        "--timeout", metavar="S", type=int, help="set this timeout first (default: keep the device's)"
    )
    run_.add_argument(
        "--interval", metavar="S", type=float, help="ping interval (default timeout/4, at most timeout/2)"
    )
    run_.add_argument(
        "--handoff",
        action="store_true",
        help="on SIGTERM close without the magic 'V': the timer keeps running for the next owner",
    )
    run_.add_argument(
        "--ping", choices=("auto", "ioctl", "write"), default="auto", help="how to ping (default auto)"
    )
    run_.add_argument(
        "--stall-limit",
        metavar="S",
        type=float,
        help="native pinger: stop pinging after S s "
        "without a heartbeat from the Python loop (default 3 intervals)",
    )
    run_.add_argument("--priority", metavar="N", type=int, default=10, help="SCHED_RR priority (default 10)")
    run_.add_argument("--no-realtime", action="store_true", help="do not ask for SCHED_RR")
    run_.add_argument("--no-mlock", action="store_true", help="do not lock memory")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.verb == "info":
        return _info(args, ctx)
    return _run(args)


def _select(devices: list[WatchdogInfo], wanted: str, sysfs_root: str) -> list[WatchdogInfo]:
    import os

    from bootguard.seams.watchdog import DRIVER_HINT, sysfs_for_device

    sysfs = sysfs_for_device(wanted, sysfs_root)
    chosen = [d for d in devices if d.device == wanted or (sysfs and d.sysfs_path == sysfs)]
    if not chosen:
        chosen = [d for d in devices if os.path.basename(d.device) == os.path.basename(wanted)]
    if not chosen:
        raise NotFoundError(f"no watchdog device at {wanted}", hint=DRIVER_HINT)
    return chosen


def _info(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.seams._wd_native import BACKEND
    from bootguard.seams.watchdog import DRIVER_HINT
    from bootguard.seams.watchdog_sysfs import DEV_ROOT, SYSFS_ROOT
    from bootguard.seams.watchdog_udev import discover_best

    sysfs_root = args.sysfs_root or SYSFS_ROOT
    devices, how = discover_best(sysfs_root, args.dev_root or DEV_ROOT)
    if args.device:
        devices = _select(devices, args.device, sysfs_root)
    if ctx.json:
        emit_json({"backend": BACKEND, "discovery": how, "devices": [d.to_dict() for d in devices]})
        return 0
    say(f"backend: {BACKEND} (discovery: {how})")
    if not devices:
        raise NotFoundError("no watchdog device found", hint=DRIVER_HINT)
    for d in devices:
        for line in _describe(d):
            say(line)
    return 0


def _describe(d: WatchdogInfo) -> list[str]:
    from bootguard.seams.watchdog import bootstatus_says_watchdog_reset

    reset = " — the previous boot ended in a watchdog reset" if bootstatus_says_watchdog_reset(d) else ""
    return [
        f"{d.device}: {d.identity or 'unknown identity'} ({d.state.value})",
        f"  timeout {d.timeout if d.timeout is not None else '?'} s, range {d.timeout_range()}, "
        f"pretimeout {d.pretimeout if d.pretimeout is not None else '-'}, "
        f"nowayout {'unknown' if d.nowayout is None else 'yes' if d.nowayout else 'no'}",
        f"  bootstatus {', '.join(d.bootstatus) or 'clean'}{reset}",
        f"  options {', '.join(d.option_names) or 'not shown by sysfs'}",
        f"  sysfs {d.sysfs_path or 'none (legacy node only)'}",
    ]


def _run(args: argparse.Namespace) -> int:
    from bootguard.seams.watchdog import PingMode, WatchdogDevice
    from bootguard.services.keepalive import Keepalive, KeepaliveConfig, StopSignal, make_notifier

    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    config = KeepaliveConfig(
        timeout=args.timeout,
        interval=args.interval,
        handoff=args.handoff,
        realtime=not args.no_realtime,
        priority=args.priority,
        lock_memory=not args.no_mlock,
        stall_limit=args.stall_limit,
    )
    if args.timeout is not None:
        config.resolve_interval(args.timeout)  # a usage error must come before the open arms the device
    notifier = make_notifier(os.environ, _log)
    stop = StopSignal().install()  # before the open: a SIGTERM during start-up must not kill us armed
    try:
        device = WatchdogDevice.open(args.device, ping_mode=PingMode(args.ping))
        report = Keepalive(device, config, notifier=notifier, log=_log).run(stop)
    finally:
        stop.close()
    _log(f"stopped: {report.pings} pings, {report.closed}")
    return 0


def _log(message: str) -> None:
    print(f"bootguard watchdog: {message}", file=sys.stderr, flush=True)
