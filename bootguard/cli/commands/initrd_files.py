"""`bootguard initrd-files`: the files an initramfs needs for `bootguard initrd`."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "initrd-files"
HELP = "print exactly the files an initramfs needs for the early-boot step (one path per line)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--python", metavar="PATH", help="interpreter to package (default: this one)")
    parser.add_argument(
        "--destinations",
        action="store_true",
        help="print 'SOURCE<TAB>DESTINATION' pairs (bootguard's modules go to /usr/lib/bootguard/python)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.services.initrd_files import collect, destination

    files = collect(args.python)
    if ctx.json:
        emit_json(files)
        return 0
    for category in ("interpreter", "libraries", "stdlib", "bootguard"):
        for path in files[category]:
            say(f"{path}\t{destination(path)}" if args.destinations else path)
    return 0
