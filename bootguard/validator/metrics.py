"""Prometheus metrics in the node-exporter textfile format, written atomically.

node-exporter's textfile collector reads `*.prom` files from one directory
(`--collector.textfile.directory`, `/var/lib/prometheus/node-exporter` on Debian); a file must be
replaced with a rename, never rewritten in place, or a scrape can see half of it.

Sources: the core's state (attempt counters per entry, golden), its event log (failures by cause,
rollbacks, the last good boot) and the report of this run (check results and durations).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs

from bootguard.seams.fs import atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from bootguard.model.events import Event
    from bootguard.model.state import State
    from bootguard.validator.results import Report

DEFAULT_FILE = "/var/lib/prometheus/node-exporter/bootguard.prom"
# Event kinds that are a failed boot attempt, with the cause taken from the event (or the kind).
_FAILURE_KINDS = ("counted-failure", "marked-bad", "watchdog-reset", "initrd-failure", "trial-failed")


@attrs.frozen
class Facts:
    """Everything the metrics file says, gathered once."""

    attempts: tuple[tuple[str, int, int, int], ...] = ()  # (entry, boots, good, failures)
    failures_by_cause: tuple[tuple[str, int], ...] = ()
    rollbacks: int = 0
    golden_entry: str | None = None
    golden_generation: int | None = None
    last_good: float | None = None
    report: Report | None = None
    now: float = 0.0

    @classmethod
    def gather(
        cls, state: State | None, events: Iterable[Event], report: Report | None, now: float | None = None
    ) -> Facts:
        causes: dict[str, int] = {}
        rollbacks, last_good = 0, None
        for e in events:
            kind = e.kind.value
            if kind in _FAILURE_KINDS:
                cause = e.cause or kind
                causes[cause] = causes.get(cause, 0) + 1
            elif kind == "rolled-back":
                rollbacks += 1
            elif kind == "blessed":
                last_good = max(last_good or 0.0, e.time)
        attempts: tuple[tuple[str, int, int, int], ...] = ()
        golden = None
        if state is not None:
            attempts = tuple(
                sorted((name, a.boots, a.good, a.failures) for name, a in state.attempts_map.items())
            )
            golden = state.golden
        return cls(
            attempts=attempts,
            failures_by_cause=tuple(sorted(causes.items())),
            rollbacks=rollbacks,
            golden_entry=None if golden is None else golden.filename,
            golden_generation=None if golden is None else golden.generation,
            last_good=last_good,
            report=report,
            now=time.time() if now is None else now,
        )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, **labels: str) -> None:
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        number = repr(float(value)) if not float(value).is_integer() else str(int(value))
        self.lines.append(f"{name}{{{inner}}} {number}" if inner else f"{name} {number}")


def render(f: Facts) -> str:
    """The textfile content (sorted, stable, one family per metric)."""
    out = _Out()
    out.family("bootguard_boot_attempts_total", "counter", "Boots of each entry seen by bootguard.")
    for entry, boots, _, _ in f.attempts:
        out.sample("bootguard_boot_attempts_total", boots, entry=entry)
    out.family("bootguard_boot_good_total", "counter", "Boots of each entry validated good.")
    for entry, _, good, _ in f.attempts:
        out.sample("bootguard_boot_good_total", good, entry=entry)
    out.family("bootguard_boot_failures_total", "counter", "Failed boot attempts by cause.")
    for cause, count in f.failures_by_cause:
        out.sample("bootguard_boot_failures_total", count, cause=cause)
    out.family("bootguard_rollbacks_total", "counter", "Fallbacks to another entry or to golden.")
    out.sample("bootguard_rollbacks_total", f.rollbacks)
    out.family("bootguard_golden_info", "gauge", "The pinned golden entry (1 when one is pinned).")
    if f.golden_entry is not None:
        gen = "" if f.golden_generation is None else str(f.golden_generation)
        out.sample("bootguard_golden_info", 1, entry=f.golden_entry, generation=gen)
    if f.golden_generation is not None:
        out.family("bootguard_golden_generation", "gauge", "NixOS generation number of the golden entry.")
        out.sample("bootguard_golden_generation", f.golden_generation)
    if f.last_good is not None:
        out.family("bootguard_last_good_boot_timestamp_seconds", "gauge", "When a boot was last blessed.")
        out.sample("bootguard_last_good_boot_timestamp_seconds", round(f.last_good, 3))
        out.family(
            "bootguard_seconds_since_last_good_boot", "gauge", "Seconds since a boot was last blessed."
        )
        out.sample("bootguard_seconds_since_last_good_boot", round(max(0.0, f.now - f.last_good), 3))
    if f.report is not None:
        _report(out, f.report)
    return "\n".join(out.lines) + "\n"


def _report(out: _Out, r: Report) -> None:
    out.family("bootguard_last_validation_success", "gauge", "1 when every required check passed last time.")
    out.sample("bootguard_last_validation_success", 1 if r.passed else 0)
    out.family("bootguard_last_validation_timestamp_seconds", "gauge", "When the last validation started.")
    out.sample("bootguard_last_validation_timestamp_seconds", round(r.started, 3))
    out.family("bootguard_last_validation_duration_seconds", "gauge", "How long the last validation took.")
    out.sample("bootguard_last_validation_duration_seconds", round(r.seconds, 3))
    out.family("bootguard_check_success", "gauge", "1 when the check passed in the last validation.")
    for c in r.checks:
        out.sample(
            "bootguard_check_success",
            1 if c.result.ok else 0,
            check=c.name,
            required="true" if c.required else "false",
            result=c.result.value,
        )
    out.family("bootguard_check_duration_seconds", "gauge", "Seconds each check took in the last validation.")
    for c in r.checks:
        out.sample("bootguard_check_duration_seconds", round(c.seconds, 3), check=c.name)


def collect(state_dir: str, report: Report | None) -> Facts:
    """Facts from the state directory (missing state = no history yet)."""
    from bootguard.seams.statestore import StateStore

    store = StateStore(state_dir)
    return Facts.gather(store.load().state, store.read_events().events, report)


def write(path: str | os.PathLike[str], text: str) -> Path:
    """Replace the textfile atomically; 0644 because node-exporter runs as its own user."""
    target = Path(path)
    atomic_write(target, text.encode("utf-8"), mode=0o644)
    return target
