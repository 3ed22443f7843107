"""`bootguard state reset`: the way out when both state slots are bad (issue 15)."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "state"
HELP = "recover the state directory (state reset: move bad state files aside, start empty)"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    reset = sub.add_parser(
        "reset",
        help="move both state slots aside (kept as state.*.json.bad-TIME) and start from an empty state",
    )
    reset.add_argument("--force", action="store_true", help="also when the state is valid")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.commands._common import report
    from bootguard.model.events import Event, EventKind, EventLog
    from bootguard.seams.statestore import StateStore

    store = StateStore(ctx.state_dir)
    moved = store.reset(force=args.force)
    if not moved:
        return report(
            ctx, {"moved": [], "messages": [f"no state files in {ctx.state_dir}: nothing to reset"]}
        )
    log: EventLog = store.read_events()
    golden = next((e.entry for e in reversed(log.events) if e.kind is EventKind.GOLDEN_PINNED), None)
    store.append_event(
        Event.new(
            EventKind.STATE_RECOVERED,
            "state reset by `bootguard state reset`: the old slots were moved aside; starting empty",
            data={"moved": moved, "last_golden": golden},
        )
    )
    messages = [f"moved aside: {m}" for m in moved] + ["the state is empty now: no golden, no trial"]
    if golden:
        messages.append(
            f"the event log's last golden was {golden}: re-pin it with `bootguard pin-golden {golden}`"
        )
    return report(ctx, {"moved": moved, "last_golden": golden, "messages": messages})
