"""`bootguard check`: run the health checks now, without blessing, marking or rebooting."""

from __future__ import annotations

import argparse

from bootguard.errors import ExitCode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "check"
HELP = "run the health checks now (no blessing, no reboot); exit 0 only if every required check passed"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="checks file (default: /etc/bootguard/checks.toml)",
    )
    parser.add_argument(
        "--deadline",
        metavar="SECONDS",
        type=float,
        default=None,
        help="override the whole-run deadline of the configuration",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.validator import config
    from bootguard.validator.runner import run_checks

    cfg = config.load(args.config)
    deadline = args.deadline if args.deadline is not None else cfg.deadline
    report = run_checks(cfg.checks, deadline=deadline)
    if ctx.json:
        emit_json(report.to_json())
    else:
        for c in report.checks:
            kind = "required" if c.required else "wanted"
            say(f"{c.result.value:7} {c.name} ({kind}, {c.seconds:.1f} s): {c.message}")
        say(f"result: {report.result} — {report.summary()}")
    return int(ExitCode.OK if report.passed else ExitCode.CHECKS_FAILED)
