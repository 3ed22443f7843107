"""Undeliverable notifications, kept in `<state-dir>/notify-queue/` until a later run delivers them.

One JSON file per (notification, notifier), written atomically, so a crash never leaves half an
entry. Files hold the notification and the redacted last error, never a secret (senders read
their secrets at send time). After `MAX_ATTEMPTS` failed deliveries an entry is dropped, so a
notifier removed or broken for good cannot grow the queue without bound.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import attrs

from bootguard.seams.fs import atomic_write
from bootguard.validator.notify.base import Notification

MAX_ATTEMPTS = 20


@attrs.frozen
class Queued:
    path: Path
    notifier: str
    notification: Notification
    attempts: int
    last_error: str

    @classmethod
    def load(cls, path: Path) -> Queued:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            path=path,
            notifier=str(data["notifier"]),
            notification=Notification.from_json(data["notification"]),
            attempts=int(data["attempts"]),
            last_error=str(data.get("last_error", "")),
        )

    def dump(self) -> bytes:
        doc = {
            "notifier": self.notifier,
            "notification": self.notification.to_json(),
            "attempts": self.attempts,
            "last_error": self.last_error,
        }
        return json.dumps(doc, sort_keys=True).encode("utf-8")


class NotifyQueue:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir) / "notify-queue"

    def put(self, notifier: str, notification: Notification, error: str) -> Queued:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:8]}.json"
        item = Queued(self.dir / name, notifier, notification, 1, error)
        atomic_write(item.path, item.dump())
        return item

    def items(self) -> list[Queued]:
        """Queued entries, oldest first; unreadable files are set aside as `*.bad`, not retried forever."""
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json"))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            path = self.dir / name
            try:
                found.append(Queued.load(path))
            except (ValueError, KeyError, TypeError, AttributeError):
                os.replace(path, path.with_suffix(".bad"))
        return found

    def delivered(self, item: Queued) -> None:
        item.path.unlink(missing_ok=True)

    def failed_again(self, item: Queued, error: str) -> bool:
        """Count another failed attempt; False when the entry was dropped for good."""
        if item.attempts + 1 >= MAX_ATTEMPTS:
            item.path.unlink(missing_ok=True)
            return False
        atomic_write(item.path, attrs.evolve(item, attempts=item.attempts + 1, last_error=error).dump())
        return True
