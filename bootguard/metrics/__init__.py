"""bootguard's Prometheus metrics: the whole state of a host in one node-exporter textfile.

`export(sources, path)` reads everything from disk — the state and event log (`StateStore`), the
loader's view (`BootView`), `last-validation.json`, `gitops.json` and the repositories' refs, the
notification queue, the watchdog's sysfs — renders one textfile and replaces it atomically. It runs
after every `bootguard validate`, `upgrade` and `commit`, so whichever ran last, the file tells the
whole story. The early-boot step exports nothing itself (no userland imports there): what it saw is
in the state and the event log, which the next export reads. docs/monitoring.md lists every metric.

Each source is collected on its own: one that fails is reported as
`bootguard_metrics_collector_success{collector=…} 0` and the others are still written.
"""

from __future__ import annotations

import time

from bootguard.errors import BootguardError
from bootguard.metrics.sources import DEFAULT_FILE, FILE_ENV, Sources, target

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from pathlib import Path

    from bootguard.metrics.textfile import Out

__all__ = ["DEFAULT_FILE", "FILE_ENV", "Sources", "export", "export_quietly", "render", "target"]


def _collectors() -> tuple[tuple[str, Callable[[Sources, Out], None]], ...]:
    from bootguard.metrics import boot, gitops, queue, validation, watchdog

    return (
        ("boot", boot.collect),
        ("validation", validation.collect),
        ("gitops", gitops.collect),
        ("notify", queue.collect),
        ("watchdog", watchdog.collect),
    )


def render(src: Sources, now: float | None = None) -> str:
    """The textfile content for the host described by `src`."""
    from bootguard.metrics.textfile import Out

    out = Out()
    results: list[tuple[str, int]] = []
    for name, collect in _collectors():
        try:
            collect(src, out)
            results.append((name, 1))
        except (BootguardError, OSError, ValueError):
            results.append((name, 0))
    out.family(
        "bootguard_metrics_collector_success", "gauge", "1 when the source could be read for this file."
    )
    for name, ok in results:
        out.sample("bootguard_metrics_collector_success", ok, collector=name)
    out.gauge(
        "bootguard_metrics_timestamp_seconds",
        "When bootguard last wrote this file.",
        time.time() if now is None else now,
    )
    return out.text()


def export(src: Sources, path: str | os.PathLike[str]) -> Path:
    from bootguard.metrics import textfile

    return textfile.write(path, render(src))


def export_quietly(src: Sources, configured: str | None = None) -> str | None:
    """After a run: export if there is a place to (`target`); a failure is a warning on stderr,
    never the run's outcome. Returns the path written, or None."""
    path = target(configured)
    if path is None:
        return None
    try:
        export(src, path)
    except (BootguardError, OSError) as exc:
        import sys

        text = exc.message if isinstance(exc, BootguardError) else str(exc)
        sys.stderr.write(f"bootguard: warning: metrics not written to {path}: {text}\n")
        return None
    return path
