"""Notifications on failure, rollback and recovery: ntfy, JSON webhook, SMTP e-mail, forge issue.

`build(spec)` makes a sender; `dispatch.Dispatcher` delivers to all of them in parallel under a time
limit and queues what could not be delivered (`queue.NotifyQueue`) for the next run, so a dead
notification endpoint never delays blessing or rollback.
"""

from __future__ import annotations

from bootguard.validator.spec import NotifierKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.validator.notify.sender import Sender
    from bootguard.validator.spec import NotifierSpec


def _class(kind: NotifierKind) -> type[Sender]:
    match kind:
        case NotifierKind.NTFY:
            from bootguard.validator.notify.ntfy import NtfySender

            return NtfySender
        case NotifierKind.WEBHOOK:
            from bootguard.validator.notify.webhook import WebhookSender

            return WebhookSender
        case NotifierKind.SMTP:
            from bootguard.validator.notify.smtp import SmtpSender

            return SmtpSender
        case NotifierKind.FORGE_ISSUE:
            from bootguard.validator.notify.forge import ForgeIssueSender

            return ForgeIssueSender


def required_options(kind: NotifierKind) -> tuple[str, ...]:
    return _class(kind).required


def build(spec: NotifierSpec) -> Sender:
    return _class(spec.kind)(spec)
