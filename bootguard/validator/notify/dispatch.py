"""Deliver notifications to every sender in parallel, under one time limit; queue the failures.

Blessing and marking bad happen before notifications are sent, and delivery waits at most
`limit` seconds overall, so an unreachable endpoint delays a rollback reboot by that much at most
and never blocks it. Delivery is at-least-once: a sender abandoned at the limit is queued, even if
its request arrives later.
"""

from __future__ import annotations

import threading
import time

import attrs

from bootguard.errors import BootguardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bootguard.validator.notify.base import Notification
    from bootguard.validator.notify.queue import NotifyQueue, Queued
    from bootguard.validator.notify.sender import Sender

    # (notifier name, redacted error, notification event) for events and the journal
    OnFailure = Callable[[str, str, str], None]


@attrs.frozen
class Delivery:
    sent: tuple[str, ...] = ()
    queued: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


def _try(sender: Sender, notification: Notification) -> str | None:
    """None when delivered, else the (already redacted) reason."""
    try:
        sender.send(notification)
    except BootguardError as exc:  # NotifyError, or ConfigError for a missing secret file
        return exc.message
    # A sender bug must not look like a timeout nor crash the validation; only the type is
    # reported because an arbitrary exception text might quote a secret.
    except Exception as exc:
        return f"{sender.spec.kind.value} sender failed: {type(exc).__name__}"
    return None


def _parallel(jobs: Sequence[tuple[Sender, Notification]], limit: float) -> list[str | None]:
    results: list[str | None] = [f"no answer within {limit:g} s"] * len(jobs)
    done = [threading.Event() for _ in jobs]

    def work(i: int) -> None:
        sender, notification = jobs[i]
        results[i] = _try(sender, notification)
        done[i].set()

    for i in range(len(jobs)):
        threading.Thread(target=work, args=(i,), name=f"notify:{jobs[i][0].name}", daemon=True).start()
    end = time.monotonic() + limit
    for event in done:
        event.wait(max(0.0, end - time.monotonic()))
    return [results[i] if done[i].is_set() else f"no answer within {limit:g} s" for i in range(len(jobs))]


class Dispatcher:
    def __init__(
        self,
        senders: Sequence[Sender],
        queue: NotifyQueue,
        *,
        on_failure: OnFailure | None = None,
        limit: float | None = None,
    ) -> None:
        self.senders = {s.name: s for s in senders}
        self.queue = queue
        self.on_failure = on_failure
        self.limit = limit if limit is not None else max((s.timeout for s in senders), default=10.0) + 1.0

    def deliver(self, notification: Notification) -> Delivery:
        """Send to every sender that wants this event; queue each failure."""
        targets = [s for s in self.senders.values() if s.wants(notification)]
        errors = _parallel([(s, notification) for s in targets], self.limit)
        sent, queued = [], []
        for sender, error in zip(targets, errors, strict=True):
            if error is None:
                sent.append(sender.name)
                continue
            self.queue.put(sender.name, notification, error)
            queued.append(sender.name)
            self._report(sender.name, error, notification)
        return Delivery(tuple(sent), tuple(queued))

    def retry_queued(self) -> Delivery:
        """Retry what earlier runs could not deliver; drop entries whose notifier is gone."""
        items = self.queue.items()
        jobs: list[tuple[Queued, Sender]] = []
        dropped: list[str] = []
        for item in items:
            sender = self.senders.get(item.notifier)
            if sender is None:
                self.queue.delivered(item)  # the notifier was removed from the configuration
                dropped.append(item.notifier)
            else:
                jobs.append((item, sender))
        errors = _parallel([(s, i.notification) for i, s in jobs], self.limit)
        sent, queued = [], []
        for (item, sender), error in zip(jobs, errors, strict=True):
            if error is None:
                self.queue.delivered(item)
                sent.append(sender.name)
            elif self.queue.failed_again(item, error):
                queued.append(sender.name)
            else:
                dropped.append(sender.name)
                self._report(
                    sender.name, f"{error} (gave up after {item.attempts + 1} attempts)", item.notification
                )
        return Delivery(tuple(sent), tuple(queued), tuple(dropped))

    def _report(self, name: str, error: str, notification: Notification) -> None:
        if self.on_failure is not None:
            self.on_failure(name, error, notification.event.value)
