"""ntfy (https://ntfy.sh or self-hosted): POST the text to `<url>/<topic>`, title and priority in headers."""

from __future__ import annotations

from bootguard.validator.notify.base import NotifyEvent, http_post
from bootguard.validator.notify.sender import Sender

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.validator.notify.base import Notification

_PRIORITY = {NotifyEvent.FAILURE: "high", NotifyEvent.ROLLBACK: "high", NotifyEvent.RECOVERY: "default"}
_TAGS = {
    NotifyEvent.FAILURE: "warning",
    NotifyEvent.ROLLBACK: "rewind",
    NotifyEvent.RECOVERY: "white_check_mark",
}


class NtfySender(Sender):
    required = ("url", "topic")

    def send(self, notification: Notification) -> None:
        url = f"{self.option('url').rstrip('/')}/{self.option('topic')}"
        headers = {
            "Title": notification.title,
            "Priority": _PRIORITY[notification.event],
            "Tags": _TAGS[notification.event],
            "Content-Type": "text/plain; charset=utf-8",
        }
        token = self.secret("token_file")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        secrets = (token,) if token else ()
        http_post(url, notification.text().encode("utf-8"), headers, self.timeout, secrets)
