"""A fleet verdict: what one host concluded about one commit, as published on the shared remote.

Verdicts are data written by other machines, so parsing is strict and bounded: a fixed set of
keys with checked types and sizes, a format name and a version. Anything else is rejected with a
one-line reason (`FleetVerdictError`), which the reader turns into a warning, never a crash.

On the wire (the blob `verdict.json` in a verdict commit), canonical JSON, at most MAX_BYTES:

    {"at": "2026-12-07T04:00:00+00:00", "bootguard": "0.1.0", "cause": "panic",
     "commit": "<40 or 64 hex>", "format": "bootguard-verdict", "host": "b",
     "outcome": "failed", "stage": "boot", "version": 1}

Standard library only.
"""

from __future__ import annotations

import datetime
import enum
import json
import re

from bootguard.gitops.fleet_options import host_problem
from bootguard.model._frozen import Frozen

__all__ = [
    "FORMAT",
    "MAX_BYTES",
    "VERSION",
    "FleetVerdict",
    "FleetVerdictError",
    "VerdictOutcome",
    "host_problem",
    "parse",
]

FORMAT = "bootguard-verdict"
VERSION = 1
MAX_BYTES = 4096
MAX_CAUSE = 1000
BLOB_NAME = "verdict.json"
_KEYS = frozenset(("format", "version", "host", "commit", "outcome", "stage", "cause", "at", "bootguard"))
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_STAGE = re.compile(r"[a-z][a-z0-9-]{0,31}")
_VERSION_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FleetVerdictError(ValueError):
    """A verdict that is malformed, foreign, newer or too big; the message says which, in one line."""


class VerdictOutcome(enum.Enum):
    BLESSED = "blessed"
    FAILED = "failed"


class FleetVerdict(Frozen):
    """One host's verdict on one commit."""

    __slots__ = ("at", "bootguard", "cause", "commit", "host", "outcome", "stage")

    host: str
    commit: str
    outcome: VerdictOutcome
    stage: str  # build | validate | switch | signature | boot | … (the stage that decided)
    cause: str  # why, one line (the event log's cause word or the failing command's reason)
    at: str  # ISO 8601 with a UTC offset
    bootguard: str  # the version of bootguard that wrote it

    def __init__(
        self,
        *,
        host: str,
        commit: str,
        outcome: VerdictOutcome,
        stage: str,
        cause: str,
        at: str,
        bootguard: str,
    ) -> None:
        self._init(
            host=host, commit=commit, outcome=outcome, stage=stage, cause=cause, at=at, bootguard=bootguard
        )

    @classmethod
    def local(
        cls, *, host: str, commit: str, outcome: str, stage: str, cause: str, at: str, version: str
    ) -> FleetVerdict:
        """This host's own verdict, made to fit the format (a long cause is cut, control characters
        become spaces); raises FleetVerdictError only for what cannot be made to fit (a bad commit id)."""
        try:
            when = datetime.datetime.fromisoformat(at)
            if when.tzinfo is None:  # a local time without offset: say which offset it was
                at = when.astimezone().isoformat(timespec="seconds")
        except ValueError:
            pass  # parse() below rejects it with the reason
        cause = _CONTROL.sub(" ", cause).strip()
        if len(cause) > MAX_CAUSE:
            cause = cause[: MAX_CAUSE - 1] + "…"
        stage = stage.lower() if _STAGE.fullmatch(stage.lower()) else "other"
        v = cls(
            host=host,
            commit=commit,
            outcome=_outcome(outcome),
            stage=stage,
            cause=cause,
            at=at,
            bootguard=version if _VERSION_TEXT.fullmatch(version) else "unknown",
        )
        return parse(v.to_bytes())

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies a verdict of one host: publishing the same verdict twice is a no-op."""
        return (self.commit, self.outcome.value, self.stage, self.at)

    @property
    def when(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.at)

    @property
    def blessed(self) -> bool:
        return self.outcome is VerdictOutcome.BLESSED

    def describe(self) -> str:
        if self.blessed:
            return f"{self.host} blessed {self.commit[:12]} on {self.at}"
        return f"{self.host} failed {self.commit[:12]} at {self.stage} on {self.at}: {self.cause}"

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "host": self.host,
            "commit": self.commit,
            "outcome": self.outcome.value,
            "stage": self.stage,
            "cause": self.cause,
            "at": self.at,
            "bootguard": self.bootguard,
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False) + "\n").encode()


def _outcome(text: object) -> VerdictOutcome:
    try:
        return VerdictOutcome(text)
    except ValueError:
        raise FleetVerdictError(f"outcome {text!r} is not 'blessed' or 'failed'") from None


def _string(obj: dict[str, object], key: str, limit: int) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise FleetVerdictError(f"{key!r} must be a string")
    if len(value) > limit:
        raise FleetVerdictError(f"{key!r} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise FleetVerdictError(f"{key!r} contains control characters")
    return value


def parse(data: bytes) -> FleetVerdict:
    """A verdict from its blob; FleetVerdictError (one line) unless it is a valid version-1 verdict."""
    if len(data) > MAX_BYTES:
        raise FleetVerdictError(f"{len(data)} bytes, more than the {MAX_BYTES} a verdict may have")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FleetVerdictError("not JSON") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise FleetVerdictError(f"not a {FORMAT} (foreign data)")
    version = obj.get("version")
    if type(version) is not int:
        raise FleetVerdictError("'version' must be an integer")
    if version != VERSION:
        raise FleetVerdictError(f"version {version} is not supported (this bootguard reads {VERSION})")
    if set(obj) != _KEYS:
        missing, extra = sorted(_KEYS - set(obj)), sorted(set(obj) - _KEYS)
        raise FleetVerdictError(f"keys wrong (missing {missing}, unknown {extra})")
    host = _string(obj, "host", 63)
    problem = host_problem(host)
    if problem:
        raise FleetVerdictError(problem)
    commit = _string(obj, "commit", 64)
    if not _COMMIT.fullmatch(commit):
        raise FleetVerdictError(f"commit {commit[:70]!r} is not a full lowercase hex object id")
    stage = _string(obj, "stage", 32)
    if not _STAGE.fullmatch(stage):
        raise FleetVerdictError(f"stage {stage!r} is not a stage word")
    at = _string(obj, "at", 40)
    try:
        when = datetime.datetime.fromisoformat(at)
    except ValueError:
        raise FleetVerdictError(f"'at' {at!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise FleetVerdictError(f"'at' {at!r} has no UTC offset")
    version_text = _string(obj, "bootguard", 64)
    if not _VERSION_TEXT.fullmatch(version_text):
        raise FleetVerdictError(f"'bootguard' {version_text!r} is not a version")
    return FleetVerdict(
        host=host,
        commit=commit,
        outcome=_outcome(obj["outcome"]),
        stage=stage,
        cause=_string(obj, "cause", MAX_CAUSE),
        at=at,
        bootguard=version_text,
    )
