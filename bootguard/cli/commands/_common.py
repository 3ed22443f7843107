"""Helpers shared by command modules (kept light: imported at run time only)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from bootguard.cli.main import Context


def add_grub_options(parser: argparse.ArgumentParser, *, match: bool) -> None:
    """The options of commands that also work on GRUB hosts (bootguard counts there, see grubtrial)."""
    parser.add_argument(
        "--grub-env",
        metavar="FILE",
        help="the host boots with GRUB: its environment block (/boot/grub/grubenv)",
    )
    if match:
        parser.add_argument(
            "--match",
            metavar="TOKEN",
            help="with --grub-env: a word of the entry's kernel command line that tells its boots apart "
            "(e.g. NixOS's init=/nix/store/…/init)",
        )
    import argparse

    parser.add_argument("--cmdline", default="/proc/cmdline", help=argparse.SUPPRESS)  # tests


def require_match(args: argparse.Namespace) -> str:
    from bootguard.errors import UsageError

    if not args.match:
        raise UsageError("--grub-env needs --match TOKEN: GRUB does not say which entry it booted")
    return str(args.match)


def report(ctx: Context, result: dict[str, object], code: int = 0) -> int:
    """Print a service summary as JSON or as its messages, and return `code`."""
    from bootguard.cli.output import emit_json, say

    if ctx.json:
        emit_json(result)
    else:
        messages = result.get("messages", [])
        for line in messages if isinstance(messages, list) else []:
            say(str(line))
    return code
