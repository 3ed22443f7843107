"""What a notification says, the error a sender raises, and the small HTTP helper senders share."""

from __future__ import annotations

import enum

import attrs

from bootguard.errors import BootguardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from bootguard.validator.notify.secrets import Secret


class NotifyError(BootguardError):
    """A notification could not be delivered (it is queued and retried on the next run)."""


class NotifyEvent(enum.Enum):
    FAILURE = "failure"  # required checks failed: the boot is being rejected
    ROLLBACK = "rollback"  # the host is rebooting away from this entry
    RECOVERY = "recovery"  # a boot passed after a failed one


@attrs.frozen
class Notification:
    """One message to every configured notifier. Holds no secrets: they are read at send time."""

    event: NotifyEvent
    title: str
    message: str
    host: str
    time: float
    entry: str | None = None
    failed: tuple[tuple[str, str], ...] = ()  # (check name, why) of failed checks

    def text(self) -> str:
        """Plain-text body for ntfy and e-mail."""
        lines = [self.message]
        if self.entry:
            lines.append(f"entry: {self.entry}")
        lines += [f"- {name}: {why}" for name, why in self.failed]
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "event": self.event.value,
            "title": self.title,
            "message": self.message,
            "host": self.host,
            "time": self.time,
            "entry": self.entry,
            "failed": [{"name": n, "message": m} for n, m in self.failed],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Notification:
        failed = data.get("failed") or []
        assert isinstance(failed, list)
        entry = data.get("entry")
        return cls(
            event=NotifyEvent(data["event"]),
            title=str(data["title"]),
            message=str(data["message"]),
            host=str(data["host"]),
            time=float(data["time"]),  # type: ignore[arg-type]
            entry=None if entry is None else str(entry),
            failed=tuple((str(f["name"]), str(f["message"])) for f in failed),
        )


def redact(text: str, secrets: tuple[Secret, ...]) -> str:
    """`text` with every secret value replaced, for messages that reach logs, events or the queue."""
    for secret in secrets:
        text = secret.redact(text)
    return text


def http_post(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float, secrets: tuple[Secret, ...] = ()
) -> int:
    """POST `body`; return the status, raise NotifyError (secrets redacted) on anything but 2xx."""
    import urllib.error
    import urllib.request

    safe_headers = {k: v.encode("latin-1", "replace").decode("latin-1") for k, v in headers.items()}
    request = urllib.request.Request(url, data=body, headers=safe_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise NotifyError(redact(f"POST {url}: HTTP {exc.code} {exc.reason}", secrets)) from None
    except urllib.error.URLError as exc:
        raise NotifyError(redact(f"POST {url}: {exc.reason}", secrets)) from None
    except (OSError, ValueError) as exc:
        raise NotifyError(redact(f"POST {url}: {exc}", secrets)) from None
