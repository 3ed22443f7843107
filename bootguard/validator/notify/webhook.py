"""Generic JSON webhook: POST the notification as JSON (docs/validator.md shows the document)."""

from __future__ import annotations

import json

from bootguard.validator.notify.base import http_post
from bootguard.validator.notify.sender import Sender

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.validator.notify.base import Notification


class WebhookSender(Sender):
    required = ("url",)

    def send(self, notification: Notification) -> None:
        headers = {"Content-Type": "application/json"}
        token = self.secret("token_file")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        body = json.dumps({"source": "bootguard", **notification.to_json()}).encode("utf-8")
        http_post(self.option("url"), body, headers, self.timeout, (token,) if token else ())
