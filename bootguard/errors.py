"""The one error hierarchy of bootguard, and the documented exit codes.

Every failure that bootguard can explain is a `BootguardError` (or a subclass) carrying a one-line
message that names the path, entry or option involved, and optionally a hint. The CLI
(`bootguard.cli.main`) is the single place that turns them into `bootguard: error: …` and an exit
code. Standard library only: the early-boot path imports this module.
"""

from __future__ import annotations

from bootguard._vocab import IntVocab


class ExitCode(IntVocab):
    """Exit codes of the `bootguard` command (documented in README.md)."""

    OK = 0
    FAILURE = 1  # an operation failed; the message says which
    USAGE = 2  # bad command line or configuration
    NOT_FOUND = 3  # an entry, file, device or variable that was named does not exist
    STATE = 4  # a state file is corrupt, foreign or unsafe and could not be recovered
    ENVIRONMENT = 5  # the host lacks what is needed: no ESP, no efivarfs, read-only ESP, busy device
    CHECKS_FAILED = 6  # health checks failed (validate/check): the boot is not good
    ROLLED_BACK = 7  # an update was not applied; the host stays on (or returned to) the previous state
    CONFLICT = 8  # git histories conflict and the chosen strategy stops (nothing lost)
    INTERRUPTED = 130


class BootguardError(Exception):
    """Base of every error bootguard explains to its user."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(BootguardError):
    """The command line or a configuration file is wrong."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A configuration file cannot be parsed or has invalid values."""


class NotFoundError(BootguardError):
    """Something that was named does not exist (entry, file, generation, device)."""

    exit_code = ExitCode.NOT_FOUND


class ParseError(BootguardError):
    """Input (an entry file, a variable, a name) does not follow its grammar."""


class StateError(BootguardError):
    """A state file is corrupt, torn, foreign or unsafe."""

    exit_code = ExitCode.STATE


class EnvironmentProblem(BootguardError):
    """The host lacks something bootguard needs (ESP, efivarfs, writable partition, free device)."""

    exit_code = ExitCode.ENVIRONMENT


class NoEfiError(EnvironmentProblem):
    """efivarfs is missing: this is not an EFI boot, or efivarfs is not mounted."""


class ReadOnlyError(EnvironmentProblem):
    """A partition or directory that must be written is read-only."""


class RefusedError(BootguardError):
    """bootguard refuses an operation that would be unsafe (e.g. pin a bad entry as golden)."""


class WatchdogError(BootguardError):
    """The hardware watchdog cannot be used as asked."""


class WatchdogBusyError(WatchdogError, EnvironmentProblem):
    """Another process holds the watchdog device (single open)."""


class CommandError(BootguardError):
    """A subprocess failed; carries its argv, exit status and the tail of stderr."""

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | tuple[str, ...] = (),
        returncode: int | None = None,
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr


class GitOpsError(BootguardError):
    """A GitOps step failed; nothing was lost (the message says where things were saved)."""


class ConflictError(GitOpsError):
    """Local and remote histories conflict and the strategy stops."""

    exit_code = ExitCode.CONFLICT


class ChecksFailed(BootguardError):
    """Required health checks failed."""

    exit_code = ExitCode.CHECKS_FAILED


class RolledBack(BootguardError):
    """An update was not applied or was rolled back: reported as what it is, never as success."""

    exit_code = ExitCode.ROLLED_BACK
