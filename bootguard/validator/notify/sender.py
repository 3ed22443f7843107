"""The common shape of a notifier: built from its `[[notify]]` spec, sends one notification."""

from __future__ import annotations

from bootguard.validator.notify.secrets import Secret, read_secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.validator.notify.base import Notification
    from bootguard.validator.spec import NotifierSpec


class Sender:
    """Base class; subclasses implement `send` and raise NotifyError when delivery fails."""

    required: tuple[str, ...] = ()

    def __init__(self, spec: NotifierSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.timeout = spec.timeout

    def wants(self, notification: Notification) -> bool:
        return notification.event.value in self.spec.events

    def option(self, key: str, default: str = "") -> str:
        value = self.spec.get(key, default)
        return default if value is None else str(value)

    def secret(self, key: str) -> Secret | None:
        """The secret named by option `key` (a `*_file`), read now, or None when not configured."""
        name = self.spec.get(key)
        return None if name is None else read_secret(str(name))

    def send(self, notification: Notification) -> None:
        raise NotImplementedError
