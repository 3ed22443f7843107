"""`bootguard record-shutdown`: this boot ends in an orderly shutdown or reboot, not a failure.

Run by systemd/bootguard-shutdown.service when the system goes down in order. A boot that has no
verdict yet (the validator has not finished, or does not run) would otherwise be taken for a crash
by the next early-boot step ("ended without a verdict"); a boot that got a verdict keeps it.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "record-shutdown"
HELP = "record that this boot ends in an orderly shutdown or reboot (run by bootguard-shutdown.service)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--boot-id", help=argparse.SUPPRESS)  # tests: the kernel's boot id otherwise
    parser.add_argument("--spool-dir", default="/run/bootguard/spool", help=argparse.SUPPRESS)
    parser.add_argument(
        "--at-start",
        action="store_true",
        help="record nothing: say that this boot's orderly end will be recorded (the unit's ExecStart)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.commands._common import report
    from bootguard.earlyboot.record import merge_spool, record_shutdown
    from bootguard.model.events import read_boot_id
    from bootguard.seams.statestore import StateStore

    if args.at_start:
        return report(ctx, {"messages": ["an orderly shutdown or reboot of this boot will be recorded"]})
    store = StateStore(ctx.state_dir)
    merge_spool(store, args.spool_dir)  # the initrd's record of this boot, if it could only spool it
    message = record_shutdown(store, args.boot_id or read_boot_id())
    return report(ctx, {"messages": [message]})
