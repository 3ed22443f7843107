"""Command line: argument parsing and the single exit boundary.

Each command lives in `bootguard.cli.commands.<module>` and exposes `NAME`, `HELP`,
`configure(parser)` and `run(args, ctx) -> int`. Command modules keep their top-level imports
light (stdlib only); heavy imports happen inside `run`, so `bootguard list` and `bootguard initrd`
stay fast. `main` is the only place that catches `BootguardError` and chooses the exit code.
"""

from __future__ import annotations

import gc
import os
import sys

from bootguard.errors import BootguardError, ExitCode

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import SimpleNamespace

    from bootguard.cli.options import Opt
    from bootguard.services.bootview import HostPaths

# Command name → module, in `bootguard --help` order. Only the module of the command being run is
# imported and configured, which keeps `bootguard initrd` and `list` close to a bare interpreter.
COMMANDS: dict[str, str] = {
    "list": "list_",
    "status": "status",
    "events": "events",
    "mark": "mark",
    "arm": "arm",
    "pin-golden": "pin_golden",
    "trial": "trial",
    "initrd": "initrd",
    "initrd-files": "initrd_files",
    "watchdog": "watchdog",
    "validate": "validate",
    "record-shutdown": "record_shutdown",
    "check": "check",
    "commit": "commit",
    "upgrade": "upgrade",
    "demo": "demo",
    "state": "state_",
}
_VALUED_GLOBALS = frozenset({"--esp", "--xbootldr", "--efivars", "--state-dir"})


class Context:
    """What every command gets: the global options, resolved once."""

    __slots__ = ("debug", "efivars", "esp", "json", "state_dir", "xbootldr")

    def __init__(self, ns: argparse.Namespace | SimpleNamespace) -> None:
        self.esp: str | None = ns.esp
        self.xbootldr: str | None = ns.xbootldr
        self.efivars: str = ns.efivars
        self.state_dir: str = ns.state_dir
        self.json: bool = ns.json
        self.debug: bool = ns.debug

    def paths(self) -> HostPaths:
        from bootguard.services.bootview import HostPaths

        return HostPaths(esp=self.esp, xbootldr=self.xbootldr, efivars=self.efivars, state_dir=self.state_dir)


def global_options() -> tuple[Opt, ...]:
    """The global options, as one table for argparse and the argparse-free fast path."""
    from bootguard.cli.options import Opt

    efivars = os.environ.get("BOOTGUARD_EFIVARS", "/sys/firmware/efi/efivars")
    state_dir = os.environ.get("BOOTGUARD_STATE_DIR", "/var/lib/bootguard")
    return (
        Opt("--esp", str, metavar="DIR", help="EFI system partition mount point"),
        Opt("--xbootldr", str, metavar="DIR", help="XBOOTLDR partition mount point"),
        Opt("--efivars", str, efivars, metavar="DIR", help=f"efivarfs directory (default: {efivars})"),
        Opt(
            "--state-dir",
            str,
            state_dir,
            metavar="DIR",
            help=f"bootguard state directory (default: {state_dir})",
        ),
        Opt("--json", None, help="machine-readable output"),
        Opt("--debug", None, help="show tracebacks"),
    )


def _add_globals(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The same options are accepted before and after the command name; after it they only
    override what was given before (SUPPRESS keeps the earlier value when absent)."""
    import argparse

    group = parser.add_argument_group("global options")
    for o in global_options():
        default = argparse.SUPPRESS if suppress else (False if o.kind is None else o.default)
        if o.kind is None:
            group.add_argument(o.flag, action="store_true", default=default, help=o.help)
        else:
            group.add_argument(o.flag, type=o.kind, default=default, metavar=o.metavar, help=o.help)


def _load(name: str) -> object:
    # __import__ rather than importlib.import_module: the importlib package (and warnings behind
    # it) is not loaded at startup, and every module counts for `bootguard initrd` (issue 5).
    module = f"bootguard.cli.commands.{name}"
    __import__(module)
    return sys.modules[module]


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named in argv (skipping global options and their values), if any."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED_GLOBALS:
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that command's subparser is configured."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="bootguard",
        description="Keep a self-updating systemd-boot host from ever staying bricked.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 corrupt state, 5 host lacks "
        "something (ESP, efivarfs, writable partition, free watchdog), 6 checks failed, "
        "7 update rolled back / not applied, 8 git conflict stopped.",
    )
    _add_globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, modname in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            mod = _load(modname)
        except ModuleNotFoundError as exc:
            # Commands still being written are left out; any other missing module is a bug.
            if exc.name != f"bootguard.cli.commands.{modname}":
                raise
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)  # type: ignore[attr-defined]
        _add_globals(p, suppress=True)
        mod.configure(p)  # type: ignore[attr-defined]
        p.set_defaults(_module=mod)
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace | SimpleNamespace:
    """argparse, or for commands with an option table (the early-boot step) the fast path first."""
    name = _chosen(argv)
    if name is not None:
        mod = _load(COMMANDS[name])
        table = getattr(mod, "OPTIONS", None)
        if table is not None:
            from bootguard.cli.options import parse_fast

            ns = parse_fast(argv, name, global_options(), table)
            if ns is not None:
                ns._module = mod
                return ns
    return build_parser(name).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and map every outcome to a truthful exit code."""
    if argv is None:
        argv = sys.argv[1:]
    args = _parse(argv)
    global _skip_teardown
    _skip_teardown = bool(getattr(args._module, "SKIP_TEARDOWN", False))
    if not _skip_teardown:
        gc.enable()  # entry() turned it off for the early-boot step; every other command collects
    ctx = Context(args)
    try:
        return int(args._module.run(args, ctx))
    except BootguardError as exc:
        if ctx.debug:
            raise
        print(f"bootguard: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"bootguard: hint: {exc.hint}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # Output consumer went away (e.g. `| head`): not our failure to report.
        sys.stderr.close()
        return int(ExitCode.OK)


# Set by main() for commands that declare SKIP_TEARDOWN (the early-boot step).
_skip_teardown = False


def entry() -> None:
    """Console-script entry point."""
    # No cyclic garbage collection while the early-boot step imports its ~40 modules and runs: the
    # collector's passes over the growing heap cost ~1.5 ms of a ~10 ms step, and a process that
    # lives for milliseconds frees everything on exit anyway. main() turns it back on for every
    # command that does not declare SKIP_TEARDOWN.
    gc.disable()
    code = main()
    if _skip_teardown:
        # The interpreter's teardown (freeing every module, class and object one by one) costs
        # 1–2 ms of an early-boot step whose whole budget is ~1.5x a bare interpreter (issue 13).
        # The command closed and fsynced everything it wrote itself; only our stdio buffers remain.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            sys.exit(code)  # let the interpreter report it as it always did
        os._exit(code)
    sys.exit(code)
