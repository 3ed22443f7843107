"""Options and outcomes of `bootguard upgrade` (standard library only: the no-op path builds them).

Commands are argv lists. A configured command string is split with `shlex` (never run through
a shell), then the placeholders `{host}`, `{mode}`, `{commit}` and `{repo}` are replaced inside
each argument by plain string replacement, so braces meant for the command itself survive.
"""

from __future__ import annotations

import enum
import os

from bootguard.errors import UsageError
from bootguard.model._frozen import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from bootguard.gitops.fleet_options import FleetOptions

DEFAULT_BRANCH = "dev"
DEFAULT_REMOTE = "origin"
DEFAULT_COMMAND_TIMEOUT = 3 * 3600.0
NIXOS_MARKER = "/etc/NIXOS"
NIXOS_BUILD = "nixos-rebuild build --flake .#{host}"
NIXOS_SWITCH = "nixos-rebuild {mode} --flake .#{host}"
PLACEHOLDERS = ("{host}", "{mode}", "{commit}", "{repo}")


class Strategy(enum.Enum):
    """What `upgrade` does when local commits conflict with the remote's."""

    PREFER_REMOTE = "prefer-remote"  # conflicting hunks take the remote; else the remote wholesale
    PREFER_LOCAL = "prefer-local"  # conflicting hunks keep ours; else our tree over a merge of theirs
    ABORT = "abort"  # stop, leave the repository as it was, exit 8


class Mode(enum.Enum):
    """How the switch command activates the build (nixos-rebuild's verbs)."""

    SWITCH = "switch"  # activate now and make it the boot default
    BOOT = "boot"  # make it the boot default only
    TEST = "test"  # activate now, not the boot default

    @property
    def stages_boot_entry(self) -> bool:
        """Whether a new boot generation appears, which the trial hook must stage."""
        return self is not Mode.TEST


class Outcome(enum.Enum):
    UP_TO_DATE = "up-to-date"  # the remote has nothing this host lacks
    UPGRADED = "upgraded"  # integrated, built, validated and switched


def split_command(text: str | None, option: str) -> tuple[str, ...] | None:
    """A command-line option's command string as argv; UsageError naming the option if malformed."""
    if text is None or not text.strip():
        return None
    import shlex

    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"{option}: cannot split {text!r} into arguments ({exc})") from exc
    return argv


def expand(argv: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    """Replace `{host}` etc. inside each argument (no format(): other braces stay as they are)."""
    out = []
    for arg in argv:
        text = arg
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        out.append(text)
    return out


class UpgradeOptions(Frozen):
    """Everything one `bootguard upgrade` run needs."""

    __slots__ = (
        "allow_force_push",
        "branch",
        "build",
        "command_timeout",
        "fleet",  # fleet (issue 16): FleetOptions, None for no fleet gate
        "mode",
        "remote",
        "repo",
        "state_dir",
        "strategy",
        "switch",
        "trial",
        "validate",
        "verify_signatures",
    )

    repo: str
    branch: str
    remote: str
    strategy: Strategy
    build: tuple[str, ...] | None
    validate: tuple[str, ...] | None
    switch: tuple[str, ...] | None
    trial: tuple[str, ...] | None
    mode: Mode
    allow_force_push: bool
    verify_signatures: bool
    state_dir: str
    command_timeout: float
    fleet: FleetOptions | None  # fleet (issue 16)

    def __init__(self, **values: Any) -> None:
        values.setdefault("fleet", None)  # fleet (issue 16)
        self._init(**values)

    @classmethod
    def from_strings(
        cls,
        *,
        repo: str,
        state_dir: str,
        branch: str = DEFAULT_BRANCH,
        remote: str = DEFAULT_REMOTE,
        strategy: str = Strategy.ABORT.value,
        build_command: str | None = None,
        validate_command: str | None = None,
        switch_command: str | None = None,
        trial_command: str | None = None,
        mode: str = Mode.SWITCH.value,
        allow_force_push: bool = False,
        verify_signatures: bool = False,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        fleet: FleetOptions | None = None,  # fleet (issue 16)
    ) -> UpgradeOptions:
        """From command-line strings; on NixOS, unset build/switch commands get nixos-rebuild."""
        nixos = os.path.exists(NIXOS_MARKER)
        if build_command is None and nixos:
            build_command = NIXOS_BUILD
        if switch_command is None and nixos:
            switch_command = NIXOS_SWITCH
        return cls(
            repo=repo,
            branch=branch,
            remote=remote,
            strategy=Strategy(strategy),
            build=split_command(build_command, "--build-command"),
            validate=split_command(validate_command, "--validate-command"),
            switch=split_command(switch_command, "--switch-command"),
            trial=split_command(trial_command, "--trial-command"),
            mode=Mode(mode),
            allow_force_push=allow_force_push,
            verify_signatures=verify_signatures,
            state_dir=state_dir,
            command_timeout=command_timeout,
            fleet=fleet,  # fleet (issue 16)
        )


class UpgradeResult(Frozen):
    """What a successful run did; failures are errors (RolledBack, ConflictError, GitOpsError)."""

    __slots__ = ("backups", "details", "head", "integration", "notes", "outcome", "previous", "remote_commit")

    outcome: Outcome
    previous: str  # HEAD before the run
    head: str  # HEAD after the run
    remote_commit: str
    integration: str | None  # fast-forward | rebased | prefer-remote | prefer-local
    backups: tuple[str, ...]  # refs saved during the run
    notes: tuple[str, ...]  # one-line remarks for the operator
    details: dict[str, Any]

    def __init__(self, **values: Any) -> None:
        values.setdefault("integration", None)
        values.setdefault("backups", ())
        values.setdefault("notes", ())
        values.setdefault("details", {})
        self._init(**values)

    def __hash__(self) -> int:
        return hash((self.outcome, self.previous, self.head, self.remote_commit))

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "previous": self.previous,
            "head": self.head,
            "remote_commit": self.remote_commit,
            "integration": self.integration,
            "backups": list(self.backups),
            "notes": list(self.notes),
            **self.details,
        }
