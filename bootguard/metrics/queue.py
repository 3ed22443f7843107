"""Notifications waiting in `<state-dir>/notify-queue/` for a later run to deliver them."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.metrics.sources import Sources
    from bootguard.metrics.textfile import Out


def _queued_at(path: str) -> float | None:
    """The queue names its files `<epoch milliseconds>-<random>.json` when it first queues them
    (a retry rewrites the file, so its mtime is the last attempt, not the first)."""
    stamp = os.path.basename(path).partition("-")[0]
    if stamp.isdigit():
        return int(stamp) / 1000
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def collect(src: Sources, out: Out) -> None:
    directory = os.path.join(src.state_dir, "notify-queue")
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".json")]
    except FileNotFoundError:
        names = []
    oldest: float | None = None
    for name in names:
        when = _queued_at(os.path.join(directory, name))
        if when is not None:
            oldest = when if oldest is None else min(oldest, when)
    out.gauge(
        "bootguard_notifications_queued",
        "Notifications not delivered yet (retried on every run).",
        len(names),
    )
    out.gauge(
        "bootguard_notifications_oldest_queued_timestamp_seconds",
        "When the oldest notification still queued was queued.",
        oldest,
    )
