"""`bootguard pin-golden [ENTRY | --generation N]`: pin the known-good generation."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "pin-golden"
HELP = "pin the known-good (golden) generation the host falls back to (default: the booted entry)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entry", nargs="?", help="entry file name or id (default: the entry booted now)")
    parser.add_argument("--generation", type=int, help="NixOS system generation number")
    parser.add_argument("--nix-root", default="/", help=argparse.SUPPRESS)
    from bootguard.cli.commands._common import add_commit_option, add_grub_options

    add_grub_options(parser, match=True)
    add_commit_option(parser, "golden")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.commands._common import commit_of, report
    from bootguard.errors import UsageError
    from bootguard.services import lifecycle

    if args.entry and args.generation is not None:
        raise UsageError("give an entry or --generation, not both")
    commit = commit_of(args)
    if args.grub_env:
        from bootguard.cli.commands._common import require_match

        if not args.entry:
            raise UsageError("with --grub-env name the GRUB menu entry id to pin")
        grub = lifecycle.grub_pin_golden(
            ctx.paths(), args.grub_env, args.entry, require_match(args), args.cmdline, commit=commit
        )
        return report(ctx, grub)
    result = lifecycle.pin_golden(
        ctx.paths(), args.entry, generation=args.generation, nix_root=args.nix_root, commit=commit
    )
    return report(ctx, result)
