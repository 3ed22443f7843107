"""`bootguard trial ENTRY [--tries N]`: stage a new generation; golden takes over if it fails N times."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "trial"
HELP = "stage ENTRY as a trial: booted while it has tries left, then the loader falls back to golden"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entry", help="entry file name or id of the new generation")
    parser.add_argument("--tries", type=int, default=2, help="failed boots before falling back (default 2)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.commands._common import report
    from bootguard.errors import UsageError
    from bootguard.services import lifecycle

    if not 1 <= args.tries <= 100:
        raise UsageError(f"--tries must be between 1 and 100, not {args.tries}")
    return report(ctx, lifecycle.trial(ctx.paths(), args.entry, args.tries))
