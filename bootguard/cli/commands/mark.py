"""`bootguard mark good|bad|indeterminate`: bless or condemn the booted entry, like systemd-bless-boot."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "mark"
HELP = "mark the booted (counted) entry good, bad or indeterminate"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb", choices=["good", "bad", "indeterminate"])
    parser.add_argument(
        "--no-trial", action="store_true", help="do not finish a bootguard trial after `good`"
    )
    from bootguard.cli.commands._common import add_grub_options

    add_grub_options(parser, match=False)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.commands._common import report
    from bootguard.services import lifecycle
    from bootguard.services.bless import Verb

    if args.grub_env:
        from bootguard.errors import UsageError

        if args.verb == "indeterminate":
            raise UsageError("GRUB does not count boots: only `mark good` and `mark bad` mean anything there")
        return report(ctx, lifecycle.grub_mark(ctx.paths(), args.grub_env, args.verb == "good", args.cmdline))
    return report(ctx, lifecycle.mark(ctx.paths(), Verb(args.verb), finish_trial=not args.no_trial))
