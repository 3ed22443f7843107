"""Option tables shared by argparse and the argparse-free fast path of the early-boot commands.

`bootguard initrd` runs on every boot inside the initramfs, where argparse alone (with gettext, locale
and shutil behind it) costs more than the rest of the step. A command may therefore declare its
options as a table of `Opt` rows: `configure()` feeds the same rows to argparse, and `parse_fast()`
understands exactly those rows and nothing else — anything unusual (`--help`, a typo, a bad number)
returns None and the caller falls back to argparse, which produces the proper error. One source of
truth, two parsers.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import SimpleNamespace


class Parsed:
    """What `parse_fast` returns: attributes as argparse.Namespace (types.SimpleNamespace would
    import `types` on the early-boot path for nothing more)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


class Opt:
    """One long option: `--name` → attribute `name` (dashes to underscores)."""

    __slots__ = ("choices", "default", "dest", "flag", "help", "kind", "metavar")

    def __init__(
        self,
        flag: str,
        kind: type | None,
        default: object = None,
        help: str | None = None,
        metavar: str | None = None,
        *,
        choices: tuple[str, ...] | None = None,
    ) -> None:
        # kind None: a boolean switch; str or int: takes one value (one of `choices` when given)
        self.flag, self.kind, self.default, self.help, self.metavar = flag, kind, default, help, metavar
        self.choices = choices
        self.dest = flag.lstrip("-").replace("-", "_")


def add_to(parser: argparse.ArgumentParser, table: Sequence[Opt]) -> None:
    """Declare a table's options on an argparse parser (help None = hidden)."""
    import argparse

    for o in table:
        shown = argparse.SUPPRESS if o.help is None else o.help
        if o.kind is None:
            parser.add_argument(o.flag, action="store_true", help=shown)
        else:
            parser.add_argument(
                o.flag, type=o.kind, default=o.default, help=shown, metavar=o.metavar, choices=o.choices
            )


def parse_fast(
    argv: Sequence[str], command: str, globals_: Sequence[Opt], table: Sequence[Opt]
) -> SimpleNamespace | None:
    """Parse `[GLOBALS] command [GLOBALS|OPTIONS]` with `--flag value` / `--flag=value` forms only."""
    known = {o.flag: o for o in (*globals_, *table)}
    values: dict[str, object] = {o.dest: (False if o.kind is None else o.default) for o in known.values()}
    seen_command = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == command and not seen_command:
            seen_command = True
            continue
        flag, eq, inline = arg.partition("=")
        o = known.get(flag)
        if o is None or (o in table and not seen_command):
            return None
        if o.kind is None:
            if eq:
                return None
            values[o.dest] = True
            continue
        if not eq:
            if not args or (args[0].startswith("-") and args[0] != "-"):
                return None  # argparse would refuse an option where a value belongs
            inline = args.pop(0)
        if o.choices is not None and inline not in o.choices:
            return None  # argparse names the choices in its error
        try:
            values[o.dest] = o.kind(inline)
        except ValueError:
            return None
    return Parsed(**values) if seen_command else None  # type: ignore[return-value]
