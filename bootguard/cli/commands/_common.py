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


COMMIT_ENV = "BOOTGUARD_COMMIT"  # set by `bootguard upgrade` for the commands it runs


def add_commit_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--commit",
        metavar="SHA",
        help=f"the configuration commit {what} was built from (default: ${COMMIT_ENV} when set)",
    )


def commit_of(args: argparse.Namespace) -> str | None:
    """--commit, else $BOOTGUARD_COMMIT; a git object name (4 to 64 hex digits), lower-cased."""
    import os

    from bootguard.errors import UsageError

    value = args.commit if args.commit is not None else os.environ.get(COMMIT_ENV) or None
    if value is None:
        return None
    where = "--commit" if args.commit is not None else f"${COMMIT_ENV}"
    sha = value.strip().lower()
    if not 4 <= len(sha) <= 64 or any(c not in "0123456789abcdef" for c in sha):
        raise UsageError(f"{where} must be a git commit id (4 to 64 hex digits), not {value!r}")
    return sha


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
