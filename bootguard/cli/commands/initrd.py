"""`bootguard initrd`: the early-boot step (runs on every boot before switch-root)."""

from __future__ import annotations

from bootguard.cli.options import Opt, add_to

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from bootguard.cli.main import Context

NAME = "initrd"
# cli.main.entry ends the process with os._exit after flushing stdio: every file this step writes
# is closed and fsynced by the step itself, the watchdog is let go of explicitly (close_armed).
SKIP_TEARDOWN = True
HELP = "early-boot step: record what happened to the last boot, mend the loader policy, arm the watchdog"


OPTIONS = (
    Opt("--dry-run", None, help="print the decisions without writing anything"),
    Opt(
        "--spool-dir",
        str,
        "/run/bootguard/spool",
        help="where to record when the state directory is read-only (default: /run/bootguard/spool)",
    ),
    Opt(
        "--mount-esp",
        None,
        help="mount the ESP named by LoaderDevicePartUUID when --esp is not given (initrd)",
    ),
    Opt("--watchdog-device", str, metavar="PATH", help="watchdog device (default: the first found)"),
    Opt(
        "--watchdog-timeout",
        int,
        metavar="S",
        help="arm the hardware watchdog with this timeout and hand it on (default: do not arm)",
    ),
    Opt("--watchdog-sysfs", str, "/sys/class/watchdog"),
    Opt("--pstore", str, "/sys/fs/pstore"),
    Opt("--boot-id", str),  # simulated boots share the kernel's boot id
    Opt(
        "--grub-env",
        str,
        metavar="FILE",
        help="this host boots with GRUB: its environment block (e.g. /boot/grub/grubenv); "
        "bootguard counts a trial's tries itself",
    ),
    Opt("--cmdline", str, "/proc/cmdline", metavar="FILE"),  # tests: a kernel command line of their own
    Opt(
        "--reboot-command",
        str,
        "systemctl --no-block reboot",
        metavar="CMD",
        help="how to reboot into a trial's next try or off a used-up trial (split on spaces; "
        "default: systemctl --no-block reboot)",
    ),
    Opt(
        "--failed",
        str,
        metavar="REASON",
        help="record that this boot failed in the initrd (from emergency.target), then exit",
    ),
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_to(parser, OPTIONS)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.earlyboot.observe import Options
    from bootguard.earlyboot.step import run as run_step

    opts = Options(
        esp=ctx.esp,
        xbootldr=ctx.xbootldr,
        efivars=ctx.efivars,
        state_dir=ctx.state_dir,
        spool_dir=args.spool_dir,
        watchdog_device=args.watchdog_device,
        watchdog_timeout=args.watchdog_timeout,
        watchdog_sysfs=args.watchdog_sysfs,
        pstore=args.pstore,
        dry_run=args.dry_run,
        mount_esp=args.mount_esp,
        boot_id=args.boot_id,
        grub_env=args.grub_env,
        cmdline=args.cmdline,
    )
    if args.failed:
        from bootguard.earlyboot.step import record_failure

        report = record_failure(opts, args.failed)
    else:
        report = run_step(opts)
    exit_code = report.get("exit_code", 0)
    code = exit_code if isinstance(exit_code, int) else 1
    if ctx.json:
        emit_json(report)
        if report.get("reboot"):
            _reboot(args.reboot_command, announce=False)
        return code
    prefix = "would record" if args.dry_run else "bootguard-initrd"
    for line in report["events"]:  # type: ignore[attr-defined]
        say(f"{prefix}: {line}")
    for action in report["actions"]:  # type: ignore[attr-defined]
        say(f"{prefix}: action {action}")
    if "watchdog" in report:
        say(f"bootguard-initrd: {report['watchdog']}")
    if "error" in report:
        from bootguard.cli.output import warn

        warn(f"bootguard: error: {report['error']}")
    if report.get("reboot"):
        _reboot(args.reboot_command)
    return code


def _reboot(command: str, *, announce: bool = True) -> None:
    from bootguard.cli.output import say
    from bootguard.seams import proc

    if announce:
        say(f"bootguard-initrd: rebooting ({command})")
    proc.run(command.split(), timeout=60)
