"""What the validator writes down: events in the core's event log and `last-validation.json`.

`blessed` and `marked-bad` events come from the core's verdict (the one blesser); this module adds
`validation` (one per run), `check-failed` (one per failed check) and `notification-failed`.
`last-validation.json` (format in docs/validator.md) is replaced atomically, so `bootguard status`
always reads a whole document.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from bootguard.seams.fs import atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from bootguard.validator.results import Report

LAST_VALIDATION = "last-validation.json"
FORMAT_VERSION = 1


class Recorder(Protocol):
    def event(
        self,
        kind: str,
        message: str,
        *,
        entry: str | None = None,
        cause: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> None:
        """Append one event (kind is an `EventKind` value)."""


class StateRecorder:
    """Events into `<state-dir>/events.jsonl` through the core's StateStore."""

    def __init__(self, state_dir: str) -> None:
        from bootguard.seams.statestore import StateStore

        self.store = StateStore(state_dir)

    def event(
        self,
        kind: str,
        message: str,
        *,
        entry: str | None = None,
        cause: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> None:
        from bootguard.model.events import Event, EventKind

        self.store.append_event(Event.new(EventKind(kind), message, entry=entry, cause=cause, data=data))


def record_report(recorder: Recorder, report: Report, entry: str | None) -> None:
    """One `validation` event, then one `check-failed` per check that did not pass."""
    recorder.event(
        "validation",
        f"validation {report.result}: {report.summary()}",
        entry=entry,
        cause=None if report.passed else "checks-failed",
        data={
            "result": report.result,
            "seconds": round(report.seconds, 3),
            "failed": [c.name for c in report.failed_required],
        },
    )
    for c in report.checks:
        if not c.result.ok:
            recorder.event(
                "check-failed",
                f"{'required' if c.required else 'wanted'} check {c.name} {c.result.value}: {c.message}",
                entry=entry,
                cause=c.name,
                data={
                    "required": c.required,
                    "result": c.result.value,
                    "seconds": round(c.seconds, 3),
                    "attempts": c.attempts,
                },
            )


def last_validation_doc(
    report: Report,
    *,
    entry: str | None,
    decision: str,
    boot_id: str | None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    doc: dict[str, object] = {
        "version": FORMAT_VERSION,
        "result": report.result,
        "decision": decision,
        "time": report.started,
        "finished": report.started + report.seconds,
        "seconds": round(report.seconds, 3),
        "deadline_hit": report.deadline_hit,
        "boot_id": boot_id,
        "entry": entry,
        "checks": [{**c.to_json(), "attempts": c.attempts} for c in report.checks],
    }
    doc.update(extra or {})
    return doc


def write_last_validation(state_dir: str, doc: Mapping[str, object]) -> Path:
    directory = Path(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / LAST_VALIDATION
    atomic_write(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"), mode=0o644)
    return path


def read_last_validation(state_dir: str) -> dict[str, object] | None:
    """The previous run's document, or None when there is none or it is unreadable."""
    try:
        with open(os.path.join(state_dir, LAST_VALIDATION), encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
