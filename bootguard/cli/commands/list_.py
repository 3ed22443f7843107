"""`bootguard list`: entries in systemd-boot's order."""

from __future__ import annotations

from bootguard.cli.options import Opt, add_to

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from bootguard.cli.main import Context

NAME = "list"
HELP = "list boot entries in the order systemd-boot sorts them, with counters and the next boot"


# A table, so that cli.main parses it without argparse (see status.py).
OPTIONS = (
    Opt(
        "--id-scheme",
        str,
        help="override the entry id scheme read from LoaderInfo",
        choices=("counter-kept", "stripped-keep-case", "stripped-lower"),
    ),
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_to(parser, OPTIONS)


def scheme_override(args: argparse.Namespace) -> object:
    from bootguard.model.loader import IdScheme

    value = getattr(args, "id_scheme", None)
    return None if value is None else IdScheme[value.upper().replace("-", "_")]


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import counter_text, emit_json, entry_json, say
    from bootguard.services.bootview import BootView

    view = BootView.gather(ctx.esp, ctx.xbootldr, ctx.efivars, scheme=scheme_override(args))  # type: ignore[arg-type]
    if ctx.json:
        emit_json([entry_json(view, e) for e in view.entries])
        return 0
    if not view.entries:
        say(f"no boot entries on {view.esp.root}")
        return 0
    for e in view.entries:
        marks = ("→" if view.selection.entry is e else " ") + ("*" if view.booted is e else " ")
        say(f"{marks} {e.id(view.scheme):40} {e.status.value:13} {counter_text(e):16} {e.title or ''}")
        for p in e.problems:
            say(f"     problem: {p}")
    say("")
    say("→ boots next   * booted now")
    return 0
