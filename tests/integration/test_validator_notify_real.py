"""Notifiers against real loopback servers: ntfy/webhook/forge over HTTP, e-mail over SMTP (aiosmtpd).

Secrets come from files in $CREDENTIALS_DIRECTORY; they must reach the server and nothing else: not
the journal, the event log, the queue, an error message or any subprocess argv.
"""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootguard.seams import proc
from bootguard.validator import config, service
from bootguard.validator.journal import Journal
from bootguard.validator.notify.base import Notification, NotifyEvent

pytestmark = pytest.mark.integration

TOKEN = "tok-3f9c2a7d-SECRET"
PASSWORD = "pw-8d1e6b0c-SECRET"
NOTE = Notification(
    NotifyEvent.ROLLBACK,
    "boot failed validation; rolling back",
    "sshd: down",
    "host1",
    1.0,
    "a+2-1.conf",
    (("sshd", "sshd exited 1"),),
)


class Capture(http.server.BaseHTTPRequestHandler):
    requests: list[dict[str, Any]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        # A hostile or buggy server echoing the credential in its status line must not leak it.
        reason = f"denied for {self.headers.get('Authorization', '')}" if self.status >= 400 else "OK"
        self.send_response(self.status, reason)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Capture]]]:
    handler = type("H", (Capture,), {"requests": [], "status": 200})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def creds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "credentials"
    d.mkdir()
    (d / "token").write_text(TOKEN + "\n")
    (d / "smtp-password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(d))
    return d


@pytest.fixture
def argv_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Record the argv of every subprocess (none should carry a secret)."""
    calls: list[tuple[str, ...]] = []
    real = proc.run

    def run(argv: list[str], **kw: Any) -> proc.Completed:
        calls.append(tuple(argv))
        return real(argv, **kw)

    monkeypatch.setattr(proc, "run", run)
    return calls


def _services(tmp_path: Path, toml: str) -> tuple[service.Services, io.StringIO]:
    cfg = config.parse(__import__("tomllib").loads(toml), base_dir=str(tmp_path))
    svc = service.for_host(
        cfg, esp=None, xbootldr=None, efivars=str(tmp_path), state_dir=str(tmp_path / "state")
    )
    stream = io.StringIO()
    svc.journal = Journal(str(tmp_path / "no-journal"), stream=stream)
    return svc, stream


def _everything_written(tmp_path: Path, stream: io.StringIO) -> str:
    """All text bootguard wrote: journal fallback, event log, queue files, last-validation, metrics."""
    parts = [stream.getvalue()]
    parts += [p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()]
    return "\n".join(parts)


def test_ntfy_webhook_and_forge_deliver_with_tokens(
    tmp_path: Path, server: tuple[str, type[Capture]], creds: Path, argv_log: list[tuple[str, ...]]
) -> None:
    """Each HTTP notifier sends its documented request; the token is only in the Authorization header."""
    base, handler = server
    svc, stream = _services(
        tmp_path,
        f"""
[[notify]]
kind = "ntfy"
url = "{base}"
topic = "hosts"
token_file = "token"
[[notify]]
kind = "webhook"
url = "{base}/hook"
[[notify]]
kind = "forge-issue"
url = "{base}/api/v1/repos/ops/fleet/issues"
token_file = "token"
labels = ["bootguard"]
""",
    )
    result = svc.dispatcher.deliver(NOTE)
    assert sorted(result.sent) == ["forge-issue", "ntfy", "webhook"] and result.queued == ()
    by = {r["path"]: r for r in handler.requests}
    ntfy = by["/hosts"]
    assert ntfy["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert ntfy["headers"]["Title"] == NOTE.title and ntfy["headers"]["Priority"] == "high"
    assert b"sshd: sshd exited 1" in ntfy["body"]
    hook = json.loads(by["/hook"]["body"])
    assert hook["event"] == "rollback" and hook["entry"] == "a+2-1.conf" and hook["source"] == "bootguard"
    assert "Authorization" not in by["/hook"]["headers"]
    forge = by["/api/v1/repos/ops/fleet/issues"]
    assert forge["headers"]["Authorization"] == f"token {TOKEN}"
    issue = json.loads(forge["body"])
    assert issue["title"] == "[bootguard] host1: boot failed validation; rolling back"
    assert "| sshd | sshd exited 1 |" in issue["body"] and issue["labels"] == ["bootguard"]
    assert all(TOKEN not in " ".join(a) for a in argv_log)
    assert TOKEN not in _everything_written(tmp_path, stream)


def test_rejected_request_is_queued_without_the_secret(
    tmp_path: Path, server: tuple[str, type[Capture]], creds: Path
) -> None:
    """A 401 whose reason echoes the token: the error is redacted in journal, events and queue."""
    base, handler = server
    handler.status = 401
    svc, stream = _services(
        tmp_path, f'[[notify]]\nkind = "ntfy"\nurl = "{base}"\ntopic = "t"\ntoken_file = "token"\n'
    )
    result = svc.dispatcher.deliver(NOTE)
    assert result.queued == ("ntfy",)
    written = _everything_written(tmp_path, stream)
    assert "HTTP 401" in written and "<secret>" in written
    assert TOKEN not in written
    events = (tmp_path / "state" / "events.jsonl").read_text()
    assert '"kind":"notification-failed"' in events


def test_undelivered_notification_is_retried_on_the_next_run(
    tmp_path: Path, server: tuple[str, type[Capture]]
) -> None:
    """Endpoint down → queued in the state dir; next run (endpoint up) delivers it and empties the queue."""
    base, handler = server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    svc, _ = _services(
        tmp_path, f'[[notify]]\nname = "ops"\nkind = "webhook"\nurl = "http://127.0.0.1:{dead}/x"\n'
    )
    assert svc.dispatcher.deliver(NOTE).queued == ("ops",)
    assert len(list((tmp_path / "state" / "notify-queue").glob("*.json"))) == 1
    svc2, _ = _services(tmp_path, f'[[notify]]\nname = "ops"\nkind = "webhook"\nurl = "{base}/x"\n')
    assert svc2.dispatcher.retry_queued().sent == ("ops",)
    assert json.loads(handler.requests[0]["body"])["title"] == NOTE.title
    assert list((tmp_path / "state" / "notify-queue").glob("*.json")) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_smtp_mail_with_login(tmp_path: Path, creds: Path) -> None:
    """E-mail goes through a real SMTP server with AUTH LOGIN; password read from the credential file."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list[Any] = []
    logins: list[tuple[bytes, bytes]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == PASSWORD.encode())

    port = _free_port()
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        svc, stream = _services(
            tmp_path,
            f"""
[[notify]]
kind = "smtp"
host = "127.0.0.1"
port = {port}
from = "bootguard@host1"
to = ["ops@example.org", "oncall@example.org"]
username = "bootguard"
password_file = "smtp-password"
""",
        )
        assert svc.dispatcher.deliver(NOTE).sent == ("smtp",)
    finally:
        controller.stop()
    assert logins == [(b"bootguard", PASSWORD.encode())]
    [mail] = received
    assert mail.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    text = mail.content.decode()
    assert "Subject: [bootguard] host1: boot failed validation; rolling back" in text
    assert "sshd: sshd exited 1" in text and PASSWORD not in text
    assert PASSWORD not in _everything_written(tmp_path, stream)


def test_missing_secret_file_is_queued_not_fatal(
    tmp_path: Path, creds: Path, server: tuple[str, type[Capture]]
) -> None:
    """A notifier whose credential is missing fails alone (queued, reported), naming the file."""
    base, _ = server
    svc, stream = _services(
        tmp_path, f'[[notify]]\nkind = "ntfy"\nurl = "{base}"\ntopic = "t"\ntoken_file = "absent"\n'
    )
    assert svc.dispatcher.deliver(NOTE).queued == ("ntfy",)
    assert f"secret file {creds / 'absent'} does not exist" in stream.getvalue()
