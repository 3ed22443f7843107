"""`bootguard upgrade --repo PATH …`: fetch, integrate, build, validate, switch; roll back on failure."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context

NAME = "upgrade"
HELP = "pull the configuration repository, build, validate and switch; reset and exit 7 if any step fails"

_STRATEGIES = ("prefer-remote", "prefer-local", "abort")
_MODES = ("switch", "boot", "test")


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--repo", metavar="PATH", required=True, help="the configuration repository")
    add("--branch", metavar="B", default="dev", help="branch to follow (default: %(default)s)")
    add("--remote", metavar="R", default="origin", help="remote to fetch from (default: %(default)s)")
    add(
        "--strategy",
        choices=_STRATEGIES,
        default="abort",
        help="when local commits conflict with the remote (default: %(default)s; nothing is ever lost)",
    )
    add(
        "--build-command",
        metavar="CMD",
        help="build command, split like a shell would but never run by one; {host} {mode} {commit} {repo} "
        "are replaced (default on NixOS: nixos-rebuild build --flake .#{host})",
    )
    add("--validate-command", metavar="CMD", help="pre-switch validation command (default: none)")
    add(
        "--switch-command",
        metavar="CMD",
        help="switch command (default on NixOS: nixos-rebuild {mode} --flake .#{host})",
    )
    add(
        "--trial-command",
        metavar="CMD",
        help="after a switch/boot, stage the new boot generation as a trial (e.g. a script calling "
        "`bootguard trial ENTRY`; default: none)",
    )
    add("--mode", choices=_MODES, default="switch", help="switch mode (default: %(default)s)")
    add("--allow-force-push", action="store_true", help="accept rewritten remote history")
    add("--verify-signatures", action="store_true", help="require `git verify-commit` to pass on new commits")
    # --json is the global option (accepted after the command name too): not added here.


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.errors import BootguardError
    from bootguard.gitops import service
    from bootguard.gitops.values import UpgradeOptions

    opts = UpgradeOptions.from_strings(
        repo=args.repo,
        state_dir=ctx.state_dir,
        branch=args.branch,
        remote=args.remote,
        strategy=args.strategy,
        build_command=args.build_command,
        validate_command=args.validate_command,
        switch_command=args.switch_command,
        trial_command=args.trial_command,
        mode=args.mode,
        allow_force_push=args.allow_force_push,
        verify_signatures=args.verify_signatures,
    )
    try:
        result = service.upgrade(opts)
    except BootguardError as exc:
        if ctx.json:
            emit_json(
                {"outcome": "failed", "exit_code": int(exc.exit_code), "error": exc.message, "hint": exc.hint}
            )
        raise
    if ctx.json:
        emit_json(result.to_dict())
        return 0
    say(service.describe(opts.repo, result))
    for note in result.notes:
        say(f"  {note}")
    for ref in result.backups:
        say(f"  saved {ref}")
    return 0
