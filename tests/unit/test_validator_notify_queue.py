"""Dispatch with fake senders: parallel, bounded, queued on failure, retried and dropped later."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bootguard.validator.notify import queue as queue_mod
from bootguard.validator.notify.base import Notification, NotifyError, NotifyEvent
from bootguard.validator.notify.dispatch import Dispatcher
from bootguard.validator.notify.queue import NotifyQueue
from bootguard.validator.notify.sender import Sender
from bootguard.validator.spec import NotifierKind, NotifierSpec

NOTE = Notification(
    NotifyEvent.FAILURE, "boot failed", "sshd: down", "host1", 1.0, "a+2-1.conf", (("sshd", "down"),)
)


class Fake(Sender):
    def __init__(
        self, name: str, *, fail: bool = False, hang: float = 0.0, events: tuple[str, ...] = ()
    ) -> None:
        spec = NotifierSpec(name, NotifierKind.WEBHOOK, (("url", "http://x"),))
        super().__init__(NotifierSpec(name, spec.kind, spec.options, events) if events else spec)
        self.fail, self.hang = fail, hang
        self.got: list[Notification] = []

    def send(self, notification: Notification) -> None:
        time.sleep(self.hang)
        if self.fail:
            raise NotifyError(f"{self.name} is down")
        self.got.append(notification)


def test_failed_delivery_is_queued_reported_and_retried_next_run(tmp_path: Path) -> None:
    """An undeliverable notification is queued and reported; the next run delivers and removes it."""
    reported: list[tuple[str, str, str]] = []
    good, bad = Fake("good"), Fake("bad", fail=True)
    q = NotifyQueue(tmp_path)
    d = Dispatcher([good, bad], q, on_failure=lambda *a: reported.append(a))
    result = d.deliver(NOTE)
    assert (result.sent, result.queued) == (("good",), ("bad",))
    assert reported == [("bad", "bad is down", "failure")]
    [item] = q.items()
    assert item.notification == NOTE and item.attempts == 1
    bad.fail = False
    again = Dispatcher([good, bad], q).retry_queued()
    assert again.sent == ("bad",) and bad.got == [NOTE]
    assert q.items() == []


def test_retry_counts_attempts_then_drops(tmp_path: Path) -> None:
    """Each failed retry increments attempts; at MAX_ATTEMPTS the entry is dropped and reported."""
    q = NotifyQueue(tmp_path)
    q.put("bad", NOTE, "first")
    reported: list[tuple[str, str, str]] = []
    d = Dispatcher([Fake("bad", fail=True)], q, on_failure=lambda *a: reported.append(a))
    d.retry_queued()
    assert q.items()[0].attempts == 2
    for _ in range(queue_mod.MAX_ATTEMPTS):
        d.retry_queued()
    assert q.items() == []
    assert "gave up after" in reported[-1][1]


def test_entries_of_removed_notifiers_are_dropped(tmp_path: Path) -> None:
    """A queued message for a notifier no longer configured is dropped, not retried forever."""
    q = NotifyQueue(tmp_path)
    q.put("gone", NOTE, "x")
    assert Dispatcher([Fake("other")], q).retry_queued().dropped == ("gone",)
    assert q.items() == []


def test_a_hung_sender_cannot_hold_delivery_past_the_limit(tmp_path: Path) -> None:
    """Senders run in parallel under one limit; the slow one is queued when the limit passes."""
    fast, slow = Fake("fast"), Fake("slow", hang=5)
    start = time.monotonic()
    result = Dispatcher([fast, slow], NotifyQueue(tmp_path), limit=0.5).deliver(NOTE)
    assert time.monotonic() - start < 3
    assert result.sent == ("fast",) and result.queued == ("slow",)


def test_corrupt_queue_file_is_set_aside(tmp_path: Path) -> None:
    """A damaged queue entry is renamed *.bad instead of breaking every later run."""
    q = NotifyQueue(tmp_path)
    q.dir.mkdir()
    (q.dir / "0001.json").write_text("{not json")
    assert q.items() == []
    assert [p.name for p in q.dir.iterdir()] == ["0001.bad"]


def test_queue_file_round_trips_the_notification(tmp_path: Path) -> None:
    """What is queued is the notification itself (no secrets), as JSON."""
    item = NotifyQueue(tmp_path).put("n", NOTE, "err")
    doc = json.loads(item.path.read_text())
    assert doc["notification"]["failed"] == [{"name": "sshd", "message": "down"}]
    assert Notification.from_json(doc["notification"]) == NOTE


def test_events_filter_which_senders_are_used(tmp_path: Path) -> None:
    """A notifier configured for recovery only is not used for failures."""
    only_recovery = Fake("r")
    object.__setattr__(
        only_recovery, "spec", NotifierSpec("r", NotifierKind.WEBHOOK, (), events=("recovery",))
    )
    assert Dispatcher([only_recovery], NotifyQueue(tmp_path)).deliver(NOTE).sent == ()
