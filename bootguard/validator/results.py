"""What a validation found: one `CheckResult` per check and the `Report` around them.

`Report.to_json()` is the `bootguard check --json` document and the core of
`<state-dir>/last-validation.json` (docs/validator.md describes both).
"""

from __future__ import annotations

import enum

import attrs


class Result(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    TIMEOUT = "timeout"  # the last attempt, or the whole validation, ran out of time
    SKIPPED = "skipped"  # a check it depends on did not pass

    @property
    def ok(self) -> bool:
        return self is Result.PASS


@attrs.frozen
class CheckResult:
    name: str
    required: bool
    result: Result
    seconds: float
    message: str
    attempts: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "required": self.required,
            "result": self.result.value,
            "seconds": round(self.seconds, 3),
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CheckResult:
        return cls(
            name=str(data["name"]),
            required=bool(data["required"]),
            result=Result(data["result"]),
            seconds=float(data["seconds"]),  # type: ignore[arg-type]
            message=str(data.get("message", "")),
            attempts=int(data.get("attempts", 0)),  # type: ignore[call-overload]
        )


@attrs.frozen
class Report:
    """All check results of one run, in configuration order."""

    checks: tuple[CheckResult, ...]
    started: float  # wall clock (time.time())
    seconds: float
    deadline_hit: bool = False

    @property
    def passed(self) -> bool:
        """Every required check passed (wanted checks only inform)."""
        return all(c.result.ok for c in self.checks if c.required)

    @property
    def failed_required(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.required and not c.result.ok)

    @property
    def failed_wanted(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.required and not c.result.ok)

    @property
    def result(self) -> str:
        return "pass" if self.passed else "fail"

    def to_json(self) -> dict[str, object]:
        """Exactly the documented `bootguard check --json` shape."""
        return {"result": self.result, "checks": [c.to_json() for c in self.checks]}

    def summary(self) -> str:
        """One line for STATUS= and journal messages."""
        if not self.checks:
            return "no checks configured"
        failed = self.failed_required
        if not failed:
            extra = f", {len(self.failed_wanted)} wanted failed" if self.failed_wanted else ""
            return f"all {sum(c.required for c in self.checks)} required checks passed{extra}"
        names = ", ".join(c.name for c in failed[:5])
        return f"{len(failed)} required check(s) failed: {names}"
