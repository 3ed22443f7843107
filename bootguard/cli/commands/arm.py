"""`bootguard arm ENTRY --tries N`: give an uncounted entry a boot counter."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "arm"
HELP = "give an uncounted entry a boot counter (NAME+N.conf)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entry", help="entry file name or id")
    parser.add_argument(
        "--tries", type=int, default=2, help="boot attempts before it counts as bad (default 2)"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.commands._common import report
    from bootguard.services import lifecycle

    return report(ctx, lifecycle.arm(ctx.paths(), args.entry, args.tries))
