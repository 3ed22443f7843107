"""The last validation, from `<state-dir>/last-validation.json` (written before the metrics)."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.metrics.sources import Sources
    from bootguard.metrics.textfile import Out


def read(state_dir: str) -> dict[str, object] | None:
    try:
        with open(os.path.join(state_dir, "last-validation.json"), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _num(doc: dict[str, object], key: str) -> float | None:
    value = doc.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def collect(src: Sources, out: Out) -> None:
    doc = read(src.state_dir) or {}
    result = doc.get("result")
    out.gauge(
        "bootguard_last_validation_success",
        "1 when every required check passed in the last validation, 0 when it failed.",
        None if result is None else int(result == "pass"),
    )
    decision = doc.get("decision")
    out.gauge(
        "bootguard_last_validation_info",
        "What the last validation decided (blessed, marked-bad, halted, bless-failed, mark-bad-failed).",
        1 if isinstance(decision, str) else None,
        decision=decision if isinstance(decision, str) else None,
    )
    out.gauge(
        "bootguard_last_validation_timestamp_seconds", "When the last validation started.", _num(doc, "time")
    )
    out.gauge(
        "bootguard_last_validation_duration_seconds",
        "How long the last validation took.",
        _num(doc, "seconds"),
    )
    hit = doc.get("deadline_hit")
    out.gauge(
        "bootguard_last_validation_deadline_hit",
        "1 when the last validation ran out of its deadline (or the boot never completed).",
        None if not doc else int(bool(hit) or doc.get("cause") == "boot-deadline"),
    )
    out.family("bootguard_check_success", "gauge", "1 when the check passed in the last validation.")
    out.family("bootguard_check_duration_seconds", "gauge", "Seconds each check took in the last validation.")
    checks = doc.get("checks")
    for c in checks if isinstance(checks, list) else []:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            continue
        name, required = str(c["name"]), "true" if c.get("required") else "false"
        result_word = str(c.get("result", ""))
        out.sample(
            "bootguard_check_success",
            int(result_word == "pass"),
            check=name,
            required=required,
            result=result_word,
        )
        seconds = _num(c, "seconds")
        if seconds is not None:
            out.sample("bootguard_check_duration_seconds", seconds, check=name)
