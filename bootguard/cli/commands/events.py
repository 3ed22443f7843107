"""`bootguard events`: the event log."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "events"
HELP = "show the event log (boot attempts, failures and causes, blessings, rollbacks, …)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the last N events")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, local_time, say, warn
    from bootguard.seams.statestore import StateStore

    log = StateStore(ctx.state_dir).read_events(limit=args.limit)
    for w in log.warnings:
        warn(w)
    if ctx.json:
        emit_json([e.to_dict() for e in log.events])
        return 0
    for e in log.events:
        extra = " ".join(x for x in (e.entry and f"entry={e.entry}", e.cause and f"cause={e.cause}") if x)
        say(f"{local_time(e.time)} {e.kind.value:20} {e.message}" + (f" [{extra}]" if extra else ""))
    return 0
