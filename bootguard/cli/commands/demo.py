"""`bootguard demo`: the lifecycle on a sandbox directory with the model of systemd-boot (no VM)."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "demo"
HELP = "run the whole lifecycle in a sandbox directory with bootguard's model of systemd-boot (no VM)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="keep the sandbox in DIR (must not exist) instead of a temporary one")
    parser.add_argument("--loader", default="systemd-boot 252.39-1~deb12u2", help="LoaderInfo to model")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import say
    from bootguard.demo import run as demo

    return demo.run(args.dir, args.loader, say)
