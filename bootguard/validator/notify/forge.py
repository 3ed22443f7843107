"""Open an issue on a forge through its REST API: a webhook template.

Defaults fit Gitea/Forgejo (`POST /api/v1/repos/OWNER/REPO/issues`, `Authorization: token T`,
`{"title", "body"}`). GitHub: `auth_scheme = "Bearer"`. GitLab: `auth_header = "PRIVATE-TOKEN"`,
`auth_scheme = ""`, `body_field = "description"`. Recovery notices do not open issues by default.
"""

from __future__ import annotations

import json

from bootguard.validator.notify.base import http_post
from bootguard.validator.notify.sender import Sender

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.validator.notify.base import Notification


class ForgeIssueSender(Sender):
    required = ("url", "token_file")

    def wants(self, notification: Notification) -> bool:
        events = self.spec.events
        if events == ("failure", "rollback", "recovery"):  # the generic default: no issue for good news
            events = ("failure", "rollback")
        return notification.event.value in events

    def body(self, notification: Notification) -> str:
        lines = [notification.message, "", f"- host: `{notification.host}`"]
        if notification.entry:
            lines.append(f"- boot entry: `{notification.entry}`")
        if notification.failed:
            lines += ["", "| check | why |", "|---|---|"]
            lines += [f"| {n} | {m.replace('|', '/')} |" for n, m in notification.failed]
        lines += ["", "_Opened by bootguard._"]
        return "\n".join(lines)

    def send(self, notification: Notification) -> None:
        token = self.secret("token_file")
        assert token is not None  # required option
        scheme = self.option("auth_scheme", "token")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            self.option("auth_header", "Authorization"): f"{scheme} {token.reveal()}".strip(),
        }
        doc: dict[str, object] = {
            self.option("title_field", "title"): f"[bootguard] {notification.host}: {notification.title}",
            self.option("body_field", "body"): self.body(notification),
        }
        labels = self.spec.get("labels")
        if labels:
            doc["labels"] = list(labels) if isinstance(labels, tuple) else [labels]
        http_post(self.option("url"), json.dumps(doc).encode("utf-8"), headers, self.timeout, (token,))
