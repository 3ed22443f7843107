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
    parser.add_argument(
        "--backend",
        choices=("auto", "loader", "state"),
        default="auto",
        help="who counts the tries: systemd-boot's counter (loader), or bootguard's state with one-shot "
        "boots (state: for a read-only ESP or a firmware that cannot write it); auto picks state only "
        "when the ESP is read-only (default auto)",
    )
    from bootguard.cli.commands._common import add_commit_option, add_grub_options

    add_grub_options(parser, match=True)
    add_commit_option(parser, "the trial")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.commands._common import commit_of, report
    from bootguard.errors import UsageError
    from bootguard.services import lifecycle

    if not 1 <= args.tries <= 100:
        raise UsageError(f"--tries must be between 1 and 100, not {args.tries}")
    commit = commit_of(args)
    if args.grub_env:
        from bootguard.cli.commands._common import require_match

        grub = lifecycle.grub_trial(
            ctx.paths(), args.grub_env, args.entry, require_match(args), args.tries, commit=commit
        )
        return report(ctx, grub)
    result = lifecycle.trial(ctx.paths(), args.entry, args.tries, backend=args.backend, commit=commit)
    return report(ctx, result)
