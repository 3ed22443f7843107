"""Values of the validator's configuration: checks, their targets, the failure policy, notifiers.

Each check kind has its own small target class, so a check's parameters are typed and a probe can
match on the target's type exhaustively. Parsing lives in `config`; these classes only hold values.
"""

from __future__ import annotations

import enum
import math

import attrs


class CheckKind(enum.Enum):
    """The built-in check kinds (the `kind` key of a `[[check]]` table)."""

    COMMAND = "command"
    TCP = "tcp"
    HTTP = "http"
    DNS = "dns"
    PING = "ping"
    UNIT = "unit"
    NO_FAILED_UNITS = "no-failed-units"
    PATH = "path"
    DISK = "disk"
    SCRIPT = "script"  # an executable from a required.d/ or wanted.d/ drop-in directory


@attrs.frozen
class CommandTarget:
    argv: tuple[str, ...]


@attrs.frozen
class TcpTarget:
    host: str
    port: int


@attrs.frozen
class HttpTarget:
    url: str
    expect: tuple[int, ...] = (200,)
    insecure: bool = False  # skip TLS verification (self-signed local endpoints)


@attrs.frozen
class DnsTarget:
    name: str


@attrs.frozen
class PingTarget:
    host: str


@attrs.frozen
class UnitTarget:
    unit: str


@attrs.frozen
class NoFailedUnitsTarget:
    ignore: tuple[str, ...] = ()


@attrs.frozen
class PathTarget:
    path: str


@attrs.frozen
class DiskTarget:
    path: str
    min_free_mb: float | None = None
    min_free_percent: float | None = None


@attrs.frozen
class ScriptTarget:
    path: str
    interpreter: str | None = None  # greenboot runs non-executable *.sh files with bash


Target = (
    CommandTarget
    | TcpTarget
    | HttpTarget
    | DnsTarget
    | PingTarget
    | UnitTarget
    | NoFailedUnitsTarget
    | PathTarget
    | DiskTarget
    | ScriptTarget
)


@attrs.frozen
class CheckSpec:
    """One health check: what to probe and how patiently."""

    name: str
    kind: CheckKind
    target: Target
    required: bool = True
    timeout: float = 10.0  # seconds per attempt
    retries: int = 0  # further attempts after a failed one
    backoff: float = 1.0  # seconds before the first retry, doubled after each
    grace: float = 0.0  # keep retrying until this many seconds after the first attempt
    after: tuple[str, ...] = ()  # names of checks that must pass first

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (1-based): exponential backoff, capped."""
        if attempt <= 1:
            return 0.0
        # The exponent is capped: 2 ** 1100 * backoff overflows a float (OverflowError).
        return float(min(self.backoff * 2.0 ** min(attempt - 2, 16), 30.0))


class FailureMode(enum.Enum):
    REBOOT = "reboot"
    REBOOT_AFTER = "reboot-after"
    REPORT = "report"


@attrs.frozen
class FailurePolicy:
    """What `bootguard validate` does after marking a failed boot bad."""

    mode: FailureMode = FailureMode.REBOOT
    delay: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FailurePolicy | None:
        """`reboot`, `reboot-after:SECONDS` or `report`; None when `text` is none of these."""
        if text == "reboot":
            return cls(FailureMode.REBOOT)
        if text == "report":
            return cls(FailureMode.REPORT)
        head, sep, tail = text.partition(":")
        if head == "reboot-after" and sep:
            try:
                delay = float(tail)
            except ValueError:
                return None
            if delay >= 0 and math.isfinite(delay):
                return cls(FailureMode.REBOOT_AFTER, delay)
        return None

    def __str__(self) -> str:
        if self.mode is FailureMode.REBOOT_AFTER:
            return f"reboot-after:{self.delay:g}"
        return str(self.mode.value)


class NotifierKind(enum.Enum):
    NTFY = "ntfy"
    WEBHOOK = "webhook"
    SMTP = "smtp"
    FORGE_ISSUE = "forge-issue"


@attrs.frozen
class NotifierSpec:
    """One `[[notify]]` table. Secrets are named by file (`*_file`), never given inline."""

    name: str
    kind: NotifierKind
    options: tuple[tuple[str, object], ...]  # the table minus name/kind, in a hashable form
    events: tuple[str, ...] = ("failure", "rollback", "recovery")
    timeout: float = 10.0

    def get(self, key: str, default: object = None) -> object:
        return dict(self.options).get(key, default)


@attrs.frozen
class ValidatorConfig:
    """Everything `checks.toml` and the drop-in directories say."""

    checks: tuple[CheckSpec, ...] = ()
    notifiers: tuple[NotifierSpec, ...] = ()
    deadline: float = 300.0
    on_failure: FailurePolicy = FailurePolicy()
    metrics_file: str | None = None
    source: str | None = None  # the checks.toml that was read, if any

    def check(self, name: str) -> CheckSpec | None:
        return next((c for c in self.checks if c.name == name), None)
