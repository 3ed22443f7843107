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
    # fleet (issue 16): quarantine through verdicts on the shared remote, canaries
    add("--host", metavar="NAME", help="this host's name in published verdicts (default: the hostname)")
    add(
        "--publish-verdicts",
        action="store_true",
        help="push this host's verdicts (blessed/failed commits) to refs/bootguard/verdicts/NAME",
    )
    add(
        "--ignore-quarantine",
        action="store_true",
        help="this run deploys even a commit another host failed, or one still waiting for canaries",
    )
    add(
        "--canaries",
        metavar="N",
        type=int,
        default=0,
        help="deploy a commit only once N other hosts blessed it (default: %(default)s, no wait)",
    )
    add("--canary-hosts", metavar="A,B", help="only these hosts count as canaries")
    add(
        "--soak",
        metavar="DURATION",
        help="... or once the commit has been out this long (e.g. 6h, 2d) without a failure verdict",
    )
    # --json is the global option (accepted after the command name too): not added here.


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.errors import BootguardError
    from bootguard.gitops import service
    from bootguard.gitops.fleet_options import FleetOptions
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
        fleet=FleetOptions.from_strings(
            host=args.host,
            publish=args.publish_verdicts,
            canaries=args.canaries,
            canary_hosts=args.canary_hosts,
            soak=args.soak,
            ignore_quarantine=args.ignore_quarantine,
        ),
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
