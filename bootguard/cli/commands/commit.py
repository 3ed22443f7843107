"""`bootguard commit --repo PATH [--branch B] [--push]`: commit the host's configuration changes."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "commit"
HELP = "commit changes in the configuration repository (refusing secrets) and optionally push them"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", metavar="PATH", required=True, help="the configuration repository")
    parser.add_argument(
        "--branch", metavar="B", default="dev", help="branch to commit on (default: %(default)s)"
    )
    parser.add_argument(
        "--push", action="store_true", help="push to the branch's remote (never forced; default: off)"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say, warn
    from bootguard.gitops import service

    result = service.commit(args.repo, args.branch, push=args.push, state_dir=ctx.state_dir)
    if ctx.json:
        emit_json(result.to_dict())
        return 0
    for line in result.warnings:
        warn(line)
    say(result.summary())
    return 0
