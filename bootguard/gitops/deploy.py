"""Build, validate, switch and stage a trial: the configured commands, run as argv, never via a shell.

The commands run as bootguard's own user (root on a host: `nixos-rebuild switch` needs it), in
the repository, with `BOOTGUARD_COMMIT`, `BOOTGUARD_REPO`, `BOOTGUARD_MODE` and `BOOTGUARD_STAGE`
in their environment so scripts need no arguments.
"""

from __future__ import annotations

import enum
import os
import time

import attrs

from bootguard.errors import CommandError
from bootguard.gitops.values import UpgradeOptions, expand
from bootguard.seams import proc


class Stage(enum.Enum):
    BUILD = "build"
    VALIDATE = "validate"
    SWITCH = "switch"
    TRIAL = "trial"


@attrs.frozen
class StageResult:
    """How one command went: `reason` is empty on success, one line otherwise."""

    stage: Stage
    argv: tuple[str, ...]
    ok: bool
    seconds: float
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage.value,
            "argv": list(self.argv),
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
        }


def command_for(opts: UpgradeOptions, stage: Stage) -> tuple[str, ...] | None:
    match stage:
        case Stage.BUILD:
            return opts.build
        case Stage.VALIDATE:
            return opts.validate
        case Stage.SWITCH:
            return opts.switch
        case Stage.TRIAL:
            return opts.trial if opts.mode.stages_boot_entry else None


def run_stage(opts: UpgradeOptions, stage: Stage, commit: str) -> StageResult | None:
    """Run the stage's command for `commit`; None when no command is configured for it."""
    template = command_for(opts, stage)
    if template is None:
        return None
    values = {"host": os.uname().nodename, "mode": opts.mode.value, "commit": commit, "repo": opts.repo}
    argv = tuple(expand(template, values))
    env = {
        **os.environ,
        "BOOTGUARD_COMMIT": commit,
        "BOOTGUARD_REPO": opts.repo,
        "BOOTGUARD_MODE": opts.mode.value,
        "BOOTGUARD_STAGE": stage.value,
    }
    start = time.monotonic()
    try:
        done = proc.run(argv, check=False, cwd=opts.repo, env=env, timeout=opts.command_timeout)
    except CommandError as exc:  # timed out
        return StageResult(stage, argv, False, time.monotonic() - start, exc.message)
    seconds = time.monotonic() - start
    if done.ok:
        return StageResult(stage, argv, True, seconds)
    return StageResult(stage, argv, False, seconds, _why(argv, done.returncode, done.stderr or done.stdout))


def _why(argv: tuple[str, ...], returncode: int, output: str) -> str:
    name = os.path.basename(argv[0])
    if returncode == 127:
        return f"{name}: command not found"
    if returncode < 0:
        return f"{name} was killed by signal {-returncode}"
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return f"{name} exited with status {returncode}" + (f": {lines[-1][:300]}" if lines else "")
