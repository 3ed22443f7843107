"""`bootguard validate`: decide this boot (run by bootguard-validate.service, Type=notify).

All required checks pass → the core blesses the booted entry. A required check fails → the entry is
marked bad, notifications go out, and the host reboots now, after a delay, or stays up, as
`on_failure` says. `--boot-deadline` is the same decision for a boot that never reached
boot-complete.target (run by bootguard-boot-deadline.timer).
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "validate"
HELP = "run the checks and bless or reject this boot (for bootguard-validate.service)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="checks file (default: /etc/bootguard/checks.toml)",
    )
    parser.add_argument(
        "--promote-after",
        metavar="K",
        type=int,
        default=None,
        help="promote a passed trial entry to golden after K good boots",
    )
    parser.add_argument(
        "--boot-deadline",
        action="store_true",
        help="the boot deadline expired: reject the boot unless boot-complete.target was reached",
    )
    parser.add_argument(
        "--grub-env",
        metavar="FILE",
        help="the host boots with GRUB: its environment block (bootguard counts a trial's tries)",
    )
    parser.add_argument("--cmdline", default="/proc/cmdline", help=argparse.SUPPRESS)  # tests
    parser.add_argument("--spool-dir", default="/run/bootguard/spool", help=argparse.SUPPRESS)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.earlyboot.record import merge_spool
    from bootguard.seams.statestore import StateStore
    from bootguard.validator import config, service

    # What the initrd could not write (read-only root then) is folded in before this boot is judged.
    merged = merge_spool(StateStore(ctx.state_dir), args.spool_dir)
    if merged and not ctx.json:
        say(f"merged {merged} early-boot events from {args.spool_dir}")
    cfg = config.load(args.config)
    svc = service.for_host(
        cfg,
        esp=ctx.esp,
        xbootldr=ctx.xbootldr,
        efivars=ctx.efivars,
        state_dir=ctx.state_dir,
        promote_after=args.promote_after,
        grub_env=args.grub_env,
        cmdline=args.cmdline,
    )
    outcome = service.boot_deadline(cfg, svc) if args.boot_deadline else service.validate(cfg, svc)
    if ctx.json:
        doc: dict[str, object] = {"exit_code": outcome.exit_code, "messages": list(outcome.messages)}
        if outcome.report is not None:
            doc.update(outcome.report.to_json())
        if outcome.step is not None:
            doc["step"] = outcome.step.value
        emit_json(doc)
    # In text mode every message already went to the journal (or stderr) as it happened.
    return outcome.exit_code
