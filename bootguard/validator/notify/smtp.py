"""E-mail over SMTP (smtplib): plain, STARTTLS (`starttls = true`) or implicit TLS (`tls = true`)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from bootguard.validator.notify.base import NotifyError, redact
from bootguard.validator.notify.sender import Sender

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.validator.notify.base import Notification


class SmtpSender(Sender):
    required = ("host", "from", "to")

    def recipients(self) -> list[str]:
        to = self.spec.get("to")
        return [str(t) for t in to] if isinstance(to, tuple) else [str(to)]

    def message(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[bootguard] {notification.host}: {notification.title}"
        msg["From"] = self.option("from")
        msg["To"] = ", ".join(self.recipients())
        msg.set_content(notification.text())
        return msg

    def send(self, notification: Notification) -> None:
        host = self.option("host")
        port = int(self.option("port", "0")) or (465 if self.spec.get("tls") else 25)
        password = self.secret("password_file")
        secrets = (password,) if password else ()
        try:
            self._deliver(host, port, notification, password.reveal() if password else None)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(redact(f"SMTP {host}:{port}: {exc}", secrets)) from None

    def _deliver(self, host: str, port: int, notification: Notification, password: str | None) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.spec.get("tls"):
            client = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=self.timeout)
        with client:
            if self.spec.get("starttls"):
                client.starttls(context=context)
            if password is not None:
                client.login(self.option("username") or self.option("from"), password)
            client.send_message(self.message(notification), to_addrs=self.recipients())
